"""The quality branch end to end on the small real crawl, against a local OpenAI-compatible server with faults."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml

from seedcoder_assets.core.catalog import catalog
from seedcoder_assets.core.parquet_io import iter_batches
from seedcoder_assets.core.quality.scorer import build_tiny_llama
from seedcoder_assets.definitions import defs
from seedcoder_assets.partitions import shard_partition
from seedcoder_assets.resources.catalog import CatalogResource
from seedcoder_assets.resources.oracle import OracleResource
from seedcoder_assets.resources.storage import StorageResource
from seedcoder_assets.testing.branch import run_github_branch
from seedcoder_assets.testing.fake_oracle import FakeOracle, Faults

FAULTS = Faults(p_500=0.15, p_drop=0.05, p_torn=0.05, p_delay=0.05, delay_s=3.0, p_unparseable=0.04)
SAMPLE = {"quotas": {"Python": 200, "C": 30, "JavaScript": 20, "Shell": 10, "Markdown": 30, "HTML": 10},
          "scale": 1.0, "seed": 0}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, small_crawl: Path):
    home = tmp_path_factory.mktemp("qhome")
    shutil.copytree(small_crawl, home / "landing" / "c1")
    storage = StorageResource(lake_root=str(home / "lake"), landing_root=str(home / "landing"),
                              local_dir=str(home / "local"), model_root=str(home / "models"))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("crawl", ["c1"])
    base = {"storage": storage, "catalog_db": CatalogResource(database=str(home / "catalog.duckdb"))}
    assert run_github_branch(defs(), instance, "c1", resources=base).success

    def texts():
        for batch in iter_batches(f"{home}/lake/filters/syntax_checked_files/crawl=c1", ["content"]):
            yield from batch.column("content").to_pylist()

    backbone = build_tiny_llama(texts(), home / "tiny-llama")
    with FakeOracle(FAULTS, model="judge") as server:
        oracle = OracleResource(base_url=server.base_url, model="judge", timeout_s=1.0, max_concurrency=16,
                                backoff_s=0.01, max_retries=4, structured_output="none")
        yield {"home": home, "instance": instance, "base": base, "server": server, "oracle": oracle,
               "backbone": str(backbone)}


def _job(env, name: str, crawl: str | None = "c1", oracle: OracleResource | None = None, config=None,
         raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
    resources = {**env["base"], "oracle": oracle or env["oracle"]}
    # A job of the quality branch and the one after it, as the CLI runs them: one result
    following = {"scoring_job": ("scoring_job", "corpus_job"),  # every shard scored, then the crawl's corpora
                 "oracle_labels_job": ("label_sample_job", "oracle_labels_job")}  # the sample, then each shard's labels
    if name in following:
        return run_github_branch(defs(), env["instance"], crawl, jobs=following[name],
                                 resources=resources, run_config=config or {}, raise_on_error=raise_on_error)
    return defs().resolve_job_def(name).execute_in_process(
        resources=resources, instance=env["instance"], partition_key=crawl, run_config=config or {},
        raise_on_error=raise_on_error)


def _labels_config(sample=SAMPLE) -> dict:
    return {"ops": {"quality__oracle_label_sample": {"config": sample}}}


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    return {e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
            for e in result.get_asset_materialization_events()}[asset]


def test_no_oracle_configured_stops_with_one_clear_message(env) -> None:
    result = _job(env, "oracle_labels_job", oracle=OracleResource(), config=_labels_config(), raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = str(failure.event_specific_data.error)
    assert "SEEDCODER_ORACLE_URL" in message and "seedcoder oracle serve" in message
    # The sample itself does not need the oracle and was materialized.
    assert any(e.asset_key.to_user_string() == "quality/oracle_label_sample"
               for e in result.get_asset_materialization_events())


def test_labels_survive_faults_and_are_never_asked_twice(env) -> None:
    server = env["server"]
    result = _job(env, "oracle_labels_job", config=_labels_config())
    md = _metadata(result, "quality/oracle_labels")
    labels = pl.read_parquet(f"{env['home']}/lake/quality/oracle_labels/crawl=c1/**/*.parquet")
    assert labels.height == md["dagster/row_count"].value > 250
    statuses = dict(labels.group_by("status").len().iter_rows())
    assert set(statuses) <= {"ok", "parse_failure"} and statuses["ok"] > 0.9 * labels.height
    # 500s, dropped connections, torn bodies and stalls were all retried into answers.
    assert md["retries"].value > 0
    # A reply without a rating is kept with its text and never becomes a number.
    failures = labels.filter(pl.col("status") == "parse_failure")
    assert failures.height > 0 and failures["rating"].null_count() == failures.height
    assert all("Rating" not in r and r for r in failures["raw"])
    ok = labels.filter(pl.col("status") == "ok")
    assert ok["rating"].null_count() == 0 and ok["rating"].is_between(0, 10).all()
    assert labels.filter(pl.col("language") == "Python").height == 200
    assert result.get_asset_check_evaluations()[0].passed

    asked = server.state.requests
    again = _job(env, "oracle_labels_job", config=_labels_config())
    assert server.state.requests == asked  # everything came from the cache
    assert _metadata(again, "quality/oracle_labels")["asked"].value == 0
    relabeled = pl.read_parquet(f"{env['home']}/lake/quality/oracle_labels/crawl=c1/**/*.parquet")
    assert relabeled.sort("id").select("id", "status", "rating").equals(labels.sort("id").select("id", "status", "rating"))


def test_a_wider_sample_and_an_outage_ask_only_for_what_is_missing(env) -> None:
    server, home = env["server"], env["home"]
    before = pl.read_parquet(f"{home}/lake/quality/oracle_labels/crawl=c1/**/*.parquet")
    wider = {**SAMPLE, "quotas": {**SAMPLE["quotas"], "Python": 260, "C": 40}}
    server.state.faults = Faults(down=True)
    down = _job(env, "oracle_labels_job", oracle=env["oracle"].model_copy(update={"abort_after_errors": 5,
                                                                                 "max_retries": 1}),
                config=_labels_config(wider), raise_on_error=False)
    assert not down.success
    failure = next(e for e in down.all_events if e.event_type_value == "STEP_FAILURE")
    assert "re-materialize to resume" in str(failure.event_specific_data.error)

    server.state.faults = FAULTS
    requests_before = server.state.requests
    result = _job(env, "oracle_labels_job", config=_labels_config(wider))
    md = _metadata(result, "quality/oracle_labels")
    after = pl.read_parquet(f"{home}/lake/quality/oracle_labels/crawl=c1/**/*.parquet")
    assert md["asked"].value == after.height - before.height == 70
    assert md["cached"].value == before.height
    assert server.state.requests - requests_before >= 70
    # The earlier picks are still in the wider sample, with the same answers.
    kept = after.join(before.select("id", "rating"), on="id", suffix="_before")
    assert kept.height == before.height and (kept["rating"].eq_missing(kept["rating_before"])).all()


def test_scorer_scores_and_corpora(env) -> None:
    home = env["home"]
    scorer_config = {"ops": {"quality__quality_scorer": {"config": {
        "backbone": env["backbone"], "learning_rate": 1e-3, "max_tokens": 256, "batch_size": 16, "max_mae": 2.5,
        "epochs": 3}}}}
    trained = _job(env, "scorer_job", crawl=None, config=scorer_config)
    md = _metadata(trained, "quality/quality_scorer")
    # A random-init tiny backbone on ~300 labels proves the mechanics; what a pretrained backbone
    # learns is measured in benchmarks/bench_quality.py.
    assert 0 < md["mae"].value <= 2.5 and md["baseline_mae"].value > 0 and md["n_test"].value > 10
    assert md["cmae_over_ratings_present"].value > 0 and "image/png;base64" in md["predicted_by_true_rating"].value
    missing = md["ratings_missing_from_test"].value
    assert (md["cmae"].value is None) == bool(missing)  # cMAE over all 11 ratings only when all have test files
    assert "| rating | n | MAE |" in md["per_rating"].value
    version = md["version"].value
    assert all(e.passed for e in trained.get_asset_check_evaluations())

    corpus_config = {"ops": {"quality__quality_files": {"config": {"keep_quantile": 0.6}}}}
    scored = _job(env, "scoring_job", config=corpus_config)
    assert all(e.passed for e in scored.get_asset_check_evaluations())
    scores = pl.read_parquet(f"{home}/lake/quality/file_quality_scores/crawl=c1/**/*.parquet")
    files = pl.read_parquet(f"{home}/lake/filters/syntax_checked_files/crawl=c1/**/*.parquet")
    assert sorted(scores["id"]) == sorted(files["id"]) and (scores["scorer_version"] == version).all()
    kept = pl.read_parquet(f"{home}/lake/quality/quality_files/crawl=c1/**/*.parquet")
    threshold = _metadata(scored, "quality/quality_files")["threshold"].value
    assert 0.6 * files.height <= kept.height < files.height and kept["score"].min() >= threshold  # ties at the cut stay
    smd = _metadata(scored, "quality/file_quality_scores")
    assert smd["files_per_s"].value > 0 and smd["tokens_per_s"].value > 0
    repo_files = pl.read_parquet(f"{home}/lake/quality/repo_level_corpus/crawl=c1/**/*.parquet")
    level = pl.read_parquet(f"{home}/lake/dedup/repo_level_files/crawl=c1/**/*.parquet")
    assert repo_files.height == level.height and repo_files["score"].null_count() == 0
    repos = pl.read_parquet(f"{home}/lake/quality/repo_quality/crawl=c1/**/*.parquet")
    assert repos["n_files"].sum() == level.height and repos["mean_score"].is_between(0, 10).all()
    rmd = _metadata(scored, "quality/repo_level_corpus")
    assert rmd["scores_reused"].value > 0  # syntax-checked content was not scored twice

    # Lineage: every syntax-checked file has one quality row with its score and the scorer version.
    _job(env, "catalog_job", crawl=None)
    conn = catalog.open_catalog(str(home / "catalog.duckdb"), str(home / "lake"))
    rows = conn.execute("SELECT decision, reason, score, detail FROM lineage WHERE stage = 'quality_files'").fetchall()
    assert len(rows) == files.height and all(version in r[3] and r[2] is not None for r in rows)
    assert {r[1] for r in rows if r[0] == "dropped"} == {"low_quality_score"}
    assert catalog.chain_violations(conn) == []

    # Same inputs, same model version; a new config is a new version that makes the scores stale.
    assert _metadata(_job(env, "scorer_job", crawl=None, config=scorer_config),
                     "quality/quality_scorer")["version"].value == version
    # The UI's own staleness logic (what marks assets "stale" in the asset graph).
    from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
    from dagster._core.loader import LoadingContextForTest

    def stale() -> StaleStatus:
        resolver = CachingStaleStatusResolver(env["instance"], defs().resolve_asset_graph(),
                                              LoadingContextForTest(env["instance"]))
        key = shard_partition("c1", "000")  # the crawl's one shard
        return resolver.get_status(dg.AssetKey(["quality", "file_quality_scores"]), key)

    _job(env, "scoring_job", config=corpus_config)
    assert stale() == StaleStatus.FRESH
    scorer_config["ops"]["quality__quality_scorer"]["config"]["seed"] = 1
    retrained = _job(env, "scorer_job", crawl=None, config=scorer_config)
    assert _metadata(retrained, "quality/quality_scorer")["version"].value != version
    assert stale() == StaleStatus.STALE


def test_high_quality_rounds_and_corpus(env, tmp_path: Path) -> None:
    """Three rounds over the crawl's scored files (sources placed by this crawl's score quantiles: the tiny
    scorer's scale is its own), then the crawl's high-quality files; the same inputs reuse every round."""
    home = env["home"]
    scores = pl.read_parquet(f"{home}/lake/quality/file_quality_scores/crawl=c1/**/*.parquet")["score"]
    sources = [{"name": "documented", "languages": ["Python"], "min_score": float(scores.quantile(0.5)),
                "require_docstring": True, "min_comment_ratio": 0.02, "seed_size": 150, "max_per_repo": 15},
               {"name": "general", "min_score_quantile": 0.7, "seed_size": 150, "max_per_repo": 15}]
    (tmp_path / "sources.yaml").write_text(yaml.safe_dump(sources))
    config = {"sources_file": str(tmp_path / "sources.yaml"), "quality_floor_quantile": 0.5,
              "min_held_out_recall": 0.5}
    run_config = {"ops": {f"high_quality__hq_round_{n}": {"config": config} for n in (1, 2, 3)}}
    rounds = _job(env, "hq_rounds_job", crawl=None, config=run_config)
    mds = [_metadata(rounds, f"high_quality/hq_round_{n}") for n in (1, 2, 3)]
    assert [md["seeds"].value for md in mds][0] > 100 and all(md["reused"].value is False for md in mds)
    assert mds[1]["seeds"].value == mds[0]["seeds"].value + mds[0]["new_positives"].value  # the loop grows
    assert mds[2]["overlap_with_previous"].value is not None and "image/png" in mds[2]["new_positives_per_round"].value
    assert mds[0]["quality_floor"].value == pytest.approx(float(scores.quantile(0.5)), abs=0.05)
    assert "| documented |" in mds[0]["seeds_preview"].value and "| hard_uncommented |" in mds[0]["negatives_preview"].value
    checks = {e.asset_key.to_user_string(): (e.passed, e.metadata) for e in rounds.get_asset_check_evaluations()}
    assert all(checks[f"high_quality/hq_round_{n}"][0] for n in (1, 2, 3)), checks
    corpus = _job(env, "hq_corpus_job", crawl="c1")
    assert all(e.passed for e in corpus.get_asset_check_evaluations()), [
        (e.check_name, e.metadata) for e in corpus.get_asset_check_evaluations()]
    kept = pl.read_parquet(f"{home}/lake/high_quality/high_quality_files/crawl=c1/*.parquet")
    assert kept.height > 0 and set(kept["hq_source"]) <= {"documented", "general"}
    lineage = pl.read_parquet(f"{home}/lake/lineage/stage=high_quality_files/crawl=c1/*.parquet")
    assert lineage.height == pl.read_parquet(f"{home}/lake/filters/syntax_checked_files/crawl=c1/**/*.parquet").height
    again = _job(env, "hq_rounds_job", crawl=None, config=run_config)  # same inputs: the same versions, reused
    assert [_metadata(again, f"high_quality/hq_round_{n}")["version"].value for n in (1, 2, 3)] == [
        md["version"].value for md in mds]
    assert all(_metadata(again, f"high_quality/hq_round_{n}")["reused"].value for n in (1, 2, 3))


def test_long_context_corpus(env) -> None:
    """The crawl's repositories above the bar (a quantile: the tiny scorer's scale is its own) as sequences
    within a budget small enough to cut them, counted by the tiny Llama's own BPE; its long files; every
    check passes, and a re-run writes the same sequences."""
    home = env["home"]
    config = {"min_repo_score_quantile": 0.3, "budget_tokens": 4096, "min_file_tokens": 2048,
              "tokenizer": env["backbone"]}
    run_config = {"ops": {f"long_context__{name}": {"config": config}
                          for name in ("long_context_sequences", "long_context_files")}}
    result = _job(env, "long_context_job", crawl="c1", config=run_config)
    checks = {(e.asset_key.to_user_string(), e.check_name): (e.passed, e.metadata)
              for e in result.get_asset_check_evaluations()}
    assert len(checks) == 7 and all(passed for passed, _ in checks.values()), checks
    md = _metadata(result, "long_context/long_context_sequences")
    assert md["sequences"].value > 10 and md["tokenizer"].value.startswith(env["backbone"])
    assert "image/png" in md["dependency_graph"].value and "image/png" in md["sequences_per_length"].value
    assert md["imports_per_language"].value["Python"]["resolved"] > 100
    seqs = pl.read_parquet(f"{home}/lake/long_context/long_context_sequences/crawl=c1/*.parquet")
    assert seqs["pieces"].max() > 1 and seqs["tokens"].max() <= 4096
    files = pl.read_parquet(f"{home}/lake/long_context/long_context_files/crawl=c1/*.parquet")
    assert files.height > 0 and files["tokens"].min() >= 2048
    again = _job(env, "long_context_job", crawl="c1", config=run_config)
    assert again.success
    assert pl.read_parquet(f"{home}/lake/long_context/long_context_sequences/crawl=c1/*.parquet").equals(seqs)


def test_decontamination_of_every_corpus(env, tmp_path: Path) -> None:
    """The index (HumanEval, and a benchmark made of three of the crawl's files) built once per content, the
    crawl's five corpora decontaminated with every check passing; a second benchmark is a new index version
    and the re-run checks only its n-grams."""
    home = env["home"]
    files = pl.read_parquet(f"{home}/lake/quality/quality_files/crawl=c1/*.parquet").filter(
        pl.col("language") == "Python").sort("size", descending=True)
    folder = tmp_path / "benchmarks"
    folder.mkdir()

    def bench(name: str, rows: pl.DataFrame) -> None:
        (folder / f"{name}.jsonl").write_text("".join(
            json.dumps({"task_id": f"{name}/{i}", "prompt": c[len(c) // 2:][:2000]}) + "\n"
            for i, c in enumerate(rows["content"])))

    bench("copied", files.slice(5, 3))
    config = {"ops": {"training__benchmark_ngrams": {"config": {"benchmarks": [{"path": str(folder)}]}}}}
    first = _job(env, "benchmark_index_job", crawl=None, config=config)
    md = _metadata(first, "training/benchmark_ngrams")
    assert set(md["benchmarks"].value) == {"humaneval", "copied"} and md["reused"].value is False
    assert _metadata(_job(env, "benchmark_index_job", crawl=None, config=config),
                     "training/benchmark_ngrams")["reused"].value is True
    result = _job(env, "decontam_job")
    checks = {(e.asset_key.to_user_string(), e.check_name): (e.passed, e.metadata)
              for e in result.get_asset_check_evaluations()}
    assert len(checks) == 15 and all(passed for passed, _ in checks.values()), checks
    qf = _metadata(result, "training/decontaminated_quality_files")
    assert qf["benchmarks_matched"].value.get("copied", 0) >= 3 and qf["check"].value == "full"
    lineage = pl.read_parquet(f"{home}/lake/lineage/stage=decontaminated_quality_files/crawl=c1/*.parquet")
    assert set(files.slice(5, 3)["id"]) <= set(lineage.filter(pl.col("reason") == "contaminated:copied")["id"])
    kept = pl.read_parquet(f"{home}/lake/training/decontaminated_quality_files/crawl=c1/*.parquet")
    assert kept.height == lineage.filter(pl.col("decision") == "kept").height
    from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
    from dagster._core.loader import LoadingContextForTest

    def stale() -> StaleStatus:  # the UI's own staleness logic
        resolver = CachingStaleStatusResolver(env["instance"], defs().resolve_asset_graph(),
                                              LoadingContextForTest(env["instance"]))
        return resolver.get_status(dg.AssetKey(["training", "decontaminated_quality_files"]), "c1")

    assert stale() == StaleStatus.FRESH
    bench("copied_later", files.slice(20, 2))
    second = _job(env, "benchmark_index_job", crawl=None, config=config)
    assert _metadata(second, "training/benchmark_ngrams")["version"].value != md["version"].value
    assert stale() == StaleStatus.STALE  # a new benchmark version: every decontaminated partition
    again = _job(env, "decontam_job")
    assert all(e.passed for e in again.get_asset_check_evaluations())
    qf2 = _metadata(again, "training/decontaminated_quality_files")
    assert qf2["check"].value == "incremental" and qf2["drops_reused"].value == qf["rows_dropped"].value
    assert qf2["benchmarks_matched"].value.get("copied_later", 0) >= 2


def test_phase_mixtures_as_token_shards_back_to_the_crawl(env, tmp_path: Path) -> None:
    """Both phases of the crawl's decontaminated corpora as Megatron shards counted by the tiny Llama's BPE; every
    check passes; a re-run writes nothing; a document of a long-context shard leads back to every crawl file in
    it; Megatron's own reader reads the shards."""
    from seedcoder_assets.cli import shard_document
    from seedcoder_assets.core.catalog import catalog

    home = env["home"]
    # continued: the crawl's smaller corpora (tokenizing is the cost; the core tests mix every kind)
    smaller = ["high_quality_files", "long_context_sequences", "long_context_files"]
    config = {"continued": {"sources": [{"corpus": c, "weight": 1.0, "max_epochs": 3.0} for c in smaller]},
              "regular": {"sources": [{"corpus": "quality_files", "weight": 1.0}]}}
    for phase in ("regular", "continued"):
        run_config = {"ops": {"training__phase_mixture": {"config": {
            **config[phase], "tokenizer": env["backbone"], "max_shard_tokens": 300_000}}}}
        result = _job(env, "phase_mixture_job", crawl=phase, config=run_config)
        checks = {e.check_name: (e.passed, e.metadata) for e in result.get_asset_check_evaluations()}
        assert len(checks) == 4 and all(p for p, _ in checks.values()), checks
        md = _metadata(result, "training/phase_mixture")
        assert md["written"].value and "image/png" in md["mixture"].value
        assert set(md["per_source"].value) == set(s["corpus"] for s in config[phase]["sources"])
        fim = md["fim"].value
        assert fim["rate"] == {"regular": 0.5, "continued": 0.1}[phase] and fim["documents"] > 0
    again = _job(env, "phase_mixture_job", crawl="continued", config=run_config)  # nothing new: nothing written
    assert _metadata(again, "training/phase_mixture")["written"].value == []
    root = home / "lake" / "training" / "phase_mixture" / "phase=continued"
    shard = sorted((root / "long_context_sequences" / "c1").glob("part-*.parquet"))[0].with_suffix("")
    found = shard_document(str(shard), 0)
    assert found["corpus"] == "long_context_sequences"
    sequence = pl.read_parquet(f"{home}/lake/long_context/long_context_sequences/crawl=c1/*.parquet").filter(
        pl.col("id") == found["source_id"])
    conn = catalog.open_catalog(str(tmp_path / "catalog.duckdb"), str(home / "lake"))
    rows = catalog.why(conn, found["source_id"])
    ingested = {r["id"] for r in rows if r["stage"] == "raw_repo_files"}
    assert ingested == set(sequence["file_ids"][0])  # every file of the sequence, back to its crawl record
    assert {"decontaminated_long_context_sequences", "long_context_sequences"} <= {r["stage"] for r in rows}
    megatron = pytest.importorskip("megatron.core.datasets.indexed_dataset")
    ds = megatron.IndexedDataset(str(shard))
    tokens = pl.read_parquet(f"{shard}.parquet")["tokens"].to_list()
    assert [len(ds[i]) for i in range(len(ds))] == tokens and ds[0][-1] == 1  # </s> ends every document
