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
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import duckdb
import numpy as np
import pyarrow as pa
from pydantic import BaseModel, Field

from seedcoder_assets.core.fasttext_buckets import ngram_buckets
from seedcoder_assets.core.parquet_io import duckdb_source

NEGATIVE: Final = "negative"
MODEL_FILE: Final = "hq.bin"
ROUND_CODE_VERSION: Final = "hq-round-v1"  # bump when run_round's logic changes: every round is stale
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
    # Notebooks first: a Python notebook is also Python (core/ingest/notebooks.py). Its markdown cells are
    # comments of its script, so the comment ratio asks for notebooks that explain their code.
    HQSource(name="notebooks", path_regex=r"\.ipynb$", min_score=6.0, min_comment_ratio=0.1, max_comment_ratio=0.8,
             seed_size=20_000),
    HQSource(name="algorithms", languages=MAJOR, min_score=6.0, require_docstring=False,
             path_regex=r"(leetcode|algorithm|solution|kata|exercise|problem|sort|search|graph|dynamic|puzzle)",
             min_comment_ratio=0.02, seed_size=20_000),
    HQSource(name="application", languages=MAJOR, min_score=6.0, min_comment_ratio=0.02,
             packages=["django", "flask", "fastapi", "react", "vue", "express", "org.springframework", "android",
                       "androidx", "sqlalchemy", "requests", "@angular/core", "next", "github.com/gin-gonic",
                       "actix_web"]),
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
    bucket: int | None = Field(None, description="Hash buckets of word n-grams; None: sized to the training file "
                                                 "(core/fasttext_buckets.py), at most fastText's 2,000,000")
    seed: int = 0


def file_line(path: str, content: str, max_chars: int) -> str:
    """What fastText reads of a file: its name's tokens, then the tokens of its first `max_chars`."""
    return " ".join(_TOKEN.findall(f"{path.rsplit('/', 1)[-1]}\n{content[:max_chars]}"))


def _rank(key: str, seed: int) -> float:
    return int.from_bytes(hashlib.blake2b(f"{seed}/{key}".encode(), digest_size=8).digest(), "big") / 2**64


def candidates_view(con: duckdb.DuckDBPyConnection, crawls: Sequence[tuple[str, str, str]]) -> None:
    """A `candidates` view over every crawl's (scores, syntax-checked files, features): one row per scored
    file with its repository, path, language, content hash and content, score, and features (NULL where the
    language has no grammar: such a file meets no feature condition). A query that does not name `content`
    does not read it (DuckDB prunes the columns of a view)."""
    parts = [f"""SELECT f.id, f.crawl, f.repo, f.path, f.language, f.sha256, f.content, s.score,
                       x.id IS NOT NULL AS has_features, x.comment_ratio, coalesce(x.has_docstring, false) AS has_docstring,
                       coalesce(x.packages, []) AS packages
                FROM {duckdb_source(files)} f JOIN {duckdb_source(scores)} s USING (id)
                LEFT JOIN {duckdb_source(features)} x USING (id)""" for scores, files, features in crawls]
    con.execute("CREATE OR REPLACE VIEW candidates AS " + " UNION ALL ".join(parts))


def _predicate(source: HQSource, min_score: float) -> tuple[str, list[Any]]:
    where, args = ["score >= ?"], [min_score]
    if source.min_comment_ratio > 0 or source.max_comment_ratio < 1:
        where.append("has_features AND comment_ratio BETWEEN ? AND ?")
        args += [source.min_comment_ratio, source.max_comment_ratio]
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
        where.append("has_features AND has_docstring")
    if source.packages:  # a package or anything under it (`android` matches Java's `android.os`)
        where.append("len(list_filter(packages, p -> list_has_any([p], ?) OR "
                     "len(list_filter(?, q -> starts_with(p, q || '.') OR starts_with(p, q || '/'))) > 0)) > 0")
        args += [source.packages, source.packages]
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
                FROM candidates c WHERE {where} AND NOT EXISTS (SELECT 1 FROM seeds WHERE seeds.id = c.id))
            WHERE k <= ? ORDER BY score DESC, md5(? || id) LIMIT ?""",
                    [source.name, str(params.seed), *args, source.max_per_repo, str(params.seed), source.seed_size])
    return con.execute("SELECT * FROM seeds ORDER BY source, id").fetch_arrow_table()


def initial_hard_negatives(con: duckdb.DuckDBPyConnection, params: HQParams, n: int) -> pa.Table:
    """Files that look like seeds by score but are not: a high score, no comments and no docstring."""
    floor = min(min_score(con, s) for s in params.sources)
    return con.execute("""
        SELECT id, repo, 'hard_uncommented' AS kind FROM candidates c
        WHERE score >= ? AND has_features AND comment_ratio < 0.01 AND NOT has_docstring
          AND NOT EXISTS (SELECT 1 FROM seeds WHERE seeds.id = c.id)
        ORDER BY md5(? || id) LIMIT ?""", [floor, str(params.seed), n]).fetch_arrow_table()


def random_negatives(con: duckdb.DuckDBPyConnection, params: HQParams, n: int, exclude: pa.Table) -> pa.Table:
    con.register("_exclude", exclude)
    out = con.execute("""
        SELECT id, repo, 'random' AS kind FROM candidates c
        WHERE NOT EXISTS (SELECT 1 FROM seeds WHERE seeds.id = c.id)
          AND NOT EXISTS (SELECT 1 FROM _exclude e WHERE e.id = c.id)
        ORDER BY md5(? || 'neg' || id) LIMIT ?""", [str(params.seed), n]).fetch_arrow_table()
    con.unregister("_exclude")
    return out


Crawl = tuple[str, str]  # (syntax-checked files, their scores) of one crawl
MAX_HELD_OUT: Final = 20_000  # held-out examples kept in memory to measure a round (the rest train)


def _examples(con: duckdb.DuckDBPyConnection, crawls: Sequence[Crawl], labelled: pa.Table, params: HQParams
              ) -> Iterator[tuple[str, str, str, str]]:
    """(id, repo, label, line) of the labelled files, read from the lake a batch at a time, in a seeded order
    (fastText on one thread learns the same model from the same lines in the same order)."""
    con.register("_labelled", labelled.select(["id", "label"]))
    for files, _ in crawls:
        result = con.execute(f"""SELECT f.id, f.repo, l.label, f.path, left(f.content, {int(params.max_chars)})
                                 FROM {duckdb_source(files)} f JOIN _labelled l USING (id)
                                 ORDER BY md5(? || f.id)""", [str(params.seed)])
        while rows := result.fetchmany(2048):
            for file_id, repo, label, path, content in rows:
                yield file_id, repo, label, file_line(path, content, params.max_chars)
    con.unregister("_labelled")


def recall_verdicts(model, lines: Sequence[str], threshold: float) -> list[tuple[str | None, float]]:
    """(the source a file is recalled into, or None; P(any source) = 1 - P(negative)) per line. A file is
    recalled when P(any source) reaches `threshold` (sources may overlap: their probabilities split), into its
    most likely source. One rule for the recall pass and the held-out measure."""
    if not lines:
        return []
    out: list[tuple[str | None, float]] = []
    labels, probs = model.predict(list(lines), k=-1)
    for ls, ps in zip(labels, probs):
        by_label = {label.removeprefix("__label__"): float(p) for label, p in zip(ls, ps)}
        positive = 1.0 - by_label.pop(NEGATIVE, 0.0)
        best = max(by_label, key=lambda k: (by_label[k], k)) if by_label else None
        out.append((best if best is not None and positive >= threshold else None, positive))
    return out


def train_round(examples: Iterator[tuple[str, str, str, str]], params: HQParams, out: Path) -> dict[str, Any]:
    """Train on (id, repo, label, line) examples of the training repositories, streamed to fastText's input
    file; held-out repositories' seeds and negatives (up to MAX_HELD_OUT) measure it. The model goes to
    `out/hq.bin`, the held-out ids and labels to `out/held_out.parquet`."""
    import fasttext
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    held: list[tuple[str, str, str, str]] = []
    labels: set[str] = set()
    n_train = 0
    with tempfile.NamedTemporaryFile("w", suffix=".txt", dir=out, delete=False) as f:
        for e in examples:
            if _rank(e[1], params.seed) < params.held_out_share:
                if len(held) < MAX_HELD_OUT:
                    held.append(e)
                continue
            f.write(f"__label__{e[2]} {e[3]}\n")
            labels.add(e[2])
            n_train += 1
        path = f.name
    if not n_train or len(labels) < 2:
        Path(path).unlink()
        raise ValueError(f"cannot train: {n_train} training examples with labels {sorted(labels)}")
    bucket = params.bucket or ngram_buckets(Path(path), params.word_ngrams)
    model = fasttext.train_supervised(input=path, dim=params.dim, epoch=params.epoch, lr=params.lr,
                                      wordNgrams=params.word_ngrams, minCount=1, bucket=bucket, thread=1,
                                      seed=params.seed, verbose=0)
    Path(path).unlink()
    model.save_model(str(out / MODEL_FILE))
    pq.write_table(pa.table({"id": pa.array([e[0] for e in held], pa.string()),
                             "label": pa.array([e[2] for e in held], pa.string())}), out / HELD_OUT)
    recalled = np.array([s is not None for s, _ in recall_verdicts(model, [e[3] for e in held],
                                                                   params.recall_threshold)], bool)
    truth = np.array([e[2] != NEGATIVE for e in held], bool)
    return {"held_out": len(held), "held_out_seeds": int(truth.sum()),
            "recall": float(recalled[truth].mean()) if truth.any() else None,
            "precision": float(truth[recalled].mean()) if recalled.any() else None,
            "negatives_recalled": float(recalled[~truth].mean()) if (~truth).any() else None,
            "n_train": n_train, "bucket": bucket}


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


def _recall_pass(con: duckdb.DuckDBPyConnection, crawls: Sequence[Crawl], model, params: HQParams) -> pa.Table:
    """Every scored file of every crawl through the round's model (each crawl's files joined with its own
    scores): the ones it recalls into a source, with their score, by id."""
    rows: dict[str, list] = {"id": [], "repo": [], "source": [], "p": [], "score": []}
    for files, scores in crawls:
        result = con.execute(f"""SELECT f.id, f.repo, f.path, left(f.content, {int(params.max_chars)}), s.score
                                 FROM {duckdb_source(files)} f JOIN {duckdb_source(scores)} s USING (id)""")
        while batch := result.fetchmany(2048):
            lines = [file_line(path, content, params.max_chars) for _, _, path, content, _ in batch]
            for (file_id, repo, _, _, score), (source, p) in zip(
                    batch, recall_verdicts(model, lines, params.recall_threshold)):
                if source is not None:
                    for key, value in zip(rows, (file_id, repo, source, p, score)):
                        rows[key].append(value)
    table = pa.table({"id": pa.array(rows["id"], pa.string()), "repo": pa.array(rows["repo"], pa.string()),
                      "source": pa.array(rows["source"], pa.string()), "p": pa.array(rows["p"], pa.float32()),
                      "score": pa.array(rows["score"], pa.float32())})
    return table.sort_by("id")


def run_round(con: duckdb.DuckDBPyConnection, crawls: Sequence[Crawl], params: HQParams, number: int,
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
        low = low.take(pc.sort_indices(low, [("p", "descending"), ("id", "ascending")]))  # the most confident first
        hard = pa.table({"id": low["id"], "repo": low["repo"],
                         "kind": pa.array(["hard_recalled_low"] * low.num_rows, pa.string())}) \
            .slice(0, int(params.hard_negatives_per_seed * seeds.num_rows)) if params.hard_negatives else None
    hard = hard if hard is not None else pa.table({"id": pa.array([], pa.string()), "repo": pa.array([], pa.string()),
                                                   "kind": pa.array([], pa.string())})
    # Not random negatives: the hard ones, and files the previous round recalled above the floor past its cap.
    exclude = hard.select(["id"]) if previous is None else pa.concat_tables([hard.select(["id"]), previous.recalled.filter(
        pc.equal(previous.recalled["kind"], "over_cap")).select(["id"])])
    randoms = random_negatives(con, params, int(params.random_negatives_per_seed * seeds.num_rows), exclude)
    negatives = pa.concat_tables([hard.cast(randoms.schema), randoms])
    labelled = pa.concat_tables([
        pa.table({"id": seeds["id"], "label": seeds["source"]}),
        pa.table({"id": negatives["id"], "label": pa.array([NEGATIVE] * negatives.num_rows, pa.string())})])
    started = time.process_time()
    metrics = train_round(_examples(con, crawls, labelled, params), params, out)
    trained = time.process_time()
    model = fasttext.load_model(str(out / MODEL_FILE))
    recalled = _recall_pass(con, crawls, model, params)
    metrics |= {"train_cpu_s": trained - started, "recall_cpu_s": time.process_time() - trained,
                "train_examples": metrics["n_train"] + metrics["held_out"]}
    seed_ids = pa.array(seeds["id"].to_pylist(), pa.string())
    is_seed = pc.is_in(recalled["id"], seed_ids)
    floor = quality_floor(con, params)
    high = pc.greater_equal(recalled["score"], floor)
    # A file this round trained on as a negative never becomes a positive: recalled, it says the model erred.
    is_negative = pc.is_in(recalled["id"], pa.array(negatives["id"].to_pylist(), pa.string()))
    kind = pc.if_else(is_seed, "seed", pc.if_else(is_negative, "negative_recalled",
                                                  pc.if_else(high, "new_positive", "low_score")))
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
    not_seed = recalled.filter(pc.invert(pc.or_(is_seed, is_negative)))
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
    """A round's version: this code's version, its parameters, its number, the previous round's version, and
    every candidate's (id, content hash, language, score, features) as an order-free hash. New scores or features, new crawls, a new
    source definition or a new previous round: a new version."""
    count, digest = con.execute("""
        SELECT count(*), coalesce(sum(hash(concat_ws(':', id, sha256, language, score, coalesce(comment_ratio, -1),
                                                     has_docstring, list_sort(packages)::VARCHAR)) % 1000000007), 0)
        FROM candidates""").fetchone()
    h = hashlib.sha256(f"{ROUND_CODE_VERSION}|{params.model_dump_json()}|{number}|{previous}|{count}|{digest}".encode())
    return f"hq{number}-" + h.hexdigest()[:16]
