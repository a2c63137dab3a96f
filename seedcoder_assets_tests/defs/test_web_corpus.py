"""The web corpus through Dagster: two real dumps (Debian documentation as WARC files, the second a later
crawl of the same sites) registered by the web-dump sensor, read per shard, deduplicated within and across
dumps; in two shards the same output as whole; a shard run again changes nothing."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from seedcoder_assets.sample_web import build_dump

ASSETS = ("web_pages", "deduped_web_pages")
LLM_ASSETS = ("recalled_web_pages", "web_corpus")


def _digest(frame: pl.DataFrame) -> str:
    frame = frame.select(sorted(frame.columns))
    return hashlib.sha256(frame.sort(frame.columns).hash_rows(seed=0).to_numpy().tobytes()).hexdigest()


def _outputs(lake: Path, dump: str, assets: tuple[str, ...] = ASSETS) -> dict[str, str]:
    out = {a: _digest(pl.read_parquet(f"{lake}/web/{a}/crawl={dump}/**/*.parquet").drop("warc_offset"))
           for a in assets}
    for stage in assets:
        out[f"lineage:{stage}"] = _digest(pl.read_parquet(
            f"{lake}/lineage/stage={stage}/crawl={dump}/**/*.parquet").drop("run_id"))
    return out


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("landing-web")
    build_dump(root / "w1", "small")
    build_dump(root / "w2", "small", epoch=1)  # two months later: mostly the same pages
    (root / "uploading").mkdir()  # WARC files, no warc.paths yet: not landed
    (root / "uploading" / "x.warc.gz").write_bytes(b"")
    return root


MATERIALIZE = """
import json, sys
import dagster as dg
from seedcoder_assets.definitions import defs
from seedcoder_assets.resources.oracle import OracleResource
from seedcoder_assets.resources.storage import StorageResource
from seedcoder_assets.testing.fake_oracle import FakeOracle
from seedcoder_assets_tests.defs.test_automation import _tick
from seedcoder_assets_tests.defs.test_web_corpus import LLM_ASSETS, _outputs
home, landing = sys.argv[1:3]
storage = StorageResource(lake_root=home + "/lake", landing_root=home + "/landing", web_landing_root=landing,
                          local_dir=home + "/local")
d = defs()
out = {}
with dg.DagsterInstance.ephemeral() as instance:
    tick = _tick(d.get_sensor_def("new_web_dump_sensor"), instance, storage, None)
    out["registered"] = instance.get_dynamic_partitions("web_dump")
    out["requests"] = sorted(str(r.partition_key) for r in tick.run_requests)
    for dump in out["registered"]:  # each shard the sensor asked for, then the dump's dedup
        runs = [(d.resolve_job_def(r.job_name or "web_pages_job"), r.partition_key) for r in tick.run_requests
                if str(r.partition_key).startswith(dump + "|")] + [(d.resolve_job_def("web_dedup_job"), dump)]
        for job, key in runs:
            r = job.execute_in_process(instance=instance, resources={"storage": storage}, partition_key=key)
            out.setdefault(dump, []).append([r.success, {e.check_name: e.passed for e in r.get_asset_check_evaluations()}])
    before = _outputs(home + "/lake", "w1")
    d.resolve_job_def("web_pages_job").execute_in_process(instance=instance, resources={"storage": storage},
                                                          partition_key=tick.run_requests[0].partition_key)
    d.resolve_job_def("web_dedup_job").execute_in_process(instance=instance, resources={"storage": storage},
                                                          partition_key="w1")
    out["rerun_identical"] = _outputs(home + "/lake", "w1") == before
    # The LLM half. Without an oracle, the first LLM step says how to configure one.
    base = {"storage": storage}
    first = tick.run_requests[0].partition_key
    d.resolve_job_def("web_label_sample_job").execute_in_process(instance=instance, resources=base, partition_key="w1")
    none = d.resolve_job_def("web_oracle_labels_job").execute_in_process(
        instance=instance, resources={**base, "oracle": OracleResource()}, partition_key=first, raise_on_error=False)
    out["no_oracle"] = [e.step_failure_data.user_failure_data.description for e in none.all_events
                        if e.is_step_failure]
    with FakeOracle() as fake:
        resources = {**base, "oracle": OracleResource(base_url=fake.base_url, model="fake-oracle")}
        def run(job, key=None):
            r = d.resolve_job_def(job).execute_in_process(instance=instance, resources=resources, partition_key=key)
            out.setdefault("llm", []).append([job, key and str(key), r.success,
                                              {e.check_name: e.passed for e in r.get_asset_check_evaluations()}])
        shard_keys = {dump: [r.partition_key for r in tick.run_requests if str(r.partition_key).startswith(dump + "|")]
                      for dump in ("w1", "w2")}
        for dump in ("w1", "w2"):
            run("web_label_sample_job", dump)
            for key in shard_keys[dump]:
                run("web_oracle_labels_job", key)
        run("web_recall_job")
        for dump in ("w1", "w2"):
            for key in shard_keys[dump]:
                run("web_scoring_job", key)
            run("web_corpus_job", dump)
        out["llm_outputs"] = {dump: _outputs(home + "/lake", dump, LLM_ASSETS) for dump in ("w1", "w2")}
        asked = fake.state.requests
        run("web_scoring_job", shard_keys["w1"][0])  # a shard and its dump again: the same, nothing re-asked
        run("web_corpus_job", "w1")
        out["llm_rerun_identical"] = _outputs(home + "/lake", "w1", LLM_ASSETS) == out["llm_outputs"]["w1"]
        out["llm_rerun_asked"] = fake.state.requests - asked
print(json.dumps(out))
"""


def _materialize(home: Path, landing: Path, shards: int) -> dict:
    env = {**os.environ, "SEEDCODER_SHARDS": str(shards),
           "SEEDCODER_EXECUTOR": "in_process", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", MATERIALIZE, str(home), str(landing)], env=env,
                         capture_output=True, text=True, timeout=900, cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_web_dumps_in_shards_give_what_they_give_whole_and_a_recrawl_is_deduplicated(
        tmp_path: Path, landing: Path) -> None:
    whole = _materialize(tmp_path / "whole", landing, 1)
    sharded = _materialize(tmp_path / "sharded", landing, 2)
    assert whole["registered"] == sharded["registered"] == ["w1", "w2"]  # not the folder still uploading
    assert sharded["requests"] == ["w1|000", "w1|001", "w2|000", "w2|001"]
    for result, runs in ((whole, 1), (sharded, 2)):
        assert result["rerun_identical"]
        for dump in ("w1", "w2"):
            assert len(result[dump]) == runs + 1
            for success, checks in result[dump]:
                assert success and all(checks.values()), checks
            assert set(result[dump][0][1]) == {"lineage_reconciles", "records_accounted", "no_short_page",
                                               "code_blocks_verbatim"}
            assert set(result[dump][runs][1]) == {"lineage_reconciles", "no_exact_duplicate_left"}
    for dump in ("w1", "w2"):
        assert _outputs(tmp_path / "sharded" / "lake", dump) == _outputs(tmp_path / "whole" / "lake", dump)
    # The LLM half: no oracle, one clear message; with one, every step and check passes, and the recalled
    # pages and the corpus are the same whole or in shards (the label sample is drawn per dump).
    for result in (whole, sharded):
        assert "SEEDCODER_ORACLE_URL" in result["no_oracle"][0]
        for job, key, success, checks in result["llm"]:
            assert success and all(checks.values()), (job, key, checks)
        assert {name for *_, checks in result["llm"] for name in checks} == {
            "answers_parsed", "recall_meets_target", "lineage_reconciles", "scores_respect_category_thresholds",
            "scores_cover_recalled_pages"}
        assert result["llm_rerun_identical"] and result["llm_rerun_asked"] == 0
    assert whole["llm_outputs"] == sharded["llm_outputs"]
    lake = tmp_path / "sharded" / "lake"
    held = [pl.read_parquet(f"{lake}/web/web_pages/crawl=w1/shard-00{s}/*.parquet").height for s in range(2)]
    assert all(held)  # both shards read WARC files
    first = pl.read_parquet(f"{lake}/lineage/stage=deduped_web_pages/crawl=w1/**/*.parquet")
    again = pl.read_parquet(f"{lake}/lineage/stage=deduped_web_pages/crawl=w2/**/*.parquet")
    reasons = dict(zip(*again.group_by("reason").len().to_dict(as_series=False).values()))
    # The apache manual's translations share pages (symlinks), and re-fetched pages repeat themselves.
    assert dict(zip(*first.group_by("reason").len().to_dict(as_series=False).values()))["exact_dup"] > 20
    assert reasons["exact_dup_prior_crawl"] > 0.9 * again.height  # the later crawl: what w1 already kept
    survivors = pl.read_parquet(f"{lake}/web/deduped_web_pages/crawl=w1/**/*.parquet")
    refetched = survivors.filter(pl.col("url").is_duplicated())
    assert refetched.height == 0  # a page fetched twice survives once
