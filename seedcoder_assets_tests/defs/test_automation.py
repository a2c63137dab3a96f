"""The new-crawl sensor, the follow-up sensor and the nightly backfills, evaluated as the daemon does."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from seedcoder_assets.core import pipeline
from seedcoder_assets.core.ingest.landing import REGISTERED, plan_tick
from seedcoder_assets.core.ingest.shards import load_plan
from seedcoder_assets.definitions import defs
from seedcoder_assets.lib.backfill import CrawlState, plan_backfill
from seedcoder_assets.partitions import shard_partition
from seedcoder_assets.resources.catalog import CatalogResource
from seedcoder_assets.resources.oracle import OracleResource
from seedcoder_assets.resources.storage import StorageResource
from seedcoder_assets.testing.branch import run_github_branch


def _storage(home: Path) -> StorageResource:
    return StorageResource(lake_root=str(home / "lake"), landing_root=str(home / "landing"),
                           local_dir=str(home / "local"))


def _one_repo_crawl(small_crawl: Path, dest: Path, archive: str = "six-1.16.0.tar.gz") -> Path:
    """A real one-repository crawl (an sdist from the small crawl and its manifest line)."""
    dest.mkdir(parents=True)
    shutil.copy(small_crawl / archive, dest / archive)
    line = next(x for x in (small_crawl / "repos.jsonl").read_text().splitlines() if json.loads(x)["archive"] == archive)
    (dest / "repos.jsonl").write_text(line + "\n")
    return dest


def _tick(sensor, instance: dg.DagsterInstance, storage: StorageResource, cursor: str | None):
    """One sensor evaluation, then what the daemon does with its result (add partitions)."""
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"storage": storage}) as context:
        result = sensor(context)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def test_new_crawl_sensor_registers_each_landed_crawl_once(tmp_path: Path, small_crawl: Path) -> None:
    landing = tmp_path / "landing"
    _one_repo_crawl(small_crawl, landing / "c1")
    bad = landing / "c-bad"
    bad.mkdir(parents=True)
    (bad / "repos.jsonl").write_text("not json\n{\"name\": 3}\n")
    uploading = landing / "c-uploading"  # archives arrive first; the manifest is written last
    uploading.mkdir()
    shutil.copy(small_crawl / "six-1.17.0.tar.gz", uploading)
    (landing / "bad name!").mkdir()
    (landing / "bad name!" / "repos.jsonl").write_text((small_crawl / "repos.jsonl").read_text())
    parquet_crawl = landing / "c-parquet"
    parquet_crawl.mkdir()
    pq.write_table(pa.table({"repo": ["r"], "path": ["a.py"], "content": ["print(1)\n"]}), parquet_crawl / "x.parquet")
    (parquet_crawl / "_READY").write_text("")

    instance = dg.DagsterInstance.ephemeral()
    storage = _storage(tmp_path)
    sensor = defs().get_sensor_def("new_crawl_sensor")

    first = _tick(sensor, instance, storage, None)
    assert sorted(r.partition_key for r in first.run_requests) == ["c-parquet|000", "c1|000"]  # one shard each
    assert {r.job_name or "github_shards_job" for r in first.run_requests} == {"github_shards_job"}
    assert sorted(instance.get_dynamic_partitions("crawl")) == ["c-parquet", "c1"]
    assert load_plan(storage.lake_root, "c1").parts[0].shards[0].lines == (1,)  # the plan written at registration
    cursor = json.loads(first.cursor)
    assert cursor["c1"] == REGISTERED and cursor["c-bad"] != REGISTERED and "c-uploading" not in cursor

    plan = plan_tick(str(landing), {}, set())  # the reports, as the tick logged them
    reports = "\n".join(plan.reports)
    assert "c-bad: malformed, not registered" in reports and "1 bad_manifest_fields, 1 bad_manifest_json" in reports
    assert "bad name!: malformed" in reports and "not a valid partition key" in reports

    # Nothing new: no run, no partition, and the malformed crawl is not reported again.
    second = _tick(sensor, instance, storage, first.cursor)
    assert not second.run_requests and second.skip_reason.skip_message == "no new crawl has landed"

    # The upload finishes and the bad manifest is fixed: both register on the next tick.
    _one_repo_crawl(small_crawl, tmp_path / "staging", "six-1.17.0.tar.gz")
    shutil.copy(tmp_path / "staging" / "repos.jsonl", uploading / "repos.jsonl")
    shutil.copy(small_crawl / "six-1.16.0.tar.gz", bad)
    (bad / "repos.jsonl").write_text((landing / "c1" / "repos.jsonl").read_text() + "\n")
    third = _tick(sensor, instance, storage, second.cursor)
    assert sorted(r.partition_key for r in third.run_requests) == ["c-bad|000", "c-uploading|000"]

    # A second sighting (cursor lost, or registered by hand first) is reported, not registered twice.
    instance.add_dynamic_partitions("crawl", ["c-by-hand"])
    _one_repo_crawl(small_crawl, landing / "c-by-hand")
    fourth = _tick(sensor, instance, storage, None)
    assert not fourth.run_requests
    assert "c-by-hand: already registered" in fourth.skip_reason.skip_message
    assert "c1: already registered" in fourth.skip_reason.skip_message
    assert sorted(instance.get_dynamic_partitions("crawl")) == ["c-bad", "c-by-hand", "c-parquet", "c-uploading", "c1"]


def test_a_large_landing_area_is_decided_over_several_ticks(tmp_path: Path) -> None:
    line = json.dumps({"name": "r", "archive": "r.tar.gz"}) + "\n"
    for i in range(7):
        (tmp_path / f"c{i}").mkdir()
        (tmp_path / f"c{i}" / "repos.jsonl").write_text(line)
    cursor: dict[str, str] = {}
    registered: list[str] = []
    for _ in range(3):
        plan = plan_tick(str(tmp_path), cursor, set(registered), max_new=3, workers=4)
        assert len(plan.register) <= 3
        registered += plan.register
        cursor = plan.cursor
    assert sorted(registered) == [f"c{i}" for i in range(7)]  # each exactly once


def test_declared_automation_follows_a_crawls_files(tmp_path: Path, small_crawl: Path) -> None:
    """Dagster's own automation conditions (as the automation sensor evaluates them), not a hand-written
    sensor: the catalog follows any new partition and is never held back by a crawl that has not run;
    scores follow once a scorer exists, again for a new scorer version, and not for the same version
    trained again; the corpus follows its scores; labels only where an oracle is configured."""
    _one_repo_crawl(small_crawl, tmp_path / "landing" / "c1")
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("crawl", ["c1", "c2"])  # c2 is registered but never runs here
    d = defs()

    def requested(cursor):
        out = dg.evaluate_automation_conditions(defs=d, instance=instance, cursor=cursor)
        keys = {(r.key.to_user_string(), p) for r in out.results if out.get_num_requested(r.key)
                for p in out.get_requested_partitions(r.key)}
        return keys, out.cursor

    def report(key: list[str], crawl: str | None = None, version: str | None = None) -> None:
        tags = {"dagster/data_version": version} if version else None
        instance.report_runless_asset_event(dg.AssetMaterialization(dg.AssetKey(key), partition=crawl, tags=tags))

    nothing, cursor = requested(None)  # the sensor's first tick, before anything ran
    assert nothing == set()
    resources = {"storage": _storage(tmp_path), "catalog_db": CatalogResource(database=str(tmp_path / "c.duckdb"))}
    # The new-crawl sensor runs the crawl's shards; the crawl's dedup and syntax follow by automation, as
    # one run, once every shard is in (c2's never ran: nothing of c2 is asked for).
    assert run_github_branch(d, instance, "c1", jobs=("github_shards_job",), resources=resources).success
    got, cursor = requested(cursor)
    crawl_stages = {k.to_user_string() for k in d.resolve_job_def("github_files_job").asset_layer.executable_asset_keys}
    assert {k for k, _ in got if k != "catalog/lake_catalog"} == crawl_stages and {p for _, p in got} <= {"c1", None}
    assert run_github_branch(d, instance, "c1", jobs=("github_files_job",), resources=resources).success
    got, cursor = requested(cursor)
    assert ("filters/syntax_checked_files", "c1|000") in got  # then each shard's syntax check
    assert run_github_branch(d, instance, "c1", jobs=("github_syntax_job",), resources=resources).success
    got, cursor = requested(cursor)
    assert got <= {("catalog/lake_catalog", None)}  # not blocked by c2; no scorer, no oracle: nothing else
    got, cursor = requested(cursor)
    assert got == set()  # nothing new since
    report(["quality", "quality_scorer"], version="qs-1")
    got, cursor = requested(cursor)
    # Each shard's scores; the crawl's corpora once every shard is scored.
    assert ("quality/file_quality_scores", "c1|000") in got and ("catalog/lake_catalog", None) not in got
    assert ("quality/quality_files", "c1") not in got
    report(["quality", "file_quality_scores"], "c1|000")  # that run
    got, cursor = requested(cursor)
    assert {("quality/quality_files", "c1"), ("quality/repo_level_corpus", "c1")} <= got
    for asset in ("quality_files", "repo_level_corpus", "repo_quality"):  # that run
        report(["quality", asset], "c1")
    got, cursor = requested(cursor)
    assert got == {("catalog/lake_catalog", None)}  # the catalog refreshes after scoring too
    report(["quality", "quality_scorer"], version="qs-1")  # trained again from the same inputs
    got, cursor = requested(cursor)
    assert ("quality/file_quality_scores", "c1|000") not in got
    report(["quality", "quality_scorer"], version="qs-2")  # a new scorer: every crawl re-scores
    got, cursor = requested(cursor)
    assert ("quality/file_quality_scores", "c1|000") in got

    labels = dg.AssetKey(["quality", "oracle_labels"])
    assert d.resolve_asset_graph().get(labels).automation_condition is None  # no oracle configured
    # With an oracle in the environment of a fresh code location, the sample and labels follow the files.
    probe = ("from seedcoder_assets.definitions import defs; import dagster as dg; g = defs().resolve_asset_graph(); "
             "print([g.get(dg.AssetKey(['quality', k])).automation_condition.get_label() "
             "for k in ('oracle_label_sample', 'oracle_labels')])")
    env = {**os.environ, "SEEDCODER_ORACLE_URL": "http://127.0.0.1:1/v1", "SEEDCODER_ORACLE_MODEL": "m"}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['on new data', 'on new data']"


def test_backfill_plan_covers_missing_and_stale_partitions() -> None:
    states = {
        "new": CrawlState(shards_missing=("ingest/raw_repo_files",), github_missing=("dedup/deduped_repos",)),
        "one-shard-new": CrawlState(files_at=None),  # a shard's syntax check never ran
        "unlabelled": CrawlState(files_at=1.0),
        "sampled": CrawlState(files_at=1.0, sample_at=1.5),  # a shard's labels never came back
        "old-scorer": CrawlState(files_at=1.0, sample_at=1.5, labels_at=2.0, scores_at=3.0, scores_scorer="qs-1", corpus_at=4.0),
        "files-newer": CrawlState(sample_at=1.5, files_at=5.0, labels_at=2.0, scores_at=3.0, scores_scorer="qs-2", corpus_at=4.0),
        "corpus-missing": CrawlState(sample_at=1.5, files_at=1.0, labels_at=2.0, scores_at=3.0, scores_scorer="qs-2"),
        "fresh": CrawlState(sample_at=1.5, files_at=1.0, labels_at=2.0, scores_at=3.0, scores_scorer="qs-2", corpus_at=4.0),
    }
    plan = plan_backfill(states, oracle_configured=True, scorer="qs-2")
    # In registration order (the order of `states`): crawl k is deduplicated against crawls 1..k-1.
    new = [("github_shards_job", "new"), ("github_files_job", "new"), ("github_syntax_job", "new"),
           ("github_syntax_job", "one-shard-new")]  # its shards, the crawl's dedup, the shards' syntax
    assert [(j, c) for j, c, _ in plan] == [
        *new, ("label_sample_job", "unlabelled"), ("oracle_labels_job", "unlabelled"), ("scoring_job", "unlabelled"),
        ("corpus_job", "unlabelled"), ("oracle_labels_job", "sampled"), ("scoring_job", "sampled"),
        ("corpus_job", "sampled"),
        ("scoring_job", "old-scorer"), ("corpus_job", "old-scorer"), ("scoring_job", "files-newer"),
        ("corpus_job", "files-newer"), ("corpus_job", "corpus-missing")]
    assert "current scorer is qs-2" in dict(((j, c), w) for j, c, w in plan)[("scoring_job", "old-scorer")]
    # No oracle and no scorer: the GitHub branch and the label sample (it needs no oracle) are backfilled.
    assert [(j, c) for j, c, _ in plan_backfill(states, False, None)] == [*new, ("label_sample_job", "unlabelled")]


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:  # schedules need an instance with a ref (not ephemeral)
        yield instance


def test_nightly_schedules_read_state_from_the_event_log(instance: dg.DagsterInstance) -> None:
    instance.add_dynamic_partitions("crawl", ["c1", "c2", "c3", "c4"])

    def report(key: list[str], crawl: str | None = None, **metadata) -> None:
        instance.report_runless_asset_event(dg.AssetMaterialization(dg.AssetKey(key), partition=crawl,
                                                                    metadata=metadata))

    for crawl in ("c1", "c3", "c4"):  # their shards, their dedup, their shards' syntax
        for key in [k for job in (pipeline.SHARDS, pipeline.GITHUB, pipeline.SYNTAX) for k in pipeline.job_assets(job)]:
            if not (crawl == "c4" and key == pipeline.DEDUPED_REPOS):  # c4's run left one asset out
                report(list(key), shard_partition(crawl, "000") if pipeline.stage(key).sharded else crawl)
    report(["quality", "oracle_label_sample"], "c1")
    report(["quality", "oracle_labels"], "c1|000")
    report(["quality", "quality_scorer"], version="qs-1")
    report(["quality", "file_quality_scores"], "c1|000", scorer_version="qs-1")
    report(["quality", "quality_files"], "c1")
    report(["quality", "quality_scorer"], version="qs-2")  # a new scorer: c1's scores are stale

    d = defs()
    when = dt.datetime(2026, 11, 22, 6, tzinfo=dt.UTC)

    def evaluate(name: str, oracle: OracleResource = OracleResource()) -> dict[str, str]:
        schedule = d.get_schedule_def(name)
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=when,
                                       resources={"oracle": oracle}) as context:
            out = schedule(context)
        if isinstance(out, dg.SkipReason):
            return {}
        return {r.partition_key: r.tags["seedcoder/backfill_reason"] for r in out}

    assert evaluate("nightly_github_shards_backfill") == {"c2|000": "no ingest/raw_repo_files, ingest/crawl_repos, "
                                                                    "filters/code_files yet"}
    files = evaluate("nightly_github_files_backfill")
    assert sorted(files) == ["c2", "c4"] and files["c4"] == "no dedup/deduped_repos yet"
    assert evaluate("nightly_github_syntax_backfill") == {"c2|000": "no syntax-checked files yet",
                                                          "c4|000": "deduplicated files rebuilt"}
    assert evaluate("nightly_scoring_backfill") == {"c1|000": "scored by qs-1, current scorer is qs-2",
                                                     "c3|000": "never scored"}
    assert evaluate("nightly_corpus_backfill") == {"c1": "rescored: scored by qs-1, current scorer is qs-2",
                                                   "c3": "rescored: never scored"}
    # The sample needs no oracle; each shard's labels do. c4 waits for its GitHub branch first.
    assert evaluate("nightly_label_sample_backfill") == {"c3": "no label sample yet"}
    assert evaluate("nightly_oracle_labels_backfill") == {}
    assert evaluate("nightly_oracle_labels_backfill", OracleResource(base_url="http://127.0.0.1:1/v1", model="m")) \
        == {"c3|000": "no oracle labels yet"}


@pytest.mark.parametrize("source", [
    ("commit_crawl", pipeline.COMMIT_SAMPLES, pipeline.DEDUPED_COMMIT_SAMPLES, "commits", "commits_dedup",
     "no commit samples yet"),
    ("web_dump", pipeline.WEB_PAGES, pipeline.DEDUPED_WEB_PAGES, "web_pages", "web_dedup", "no web pages yet")])
def test_nightly_schedules_of_sharded_sources_run_missing_shards_then_the_dedup(
        instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch, source: tuple) -> None:
    partitions, per_shard, deduped, shard_schedule, dedup_schedule, why = source
    monkeypatch.setenv("SEEDCODER_SHARDS", "2")
    instance.add_dynamic_partitions(partitions, ["k1", "k2", "k3"])

    def report(key: tuple[str, ...], partition: str) -> None:
        instance.report_runless_asset_event(dg.AssetMaterialization(dg.AssetKey(list(key)), partition=partition))

    for crawl, shards in (("k1", ("000", "001")), ("k2", ("000",)), ("k3", ("000", "001"))):
        for shard in shards:
            report(per_shard, shard_partition(crawl, shard))
    report(deduped, "k1")
    d = defs()
    when = dt.datetime(2026, 11, 22, 2, tzinfo=dt.UTC)

    def evaluate(name: str) -> dict[str, str]:
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=when) as context:
            out = d.get_schedule_def(name)(context)
        return {} if isinstance(out, dg.SkipReason) else {r.partition_key: r.tags["seedcoder/backfill_reason"]
                                                           for r in out}

    assert evaluate(f"nightly_{shard_schedule}_backfill") == {"k2|001": why}  # the shard that died
    assert evaluate(f"nightly_{dedup_schedule}_backfill") == {"k3": "not deduplicated yet"}  # k2 waits for its shard


@pytest.mark.parametrize("name", ["new_crawl_sensor", "new_commit_crawl_sensor", "new_web_dump_sensor",
                                  "seedcoder_automation"])
def test_automation_is_off_unless_the_deployment_turns_it_on(name: str) -> None:
    assert defs().get_sensor_def(name).default_status == dg.DefaultSensorStatus.STOPPED
