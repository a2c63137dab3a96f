"""The high-quality set (paper 2.2.4): per source, a small diverse seed set of positives chosen by quality
score, language, comment ratio, docstrings and imported packages; negatives of two kinds (random files of
the rest, and hard ones that look like seeds: a high score but no comments or docstrings, or recalled by the
previous round and scored low); a fastText model trained on them recalls more positives, which join the
seeds of the next round.

One model per round serves every source: a seed is labelled with its source (`__label__<source>`), every
negative `__label__negative`, and a file is recalled into a source when the model's probability for it
reaches the round's threshold. Candidates are the scored files of every crawl, read through DuckDB (the
scores, the files and their features joined by id), so memory holds one batch of files at a time.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import duckdb
import numpy as np
import pyarrow as pa
from pydantic import BaseModel, Field

from seedcoder_assets.core.parquet_io import duckdb_source

NEGATIVE: Final = "negative"
MODEL_FILE: Final = "hq.bin"
HELD_OUT: Final = "held_out.parquet"  # the held-out repositories' seeds and negatives: (id, label)
_TOKEN = re.compile(r"[A-Za-z_]+|\d+|[^\w\s]{1,3}")


class HQSource(BaseModel, frozen=True):
    """One kind of high-quality file: what makes a seed, and how many seeds."""

    name: str = Field(..., pattern=r"^[a-z][a-z0-9_]*$")
    languages: list[str] = Field(default_factory=list, description="Any of these languages (empty: any)")
    path_regex: str | None = Field(None, description="The path matches this (RE2, case-insensitive)")
    content_regex: str | None = Field(None, description="The content matches this (RE2)")
    min_score: float = Field(7.0, description="Quality score at least this")
    min_score_quantile: float | None = Field(None, description="Instead: at least this quantile of every candidate's "
                                                               "score (scorers differ in scale)")
    min_comment_ratio: float = Field(0.0, description="Comment ratio at least this (file_features)")
    max_comment_ratio: float = Field(1.0, description="... and at most this (comment dumps are not seeds)")
    require_docstring: bool = Field(False, description="A module, class or function docstring or doc comment")
    packages: list[str] = Field(default_factory=list, description="Imports any of these packages (empty: any)")
    seed_size: int = Field(100_000, description="Most seeds (paper: about 100K per source)")
    max_per_repo: int = Field(20, description="Most seeds from one repository (diversity)")


MAJOR = ["Python", "Java", "C", "C++", "C#", "JavaScript", "TypeScript", "Go", "Rust", "PHP", "Kotlin", "Ruby"]
DEFAULT_SOURCES: Final[tuple[HQSource, ...]] = (
    HQSource(name="algorithms", languages=MAJOR, min_score=6.0, require_docstring=False,
             path_regex=r"(leetcode|algorithm|solution|kata|exercise|problem|sort|search|graph|dynamic|puzzle)",
             min_comment_ratio=0.02, seed_size=20_000),
    HQSource(name="application", languages=MAJOR, min_score=6.0, min_comment_ratio=0.02,
             packages=["django", "flask", "fastapi", "react", "vue", "express", "org.springframework", "android",
                       "sqlalchemy", "requests", "@angular/core", "next", "gin", "actix_web", "rails"]),
    HQSource(name="major_languages", languages=MAJOR, min_score=7.0, min_comment_ratio=0.05, max_comment_ratio=0.6,
             require_docstring=True),
    HQSource(name="general", min_score=7.5, min_comment_ratio=0.02, max_comment_ratio=0.7),
)


class HQParams(BaseModel, frozen=True):
    sources: tuple[HQSource, ...] = Field(DEFAULT_SOURCES, description="In order: a file is the first source's that "
                                                                       "selects it")
    random_negatives_per_seed: float = Field(1.0, description="Random negatives per seed")
    hard_negatives_per_seed: float = Field(0.5, description="Most hard negatives per seed")
    hard_negatives: bool = Field(True, description="False: random negatives only (the paper's comparison)")
    recall_threshold: float = Field(0.5, description="P(source) at or above which a file is recalled into it")
    quality_floor: float = Field(5.0, description="A recalled file joins the seeds only at this score or above; "
                                                  "recalled below it, it is a hard negative of the next round")
    quality_floor_quantile: float | None = Field(None, description="Instead: this quantile of every candidate's score")
    max_new_per_round: float = Field(1.0, description="New positives per round, at most this times the seeds")
    held_out_share: float = Field(0.2, description="Share of repositories whose seeds and negatives are held out")
    max_chars: int = Field(8000, description="Characters of a file the model reads")
    dim: int = 64
    epoch: int = 10
    lr: float = 0.5
    word_ngrams: int = 2
    seed: int = 0


def file_line(path: str, content: str, max_chars: int) -> str:
    """What fastText reads of a file: its name's tokens, then the tokens of its first `max_chars`."""
    return " ".join(_TOKEN.findall(f"{path.rsplit('/', 1)[-1]}\n{content[:max_chars]}"))


def _rank(key: str, seed: int) -> float:
    return int.from_bytes(hashlib.blake2b(f"{seed}/{key}".encode(), digest_size=8).digest(), "big") / 2**64


def candidates_view(con: duckdb.DuckDBPyConnection, crawls: Sequence[tuple[str, str, str]]) -> None:
    """A `candidates` view over every crawl's (scores, syntax-checked files, features): one row per scored
    file with its repository, path, language, content, score, comment ratio, docstring and packages. A query
    that does not name `content` does not read it (DuckDB prunes the columns of a view)."""
    parts = [f"""SELECT f.id, f.crawl, f.repo, f.path, f.language, f.content, s.score,
                       coalesce(x.comment_ratio, 0) AS comment_ratio, coalesce(x.has_docstring, false) AS has_docstring,
                       coalesce(x.packages, []) AS packages
                FROM {duckdb_source(files)} f JOIN {duckdb_source(scores)} s USING (id)
                LEFT JOIN {duckdb_source(features)} x USING (id)""" for scores, files, features in crawls]
    con.execute("CREATE OR REPLACE VIEW candidates AS " + " UNION ALL ".join(parts))


def _predicate(source: HQSource, min_score: float) -> tuple[str, list[Any]]:
    where, args = ["score >= ?", "comment_ratio >= ?", "comment_ratio <= ?"], [min_score,
                                                                                source.min_comment_ratio,
                                                                                source.max_comment_ratio]
    if source.languages:
        where.append("list_contains(?, language)")
        args.append(source.languages)
    if source.path_regex:
        where.append("regexp_matches(path, ?, 'i')")
        args.append(source.path_regex)
    if source.content_regex:
        where.append("regexp_matches(content, ?)")
        args.append(source.content_regex)
    if source.require_docstring:
        where.append("has_docstring")
    if source.packages:
        where.append("len(list_intersect(packages, ?)) > 0")
        args.append(source.packages)
    return " AND ".join(where), args


def min_score(con: duckdb.DuckDBPyConnection, source: HQSource) -> float:
    """A source's score bar: its `min_score`, or its quantile of every candidate's score."""
    if source.min_score_quantile is None:
        return source.min_score
    value = con.execute("SELECT quantile_cont(score, ?) FROM candidates", [source.min_score_quantile]).fetchone()[0]
    return float(value) if value is not None else source.min_score


def quality_floor(con: duckdb.DuckDBPyConnection, params: HQParams) -> float:
    if params.quality_floor_quantile is None:
        return params.quality_floor
    value = con.execute("SELECT quantile_cont(score, ?) FROM candidates", [params.quality_floor_quantile]).fetchone()[0]
    return float(value) if value is not None else params.quality_floor


def select_seeds(con: duckdb.DuckDBPyConnection, params: HQParams) -> pa.Table:
    """Round 0's seeds: per source in order, the files it selects that no earlier source took, at most
    `max_per_repo` per repository, the best scored first (ties by a seeded hash), up to `seed_size`."""
    con.execute("CREATE OR REPLACE TEMP TABLE seeds (id VARCHAR, repo VARCHAR, source VARCHAR, round INTEGER)")
    for source in params.sources:
        where, args = _predicate(source, min_score(con, source))
        con.execute(f"""
            INSERT INTO seeds SELECT id, repo, ?, 0 FROM (
                SELECT id, repo, score, row_number() OVER (PARTITION BY repo ORDER BY score DESC, md5(? || id)) AS k
                FROM candidates WHERE {where} AND id NOT IN (SELECT id FROM seeds))
            WHERE k <= ? ORDER BY score DESC, md5(? || id) LIMIT ?""",
                    [source.name, str(params.seed), *args, source.max_per_repo, str(params.seed), source.seed_size])
    return con.execute("SELECT * FROM seeds ORDER BY source, id").fetch_arrow_table()


def initial_hard_negatives(con: duckdb.DuckDBPyConnection, params: HQParams, n: int) -> pa.Table:
    """Files that look like seeds by score but are not: a high score, no comments and no docstring."""
    floor = min(min_score(con, s) for s in params.sources)
    return con.execute("""
        SELECT id, repo, 'hard_uncommented' AS kind FROM candidates
        WHERE score >= ? AND comment_ratio < 0.01 AND NOT has_docstring AND id NOT IN (SELECT id FROM seeds)
        ORDER BY md5(? || id) LIMIT ?""", [floor, str(params.seed), n]).fetch_arrow_table()


def random_negatives(con: duckdb.DuckDBPyConnection, params: HQParams, n: int, exclude: pa.Table) -> pa.Table:
    con.register("_exclude", exclude)
    out = con.execute("""
        SELECT id, repo, 'random' AS kind FROM candidates
        WHERE id NOT IN (SELECT id FROM seeds) AND id NOT IN (SELECT id FROM _exclude)
        ORDER BY md5(? || 'neg' || id) LIMIT ?""", [str(params.seed), n]).fetch_arrow_table()
    con.unregister("_exclude")
    return out


@dataclass
class RoundReport:
    metrics: dict[str, Any] = field(default_factory=dict)


def _lines(con: duckdb.DuckDBPyConnection, files: Sequence[str], ids: pa.Table, max_chars: int
           ) -> dict[str, str]:
    """id -> file_line of the files in `ids`, read from the crawls' files partitions."""
    con.register("_ids", ids.select(["id"]))
    out: dict[str, str] = {}
    for uri in files:
        result = con.execute(f"SELECT f.id, f.path, left(f.content, {int(max_chars)}) FROM {duckdb_source(uri)} f "
                             "JOIN _ids USING (id)")
        while rows := result.fetchmany(2048):
            for file_id, path, content in rows:
                out[file_id] = file_line(path, content, max_chars)
    con.unregister("_ids")
    return out


def train_round(examples: list[tuple[str, str, str, str]], params: HQParams, out: Path) -> dict[str, Any]:
    """Train on (id, repo, label, line) examples of the training repositories; held-out repositories' seeds
    and negatives measure it. The model goes to `out/hq.bin`."""
    import fasttext

    held = [e for e in examples if _rank(e[1], params.seed) < params.held_out_share]
    train = [e for e in examples if _rank(e[1], params.seed) >= params.held_out_share]
    if not train or len({e[2] for e in train}) < 2:
        raise ValueError(f"cannot train: {len(train)} training examples with labels {sorted({e[2] for e in train})}")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", dir=out, delete=False) as f:
        for _, _, label, line in sorted(train, key=lambda e: _rank(e[0], params.seed)):
            f.write(f"__label__{label} {line}\n")
        path = f.name
    model = fasttext.train_supervised(input=path, dim=params.dim, epoch=params.epoch, lr=params.lr,
                                      wordNgrams=params.word_ngrams, minCount=1, thread=1, seed=params.seed,
                                      verbose=0)
    Path(path).unlink()
    model.save_model(str(out / MODEL_FILE))
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": pa.array([e[0] for e in held], pa.string()),
                             "label": pa.array([e[2] for e in held], pa.string())}), out / HELD_OUT)
    p_positive = positive_probability(model, [e[3] for e in held])
    truth = np.array([e[2] != NEGATIVE for e in held])
    recalled = p_positive >= params.recall_threshold
    return {"held_out": len(held), "held_out_seeds": int(truth.sum()),
            "recall": float(recalled[truth].mean()) if truth.any() else None,
            "precision": float(truth[recalled].mean()) if recalled.any() else None,
            "negatives_recalled": float(recalled[~truth].mean()) if (~truth).any() else None,
            "n_train": len(train)}


def positive_probability(model, lines: Sequence[str]) -> np.ndarray:
    """P(any source) per line: 1 - P(negative)."""
    if not lines:
        return np.zeros(0)
    labels, probs = model.predict(list(lines), k=-1)
    return np.array([1.0 - dict(zip(ls, ps)).get(f"__label__{NEGATIVE}", 0.0) for ls, ps in zip(labels, probs)])


def best_source(model, lines: Sequence[str]) -> Iterator[tuple[str | None, float]]:
    """(the most likely source, its probability) per line; (None, p) when `negative` is most likely."""
    if not lines:
        return
    labels, probs = model.predict(list(lines), k=1)
    for ls, ps in zip(labels, probs):
        label = ls[0].removeprefix("__label__")
        yield (None if label == NEGATIVE else label), float(ps[0])


ROUND_FILES: Final = ("seeds", "negatives", "recalled")  # the Parquet tables of a round, beside its model


@dataclass
class RoundState:
    """What a round leaves for the next: its seeds (id, repo, source, round), its negatives (id, repo, kind),
    and what its model recalled (id, repo, source, p, score, kind: new_positive | low_score | seed)."""

    seeds: pa.Table
    negatives: pa.Table
    recalled: pa.Table

    def write(self, out: Path) -> None:
        import pyarrow.parquet as pq

        for name in ROUND_FILES:
            pq.write_table(getattr(self, name), out / f"{name}.parquet")

    @staticmethod
    def read(out: Path) -> RoundState:
        import pyarrow.parquet as pq

        return RoundState(*(pq.read_table(out / f"{name}.parquet") for name in ROUND_FILES))


def _recall_pass(con: duckdb.DuckDBPyConnection, files: Sequence[str], model, params: HQParams) -> pa.Table:
    """Every candidate file through the round's model: the ones it recalls into a source, with their score."""
    rows: dict[str, list] = {"id": [], "repo": [], "source": [], "p": [], "score": []}
    for uri in files:
        result = con.execute(f"""SELECT f.id, f.repo, f.path, left(f.content, {int(params.max_chars)}), c.score
                                 FROM {duckdb_source(uri)} f JOIN candidates c USING (id)""")
        while batch := result.fetchmany(2048):
            lines = [file_line(path, content, params.max_chars) for _, _, path, content, _ in batch]
            for (file_id, repo, _, _, score), (source, p) in zip(batch, best_source(model, lines)):
                if source is not None and p >= params.recall_threshold:
                    for key, value in zip(rows, (file_id, repo, source, p, score)):
                        rows[key].append(value)
    return pa.table({"id": pa.array(rows["id"], pa.string()), "repo": pa.array(rows["repo"], pa.string()),
                     "source": pa.array(rows["source"], pa.string()), "p": pa.array(rows["p"], pa.float32()),
                     "score": pa.array(rows["score"], pa.float32())})


def run_round(con: duckdb.DuckDBPyConnection, files: Sequence[str], params: HQParams, number: int,
              previous: RoundState | None, out: Path) -> tuple[RoundState, dict[str, Any]]:
    """Round `number` (1, 2, ...): its seeds (round 0's selection, or the previous round's seeds plus its
    new positives), its negatives (random, and hard: uncommented high scorers in round 1, the previous
    round's recalled-but-low-scoring files after), its model (to `out`), and what the model recalls."""
    import fasttext
    import pyarrow.compute as pc

    if previous is None:
        seeds = select_seeds(con, params)
        hard = initial_hard_negatives(con, params, int(params.hard_negatives_per_seed * seeds.num_rows)) \
            if params.hard_negatives else None
    else:
        added = previous.recalled.filter(pc.equal(previous.recalled["kind"], "new_positive"))
        seeds = pa.concat_tables([previous.seeds, pa.table({
            "id": added["id"], "repo": added["repo"], "source": added["source"],
            "round": pa.array([number - 1] * added.num_rows, pa.int32())}).cast(previous.seeds.schema)])
        con.register("seeds_arrow", seeds)
        con.execute("CREATE OR REPLACE TEMP TABLE seeds AS SELECT * FROM seeds_arrow")
        con.unregister("seeds_arrow")
        low = previous.recalled.filter(pc.equal(previous.recalled["kind"], "low_score"))
        hard = pa.table({"id": low["id"], "repo": low["repo"],
                         "kind": pa.array(["hard_recalled_low"] * low.num_rows, pa.string())}) \
            .slice(0, int(params.hard_negatives_per_seed * seeds.num_rows)) if params.hard_negatives else None
    hard = hard if hard is not None else pa.table({"id": pa.array([], pa.string()), "repo": pa.array([], pa.string()),
                                                   "kind": pa.array([], pa.string())})
    randoms = random_negatives(con, params, int(params.random_negatives_per_seed * seeds.num_rows), hard)
    negatives = pa.concat_tables([hard.cast(randoms.schema), randoms])
    lines = _lines(con, files, pa.concat_tables([seeds.select(["id"]), negatives.select(["id"])]), params.max_chars)
    examples = [(i, r, s, lines[i]) for i, r, s in zip(*(seeds[c].to_pylist() for c in ("id", "repo", "source")))
                if i in lines]
    examples += [(i, r, NEGATIVE, lines[i]) for i, r in zip(negatives["id"].to_pylist(), negatives["repo"].to_pylist())
                 if i in lines]
    metrics = train_round(examples, params, out)
    model = fasttext.load_model(str(out / MODEL_FILE))
    recalled = _recall_pass(con, files, model, params)
    seed_ids = pa.array(seeds["id"].to_pylist(), pa.string())
    is_seed = pc.is_in(recalled["id"], seed_ids)
    floor = quality_floor(con, params)
    high = pc.greater_equal(recalled["score"], floor)
    kind = pc.if_else(is_seed, "seed", pc.if_else(high, "new_positive", "low_score"))
    recalled = recalled.append_column("kind", kind)
    # New positives: the most confident first, at most max_new_per_round x seeds.
    new = recalled.filter(pc.equal(recalled["kind"], "new_positive"))
    cap = int(params.max_new_per_round * seeds.num_rows)
    if new.num_rows > cap:
        keep = set(new.take(pc.sort_indices(new, [("p", "descending"), ("id", "ascending")]))["id"][:cap].to_pylist())
        recalled = recalled.set_column(recalled.schema.get_field_index("kind"), "kind", pa.array(
            [k if k != "new_positive" or i in keep else "over_cap" for i, k in
             zip(recalled["id"].to_pylist(), recalled["kind"].to_pylist())], pa.string()))
    counts = {k: int(v) for k, v in zip(*np.unique(recalled["kind"].to_numpy(zero_copy_only=False), return_counts=True))}
    not_seed = recalled.filter(pc.invert(is_seed))
    above = pc.sum(pc.greater_equal(not_seed["score"], floor)).as_py() or 0
    previous_ids = set(previous.recalled["id"].to_pylist()) if previous is not None else set()
    now_ids = set(recalled["id"].to_pylist())
    metrics |= {
        "round": number, "quality_floor": floor, "seeds": seeds.num_rows, "negatives": negatives.num_rows,
        "hard_negatives": hard.num_rows, "recalled": recalled.num_rows, "recalled_kinds": counts,
        "recalled_above_floor_share": above / not_seed.num_rows if not_seed.num_rows else None,
        "new_positives": counts.get("new_positive", 0),
        "overlap_with_previous": (len(now_ids & previous_ids) / len(now_ids | previous_ids)) if previous_ids else None,
        "seeds_per_source": {s: int(n) for s, n in zip(*np.unique(seeds["source"].to_numpy(zero_copy_only=False),
                                                                   return_counts=True))},
    }
    state = RoundState(seeds.cast(pa.schema([("id", pa.string()), ("repo", pa.string()), ("source", pa.string()),
                                             ("round", pa.int32())])), negatives, recalled)
    state.write(out)
    return state, metrics


def inputs_version(con: duckdb.DuckDBPyConnection, params: HQParams, number: int, previous: str | None) -> str:
    """A round's version: its parameters, its number, the previous round's version, and every candidate's
    (id, score, comment ratio, docstring) as an order-free hash. New scores or features, new crawls, a new
    source definition or a new previous round: a new version."""
    count, digest = con.execute("""SELECT count(*), coalesce(sum(hash(id || ':' || score || ':' || comment_ratio || ':'
                                                                    || has_docstring) % 1000000007), 0)
                                   FROM candidates""").fetchone()
    h = hashlib.sha256(f"{params.model_dump_json()}|{number}|{previous}|{count}|{digest}".encode())
    return f"hq{number}-" + h.hexdigest()[:16]
