"""The LLM half of the web corpus on real pages (Debian documentation WARCs) with an oracle on loopback: the
label sample, the oracle's three-line answers through the client and its cache, the recall model trained
on them, recall applied per page, and the corpus by category threshold and rate, with each check fed
bad output."""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from seedcoder_assets.core.parquet_io import read_table
from seedcoder_assets.core.quality.labels import LabelCache
from seedcoder_assets.core.quality.oracle import OracleSettings
from seedcoder_assets.core.stats import LineageWriter
from seedcoder_assets.core.web.checks import corpus_respects_thresholds, recall_on_held_out, scores_cover_recalled
from seedcoder_assets.core.web.judge import (
    RecallApply,
    WebCorpusParams,
    histograms,
    judge_pages,
    recall_examples,
    recall_pages,
    sample_pages,
    score_pages,
    select_corpus,
)
from seedcoder_assets.core.web.pages import WebPageParams, extract_pages
from seedcoder_assets.core.web.prompt import WEB_PROMPT_VERSION, parse_web_answer
from seedcoder_assets.core.web.recall import MODEL_FILE, RecallParams, train_recall
from seedcoder_assets.sample_web import build_dump
from seedcoder_assets.testing.fake_oracle import FakeOracle, Faults


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dump = build_dump(tmp_path_factory.mktemp("web") / "w1", "small")
    lake = tmp_path_factory.mktemp("lake")
    extract_pages("w1", str(dump), f"{lake}/pages", LineageWriter(str(lake), "web_pages", "w1", "r", "web"),
                  WebPageParams())
    return lake


def _duckdb():
    from seedcoder_assets.core.object_store import duckdb_connect

    return duckdb_connect(memory_limit="1GB")


def test_sample_judge_recall_and_corpus(lake: Path, tmp_path: Path) -> None:
    pages = f"{lake}/pages"
    sample = sample_pages(pages, {"code_tag": 200, "other": 10_000}, seed=0)
    strata = dict(zip(*pl.from_arrow(sample)["language"].value_counts().to_dict(as_series=False).values()))
    assert strata["code_tag"] == 200 and strata["other"] > 100  # every untagged page, 200 tagged ones
    wider = sample_pages(pages, {"code_tag": 300, "other": 10_000}, seed=0)
    assert set(sample["id"].to_pylist()) < set(wider["id"].to_pylist())  # a wider sample keeps the earlier picks

    with FakeOracle(Faults(p_unparseable=0.05, p_500=0.1)) as oracle:
        settings = OracleSettings(oracle.base_url, "fake-oracle", backoff_s=0.01, max_concurrency=8)
        cache = LabelCache(str(tmp_path / "cache"), settings.model, WEB_PROMPT_VERSION)
        labels, run = judge_pages(sample, pages, settings, cache, "run-1", 8000)
        asked = oracle.state.requests
        again, run2 = judge_pages(sample, pages, settings, cache, "run-2", 8000)
    assert run.asked == sample.num_rows and run2.asked == 0 and run2.cached == sample.num_rows
    assert labels.num_rows == sample.num_rows and asked > sample.num_rows  # retried the 500s
    ok = labels.filter(pa.compute.equal(labels["status"], "ok"))
    failed = labels.filter(pa.compute.equal(labels["status"], "parse_failure"))
    assert failed.num_rows > 0 and failed["rating"].null_count == failed.num_rows  # never guessed
    assert ok["category"].null_count == 0 and ok["code_related"].null_count == 0
    for row in ok.slice(0, 20).to_pylist():  # what the table says is what the answer says
        judged = parse_web_answer(row["raw"])
        assert (judged.category, judged.code_related, judged.rating) == (row["category"], row["code_related"],
                                                                        row["rating"])
    pq.write_table(labels, tmp_path / "labels.parquet")
    (tmp_path / "labels").mkdir()
    pq.write_table(labels, tmp_path / "labels" / "part-0.parquet")
    (tmp_path / "labels" / "_SUCCESS").write_text("")

    examples = recall_examples([(str(tmp_path / "labels"), pages)], 2000)
    assert len(examples) == ok.num_rows and {e.code for e in examples} == {True, False}
    assert {e.tagged for e in examples} == {True, False}
    params = RecallParams(target_recall=0.95)
    report = train_recall(examples, params, tmp_path / "model")
    assert report["fit_recall"] >= 0.95
    checking = set(report["checking_sites"])
    model_file = str(tmp_path / "model" / MODEL_FILE)
    check = recall_on_held_out(model_file, examples, checking, report["threshold"], 0.0)
    assert check.metadata["recall"] == pytest.approx(report["check_recall"])  # the same pages, by fastText itself
    # The bound decides: a recall it does not reach fails, and so does a threshold that recalls nothing.
    assert not recall_on_held_out(model_file, examples, checking, report["threshold"],
                                  report["check_recall"] + 1e-6).passed
    assert not recall_on_held_out(model_file, examples, checking, 1.01, 0.5).passed

    apply = RecallApply(model_path=str(tmp_path / "model" / MODEL_FILE), threshold=report["threshold"],
                        version="wr-test", max_tokens=params.max_tokens)
    stats = recall_pages(pages, str(tmp_path / "recalled"), LineageWriter(str(tmp_path), "recalled_web_pages", "w1",
                                                                          "r", "web"), apply)
    recalled = pl.read_parquet(tmp_path / "recalled" / "*.parquet")
    everything = pl.read_parquet(f"{pages}/*.parquet")
    assert stats.rows_in == everything.height and stats.rows_out == recalled.height
    assert set(recalled.filter(pl.col("recall_branch") == "code_tag")["id"]) == set(
        everything.filter(pl.col("code_tag"))["id"])  # every tagged page passes by rule
    by_model = recalled.filter(pl.col("recall_branch") == "recalled")
    assert by_model.height and (by_model["recall_score"] >= report["threshold"]).all()
    assert set(stats.drops) <= {"not_code_related"} and stats.drops.get("not_code_related", 0) > 0

    (tmp_path / "recalled" / "_SUCCESS").touch()
    parts: list[pa.Table] = []
    with FakeOracle() as oracle:
        settings = OracleSettings(oracle.base_url, "fake-oracle", backoff_s=0.01, max_concurrency=8)
        cache = LabelCache(str(tmp_path / "cache"), settings.model, WEB_PROMPT_VERSION)
        run = score_pages(str(tmp_path / "recalled"), settings, cache, "run-3", 8000, parts.append, chunk_rows=100)
    scores = pa.concat_tables(parts)
    assert len(parts) >= recalled.height // 100 and scores.num_rows == recalled.height  # streamed in chunks
    assert run.cached > 0 and run.asked == recalled.height - run.cached  # sampled pages were not asked twice
    (tmp_path / "scores").mkdir()
    pq.write_table(scores, tmp_path / "scores" / "part-0.parquet")
    (tmp_path / "scores" / "_SUCCESS").write_text("")
    covered = scores_cover_recalled(str(tmp_path / "recalled"), str(tmp_path / "scores"), 0.05)
    assert covered.passed, covered.metadata
    # Fed scores with a page missing and another twice: the check fails and says which.
    (tmp_path / "bad-scores").mkdir()
    pq.write_table(pa.concat_tables([scores.slice(1), scores.slice(5, 1)]), tmp_path / "bad-scores" / "p.parquet")
    (tmp_path / "bad-scores" / "_SUCCESS").touch()
    bad = scores_cover_recalled(str(tmp_path / "recalled"), str(tmp_path / "bad-scores"), 0.05)
    assert not bad.passed and bad.metadata["without_score_row"] == 1 and bad.metadata["scored_twice"] == 1

    corpus_params = WebCorpusParams(thresholds={"documentation": 7, "reference_api": 5, "qa_forum": 3,
                                                "blog_tutorial": 5, "ecommerce": 9, "other": 6},
                                    rates={"reference_api": 0.5})
    assert corpus_params.rate("ecommerce") == 0.5  # a partial setting keeps the other categories' defaults
    with pytest.raises(ValueError, match="unknown site categories"):
        WebCorpusParams(rates={"forum": 0.5})
    stats = select_corpus(str(tmp_path / "recalled"), str(tmp_path / "scores"), str(tmp_path / "corpus"),
                          LineageWriter(str(tmp_path), "web_corpus", "w1", "r", "web"), corpus_params, _duckdb())
    (tmp_path / "corpus" / "_SUCCESS").touch()
    corpus = pl.read_parquet(tmp_path / "corpus" / "*.parquet")
    assert stats.rows_in == recalled.height and stats.rows_out == corpus.height > 0
    assert {"below_category_threshold", "sampled_out"} <= set(stats.drops)
    for row in corpus.iter_rows(named=True):
        assert row["rating"] >= corpus_params.threshold(row["category"])
    api = scores.filter(pa.compute.equal(scores["category"], "reference_api")).to_pylist()
    passing = [r for r in api if r["rating"] >= 5 and r["code_related"]]
    kept = corpus.filter(pl.col("category") == "reference_api").height
    assert 0.3 * len(passing) < kept < 0.7 * len(passing)  # rate 0.5
    after = histograms(read_table(str(tmp_path / "corpus"), ["category", "rating"]))
    assert sum(map(sum, (h.values() for h in after.values()))) == corpus.height
    assert all(after[c][r] == 0 for c in after for r in range(corpus_params.threshold(c)))  # nothing under a bar

    good = corpus_respects_thresholds(str(tmp_path / "corpus"), str(tmp_path / "scores"), corpus_params)
    assert good.passed, good.metadata
    # Fed a corpus with a page under its category's bar and one without a score (its columns claiming a high
    # rating): the check reads the replies, not the columns, and fails on both.
    low = scores.filter(pa.compute.less(scores["rating"], 3)).slice(0, 1)["id"][0].as_py()
    fake = corpus.drop("id").head(1).with_columns(pl.lit(10, pl.Int8).alias("rating"))
    bad = pl.concat([corpus, pl.DataFrame({"id": [low, "urn:uuid:never-scored"]}).join(fake, how="cross")
                     .select(corpus.columns)])
    (tmp_path / "bad").mkdir()
    bad.write_parquet(tmp_path / "bad" / "part-0.parquet")
    (tmp_path / "bad" / "_SUCCESS").touch()
    outcome = corpus_respects_thresholds(str(tmp_path / "bad"), str(tmp_path / "scores"), corpus_params)
    assert not outcome.passed and outcome.metadata["below_threshold"] == 1 and outcome.metadata["unscored"] == 1


def test_an_answer_about_other_text_is_asked_again(lake: Path, tmp_path: Path) -> None:
    pages = f"{lake}/pages"
    sample = sample_pages(pages, {"code_tag": 5, "other": 5}, seed=1)
    # The same records extracted again with other text (a new extractor): the same ids, three new texts.
    changed_ids = sample["id"].to_pylist()[:3]
    frame = pl.read_parquet(f"{pages}/*.parquet")
    edited = pl.col("id").is_in(changed_ids)
    frame = frame.with_columns(pl.when(edited).then(pl.col("text") + " (revised)").otherwise(pl.col("text")).alias("text"))
    frame = frame.with_columns(pl.when(edited).then(pl.col("text").map_elements(
        lambda t: hashlib.sha256(t.encode()).hexdigest(), return_dtype=pl.String)).otherwise(pl.col("text_hash"))
        .alias("text_hash"))
    (tmp_path / "pages2").mkdir()
    frame.write_parquet(tmp_path / "pages2" / "part-0.parquet")
    (tmp_path / "pages2" / "_SUCCESS").touch()
    resampled = sample_pages(str(tmp_path / "pages2"), {"code_tag": 5, "other": 5}, seed=1)
    assert resampled["id"].to_pylist() == sample["id"].to_pylist()
    with FakeOracle() as oracle:
        settings = OracleSettings(oracle.base_url, "fake-oracle", backoff_s=0.01)
        cache = LabelCache(str(tmp_path / "cache"), settings.model, WEB_PROMPT_VERSION)
        _, first = judge_pages(sample, pages, settings, cache, "r1", 8000)
        labels, again = judge_pages(resampled, str(tmp_path / "pages2"), settings, cache, "r2", 8000)
    assert first.asked == 10 and again.cached == 7 and again.asked == 3
    assert set(labels["status"].to_pylist()) == {"ok"}
    assert labels["sha256"].to_pylist() == resampled["sha256"].to_pylist()
