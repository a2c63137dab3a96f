"""Checks that measure a stage's output independently of the code that produced it.

Each check reads what was written (the output partition, the lineage rows, the input partition)
and judges it by a different route than the stage took: counts from the input partition itself,
content hashes recomputed from the text, Python's own compiler and JSON parser instead of
tree-sitter, near duplicates looked for by a different candidate generator and an exact Jaccard
over a different tokenizer, scores joined from the scores partition. Every check has a test that
feeds it corrupted output and sees it fail.
"""

from __future__ import annotations

import ast
import json
import random
import re
import warnings
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seedcoder_assets.core.dedup import minhash
from seedcoder_assets.core.ingest.notebooks import is_notebook
from seedcoder_assets.core.languages import PAPER_LANGUAGES, language_of
from seedcoder_assets.core.object_store import duckdb_connect
from seedcoder_assets.core.parquet_io import dataset, duckdb_source, iter_batches, read_rows, read_table


@dataclass
class CheckOutcome:
    """A check's verdict and the figures behind it (they go to the check's metadata in the UI)."""

    passed: bool
    metadata: dict[str, Any] = field(default_factory=dict)


# -- lineage ------------------------------------------------------------------------------------------
def lineage_reconciles(lineage_uri: str, output_uri: str | None, input_uri: str | None = None,
                       input_ids_sql: str = "id", output_ids_sql: str = "id", output_filter_sql: str = "TRUE",
                       memory_limit: str = "1GB") -> CheckOutcome:
    """Every input record has exactly one lineage row, and the kept ones are exactly the output.

    Counts come from the partitions on storage (input, lineage, output), joined by id in DuckDB, never
    from the counters of the writer that produced them.

    Args:
        lineage_uri: the stage's lineage partition.
        output_uri: the stage's output partition (None: only the lineage's own consistency).
        input_uri: the stage's input partition (None when the input is not a partition, as for ingest).
        input_ids_sql: SQL over the input rows giving each record's id (e.g. a repository's id).
        output_ids_sql: the same over the output rows.
        output_filter_sql: SQL over the output rows: which rows are kept records.
    """
    con = duckdb_connect(memory_limit=memory_limit)
    # A kept record is found in the output under its output id: its own id, or the merge or new record
    # it went into (lineage written before output ids existed has none: union_by_name reads it as NULL).
    con.execute(f"CREATE TEMP VIEW lin AS SELECT id, decision, output_id, coalesce(output_id, id) AS out_id "
                f"FROM {duckdb_source(lineage_uri, union_by_name=True)} "
                "WHERE NOT starts_with(id, 'manifest:') AND NOT starts_with(id, 'row:')")
    rows, distinct, kept, kept_outputs = con.execute(
        "SELECT count(*), count(DISTINCT id), count(*) FILTER (WHERE decision = 'kept'), "
        # a kept record is its own output unless it names one; several may name the same (a merge)
        "count(*) FILTER (WHERE decision = 'kept' AND output_id IS NULL) "
        "+ count(DISTINCT output_id) FILTER (WHERE decision = 'kept') FROM lin").fetchone()
    md: dict[str, Any] = {"lineage_rows": rows, "records_with_several_fates": rows - distinct, "kept": kept,
                          "kept_outputs": kept_outputs}
    if input_uri is not None:
        con.execute(f"CREATE TEMP VIEW inp AS SELECT {input_ids_sql} AS id FROM {duckdb_source(input_uri)}")
        md["input_rows"] = con.execute("SELECT count(*) FROM inp").fetchone()[0]
        md["input_without_fate"] = con.execute("SELECT count(*) FROM inp ANTI JOIN lin USING (id)").fetchone()[0]
        md["fates_of_no_input"] = con.execute("SELECT count(*) FROM lin ANTI JOIN inp USING (id)").fetchone()[0]
    if output_uri is not None:
        con.execute(f"CREATE TEMP VIEW outp AS SELECT {output_ids_sql} AS id FROM {duckdb_source(output_uri)} "
                    f"WHERE {output_filter_sql}")
        md["output_rows"] = con.execute("SELECT count(*) FROM outp").fetchone()[0]
        md["kept_not_in_output"] = con.execute(
            "SELECT count(*) FROM (SELECT out_id AS id FROM lin WHERE decision = 'kept') ANTI JOIN outp USING (id)"
        ).fetchone()[0]
        md["output_not_kept"] = con.execute(
            "SELECT count(*) FROM outp ANTI JOIN (SELECT out_id AS id FROM lin WHERE decision = 'kept') USING (id)"
        ).fetchone()[0]
    con.close()
    bad = ("records_with_several_fates", "input_without_fate", "fates_of_no_input", "kept_not_in_output",
           "output_not_kept")
    passed = all(md.get(k, 0) == 0 for k in bad) and ("input_rows" not in md or md["input_rows"] == rows)
    if "output_rows" in md:
        passed &= md["output_rows"] == kept_outputs
    return CheckOutcome(passed, md)


def record_id_sql(repo: str = "repo", path: str = "''") -> str:
    """DuckDB SQL for `archives.file_id` (the first 24 hex digits of sha256(crawl NUL repo NUL path))."""
    return f"substr(sha256(crawl || chr(0) || {repo} || chr(0) || {path}), 1, 24)"


# -- exact dedup --------------------------------------------------------------------------------------
def no_duplicate_content(uri: str) -> CheckOutcome:
    """No two rows hold the same text: the content is hashed again here (SHA-256 of the text, in
    DuckDB), not taken from the `sha256` column the ingest wrote."""
    con = duckdb_connect()
    rows, distinct = con.execute(f"SELECT count(*), count(DISTINCT sha256(content)) FROM {duckdb_source(uri)}").fetchone()
    con.close()
    return CheckOutcome(rows == distinct, {"rows": rows, "distinct_contents": distinct})


def no_duplicate_repositories(deduped_repos_uri: str, files_uri: str) -> CheckOutcome:
    """No two kept repositories hold the same set of files, by content recomputed from the files."""
    con = duckdb_connect()
    row = con.execute(f"""
        WITH sets AS (SELECT repo, sha256(string_agg(sha256(content), ',' ORDER BY sha256(content))) AS h
                      FROM {duckdb_source(files_uri)} GROUP BY repo),
             kept AS (SELECT repo FROM {duckdb_source(deduped_repos_uri)} WHERE decision = 'kept')
        SELECT count(*), count(DISTINCT h) FROM kept JOIN sets USING (repo)""").fetchone()
    con.close()
    return CheckOutcome(row[0] == row[1], {"kept_repositories_with_files": row[0], "distinct_file_sets": row[1]})


# -- language -----------------------------------------------------------------------------------------
# Files that are never code, by a list of its own (not the language map the filter uses): licences,
# read-mes and change logs as plain text, plain text, tabular and binary-ish data, lock files. (A README.md
# is Markdown and a CMakeLists.txt is CMake, both among the paper's languages.)
NON_CODE_NAMES = re.compile(r"(?i)^(licen[cs]e|copying|notice|authors|contributors|readme|changelog|changes|history)"
                            r"([-_][^.]*)?(\.txt)?$")
NON_CODE_SUFFIXES = (".txt", ".csv", ".tsv", ".log", ".lock", ".cfg", ".ini", ".toml", ".xml", ".svg", ".png",
                     ".jpg", ".gif", ".pdf", ".zip", ".gz", ".pyc", ".so", ".dll", ".exe", ".bin", ".dat", ".pkl")


_NOTEBOOK_SCRIPT = re.compile(r"(?m)^(#|//|--|;;|%|/\*|\(\*) %%")  # a cell marker (after a front matter or coding line)


def only_code_languages(uri: str) -> CheckOutcome:
    """Every row is in one of the paper's 89 languages and is not a known kind of non-code file (by a
    list of licence, read-me and data names kept apart from the filter's language map); the language
    column is also re-derived from the path."""
    t = read_table(uri, ["path", "language"])
    paths, langs = t["path"].to_pylist(), t["language"].to_pylist()
    outside = [(p, lang) for p, lang in zip(paths, langs) if lang not in PAPER_LANGUAGES]
    non_code = [(p, lang) for p, lang in zip(paths, langs) if (name := p.rsplit("/", 1)[-1]) != "CMakeLists.txt"
                and (NON_CODE_NAMES.match(name) or name.lower().endswith(NON_CODE_SUFFIXES))]
    # A notebook's language is its kernel's (core/ingest/notebooks.py), not its path's: it must be stored as a
    # percent-format script, with a cell marker (the language's comment sign, then `%%`) near its top.
    mismatched = [(p, lang) for p, lang in zip(paths, langs) if not is_notebook(p) and language_of(p) != lang]
    if any(is_notebook(p) for p in paths):
        import pyarrow.compute as pc

        first = dataset(uri).to_table(columns={"path": pc.field("path"), "head": pc.utf8_slice_codeunits(
            pc.field("content"), 0, 4096)}, filter=pc.ends_with(pc.utf8_lower(pc.field("path")), ".ipynb"))
        mismatched += [(p, "not a notebook script") for p, head in zip(first["path"].to_pylist(),
                                                                      first["head"].to_pylist())
                       if not _NOTEBOOK_SCRIPT.search(head)]
    return CheckOutcome(not outside and not non_code and not mismatched, {
        "rows": len(paths), "not_a_paper_language": len(outside), "known_non_code_files": len(non_code),
        "language_not_from_path": len(mismatched),
        "examples": [f"{p}: {lang}" for p, lang in (outside + non_code + mismatched)[:10]]})


# -- syntax -------------------------------------------------------------------------------------------
def _python_compiles(text: str) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid escape sequences warn, they do not fail
        try:
            compile(text, "<file>", "exec", flags=ast.PyCF_ONLY_AST | ast.PyCF_TYPE_COMMENTS, dont_inherit=True)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return False
    return True


def _json_parses(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


# Languages with a checker of their own in the standard library, independent of tree-sitter, and the
# file name endings it judges (Cython's .pyx/.pxd count as Python by extension but are not Python).
NATIVE_CHECKERS: dict[str, Callable[[str], bool]] = {"Python": _python_compiles, "JSON": _json_parses}
NATIVE_SUFFIXES: dict[str, tuple[str, ...]] = {"Python": (".py", ".pyw", ".pyi"), "JSON": (".json",)}


def syntax_errors_left(uri: str, per_language: int = 1000, max_share: float = 0.01, seed: int = 0) -> CheckOutcome:
    """Of a seeded sample of each natively checkable language, the share its own parser rejects.

    Python's compiler and `json` judge what tree-sitter let through. A small share is expected
    (Python 2 files parse under tree-sitter's grammar, not under Python 3's), so the bound is a share.
    """
    rng = random.Random(seed)
    sample: dict[str, list[tuple[str, str]]] = defaultdict(list)
    seen: dict[str, int] = defaultdict(int)
    for batch in iter_batches(uri, ["path", "language", "content"], batch_rows=1024):
        langs = batch.column("language")
        mask = pc.is_in(langs, value_set=pa.array(list(NATIVE_CHECKERS)))
        if not pc.any(mask).as_py():
            continue
        for row in batch.filter(mask).to_pylist():  # reservoir sample per language
            lang = row["language"]
            if not row["path"].lower().endswith(NATIVE_SUFFIXES[lang]):
                continue
            seen[lang] += 1
            if len(sample[lang]) < per_language:
                sample[lang].append((row["path"], row["content"]))
            elif (j := rng.randrange(seen[lang])) < per_language:
                sample[lang][j] = (row["path"], row["content"])
    md: dict[str, Any] = {"max_share": max_share}
    passed = True
    for lang, rows in sorted(sample.items()):
        bad = [p for p, text in rows if not NATIVE_CHECKERS[lang](text)]
        share = len(bad) / len(rows)
        md[lang] = {"checked": len(rows), "rejected": len(bad), "share": round(share, 4), "examples": bad[:5]}
        passed &= share <= max_share
    return CheckOutcome(passed, md)


# -- near dedup ---------------------------------------------------------------------------------------
_WORDS = re.compile(r"\w+")


def word_ngram_set(text: str, n: int = 5) -> frozenset[int]:
    """Word n-grams by Python's own `\\w+` tokenizer and tuple hashing: a definition independent of the
    shingling the near-dedup stage uses (its own byte-level tokenizer, hashes and MinHash)."""
    w = _WORDS.findall(text)
    if len(w) < n:
        return frozenset({hash(tuple(w))}) if w else frozenset()
    return frozenset(hash(tuple(w[i:i + n])) for i in range(len(w) - n + 1))


def jaccard(a: frozenset[int], b: frozenset[int]) -> float:
    """Exact Jaccard; two files without words are not evidence of anything (0.0)."""
    return len(a & b) / len(a | b) if (a and b) else 0.0


def near_duplicates_left(uri: str, threshold: float = 0.7, max_pairs: int = 6000, group_cap: int = 16,
                         max_share: float = 0.01, seed: int = 0, batch_rows: int = 1024) -> CheckOutcome:
    """Kept files that still have a near duplicate among the kept files: exact word 5-gram Jaccard >= `threshold`.

    Candidates come from two generators the stage does not use: files with the same file name
    (versions and vendored copies of one module keep their name), at most `group_cap` per name; and a
    MinHash LSH over *every* kept file with another seed and another layout (60 permutations in 20
    bands of 3: P(candidate | J=0.7) = 0.99998), which shares only the tokenizer with the stage. The
    verdict is the exact Jaccard of `word_ngram_set` (Python's tokenizer) for at most `max_pairs`
    candidates, the most similar by the second LSH's estimate first. A stage with recall below 1
    leaves a few, so the bound is the share of all kept files that still have a near duplicate.
    """
    rng = random.Random(seed)
    ids = read_table(uri, ["id", "path"])
    all_ids = ids["id"].to_pylist()
    by_name: dict[str, list[str]] = defaultdict(list)
    for id_, path in zip(all_ids, ids["path"].to_pylist()):
        by_name[path.rsplit("/", 1)[-1]].append(id_)
    named: list[tuple[str, str]] = []
    for g in by_name.values():
        g = sorted(g) if len(g) <= group_cap else sorted(rng.sample(g, group_cap))
        named += [(a, b) for k, a in enumerate(g) for b in g[k + 1:]]
    rng.shuffle(named)
    other = minhash.MinHashParams(num_perm=60, bands=20, rows=3, seed=seed + 1009)
    order, sigs, counts = [], [], []
    for batch in iter_batches(uri, ["id", "content"], batch_rows):
        s, c = minhash.signatures(batch.column("content"), other)
        order += batch.column("id").to_pylist()
        sigs.append(s)
        counts.append(c)
    lsh: list[tuple[str, str]] = []
    if len(order) > 1:
        sig = np.concatenate(sigs)
        pairs = minhash.candidate_pairs(minhash.band_keys(sig, other), np.concatenate(counts) > 0, 10**5)
        est = minhash.pair_similarity(sig, pairs)
        keep = np.argsort(-est, kind="stable")[: max_pairs]
        lsh = [(min(order[a], order[b]), max(order[a], order[b])) for a, b in pairs[keep].tolist()]
    candidates = list(dict.fromkeys(lsh[: max_pairs // 2] + named[: max_pairs // 2] + lsh[max_pairs // 2:]))
    checked = candidates[:max_pairs]
    wanted = sorted({i for p in checked for i in p})
    rows = read_rows(uri, wanted, ["content"]) if wanted else None
    grams = {i: word_ngram_set(t) for i, t in zip(rows["id"].to_pylist(), rows["content"].to_pylist())} if rows else {}
    left = sorted([(a, b, j) for a, b in checked if (j := jaccard(grams.get(a, frozenset()), grams.get(b, frozenset())))
                   >= threshold], key=lambda x: -x[2])
    files_left = {i for a, b, _ in left for i in (a, b)}
    share = len(files_left) / max(1, len(all_ids))
    return CheckOutcome(share <= max_share, {
        "kept_files": len(all_ids), "candidates_same_name": len(named), "candidates_other_lsh": len(lsh),
        "pairs_checked": len(checked), "pairs_left": len(left), "files_with_a_near_duplicate_left": len(files_left),
        "share": round(share, 5), "max_share": max_share,
        "examples": [f"{a} ~ {b}: {j:.3f}" for a, b, j in left[:10]]})


# -- quality ------------------------------------------------------------------------------------------
def scores_respect_threshold(output_uri: str, scores_uri: str, input_uri: str, threshold: float) -> CheckOutcome:
    """By the scores partition (not the output's own column): no output file scores below the
    threshold, and no input file at or above it is missing from the output."""
    con = duckdb_connect()
    con.execute(f"CREATE TEMP VIEW s AS SELECT id, score FROM {duckdb_source(scores_uri)}")
    below = con.execute(f"SELECT count(*) FROM {duckdb_source(output_uri)} o LEFT JOIN s USING (id) "
                        "WHERE s.score IS NULL OR s.score < ?", [threshold]).fetchone()[0]
    missing = con.execute(f"SELECT count(*) FROM {duckdb_source(input_uri)} i JOIN s USING (id) "
                          f"ANTI JOIN {duckdb_source(output_uri)} o USING (id) WHERE s.score >= ?",
                          [threshold]).fetchone()[0]
    con.close()
    return CheckOutcome(below == 0 and missing == 0, {"below_threshold_or_unscored": below,
                                                      "above_threshold_missing": missing, "threshold": threshold})


def scorer_within_bounds(mae: float, baseline_mae: float, max_mae: float, min_gain: float) -> CheckOutcome:
    """A scorer's held-out MAE is under an absolute bound and at least `min_gain` below the MAE of
    predicting the training mean (a scorer that only learned the mean scores ~the baseline)."""
    passed = mae <= max_mae and mae <= baseline_mae - min_gain
    return CheckOutcome(passed, {"mae": round(mae, 4), "bound": max_mae, "baseline_mae": round(baseline_mae, 4),
                                 "required_gain_over_baseline": min_gain, "gain": round(baseline_mae - mae, 4)})
