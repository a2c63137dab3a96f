"""Shards as Dagster partitions: a crawl cut into shards gives, asset for asset and lineage row for lineage
row, what it gives whole; each shard is its own partition and run, and re-running one shard changes nothing."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from seedcoder_assets.core.ingest.shards import load_plan
from seedcoder_assets.definitions import defs
from seedcoder_assets_tests.conftest import make_overlapping_crawl

COMPARED = ["ingest/raw_repo_files", "ingest/crawl_repos", "filters/code_files", "dedup/deduped_repos",
            "dedup/exact_deduped_files", "dedup/near_dup_clusters", "filters/syntax_checked_files"]


def _digest(frame: pl.DataFrame) -> str:
    frame = frame.select(sorted(frame.columns))
    return hashlib.sha256(frame.sort(frame.columns).hash_rows(seed=0).to_numpy().tobytes()).hexdigest()


def _outputs(lake: Path, crawl: str) -> dict[str, str]:
    out = {a: _digest(pl.read_parquet(f"{lake}/{a}/crawl={crawl}/**/*.parquet")) for a in COMPARED}
    for stage in sorted((lake / "lineage").glob("stage=*")):
        rows = pl.read_parquet(f"{stage}/crawl={crawl}/**/*.parquet").drop("run_id")
        out[stage.name] = _digest(rows)
    return out


@pytest.fixture(scope="module")
def crawls(tmp_path_factory: pytest.TempPathFactory, small_crawl: Path) -> Path:
    landing = tmp_path_factory.mktemp("landing")
    shutil.copytree(small_crawl, landing / "c1")
    make_overlapping_crawl(small_crawl, landing / "c2")  # dedup across crawls, against a sharded earlier crawl
    return landing


# The number of shard slots is read when the code location loads (it is the shard dimension's keys), so
# each setting gets a process of its own, as each deployment does.
MATERIALIZE = """
import json, sys
import dagster as dg
from seedcoder_assets.definitions import defs
from seedcoder_assets.resources.storage import StorageResource
from seedcoder_assets.resources.oracle import OracleResource
from seedcoder_assets.testing.branch import run_github_branch
from seedcoder_assets.testing.fake_oracle import FakeOracle
home, landing, step = sys.argv[1:4]
storage = StorageResource(lake_root=home + "/lake", landing_root=landing, local_dir=home + "/local")
res = {"storage": storage}
d = defs()
out = {}
with dg.DagsterInstance.ephemeral() as instance:
    instance.add_dynamic_partitions("crawl", ["c1", "c2"])  # by hand: each shard plans its crawl itself
    if step == "all":
        for crawl in ("c1", "c2"):
            result = run_github_branch(d, instance, crawl, resources=res)
            out[crawl] = [result.success, len(result.results),
                          all(e.passed for e in result.get_asset_check_evaluations())]
        out["shard_partitions"] = sorted(instance.get_materialized_partitions(dg.AssetKey(["filters", "code_files"])))
        out["crawl_partitions"] = sorted(instance.get_materialized_partitions(
            dg.AssetKey(["dedup", "near_deduped_files"])))
        out["syntax_partitions"] = sorted(instance.get_materialized_partitions(
            dg.AssetKey(["filters", "syntax_checked_files"])))
        again = d.resolve_job_def("github_shards_job").execute_in_process(  # one shard again
            instance=instance, resources=res, partition_key=dg.MultiPartitionKey({"crawl": "c1", "shard": "000"}))
        out["again"] = again.success
        # The crawl's label sample, then each shard's part of it rated (one run per shard).
        sample = {"quotas": {"Python": 60, "C": 10, "Markdown": 10}, "scale": 1.0, "seed": 0}
        with FakeOracle(model="judge") as server:
            oracle = OracleResource(base_url=server.base_url, model="judge", structured_output="none")
            result = run_github_branch(d, instance, "c1", jobs=("label_sample_job", "oracle_labels_job"),
                                       resources={**res, "oracle": oracle},
                                       run_config={"ops": {"quality__oracle_label_sample": {"config": sample}}})
        out["labels"] = [result.success, len(result.results),
                         all(e.passed for e in result.get_asset_check_evaluations())]
        out["label_partitions"] = sorted(instance.get_materialized_partitions(
            dg.AssetKey(["quality", "oracle_labels"])))
    else:  # two shards of three, then the crawl's job
        for shard in ("000", "002"):
            d.resolve_job_def("github_shards_job").execute_in_process(
                instance=instance, resources=res, partition_key=dg.MultiPartitionKey({"crawl": "c1", "shard": shard}))
        result = d.resolve_job_def("github_files_job").execute_in_process(
            instance=instance, resources=res, partition_key="c1", raise_on_error=False)
        failure = [e.event_specific_data.error.to_string() for e in result.all_events
                   if e.event_type == dg.DagsterEventType.STEP_FAILURE]
        out = {"success": result.success, "failure": failure}
print(json.dumps(out))
"""


def _materialize(home: Path, landing: Path, shards: int, step: str = "all") -> dict:
    env = {**os.environ, "SEEDCODER_SHARDS": str(shards), "SEEDCODER_EXECUTOR": "in_process", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", MATERIALIZE, str(home), str(landing), step], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory, crawls: Path) -> tuple[Path, dict, dict]:
    """The two crawls materialized whole (one shard slot) and in three shards: (home of both, whole, sharded)."""
    root = tmp_path_factory.mktemp("both")
    return root, _materialize(root / "whole", crawls, 1), _materialize(root / "sharded", crawls, 3)


def test_a_crawl_in_shards_gives_what_it_gives_whole(both: tuple[Path, dict, dict]) -> None:
    tmp_path, whole, sharded = both
    assert whole["c1"] == whole["c2"] == [True, 3, True]  # its shard, its dedup, its shard's syntax
    assert sharded["c1"] == sharded["c2"] == [True, 7, True]  # 3 shard runs, the crawl's run, 3 syntax runs
    lake = tmp_path / "sharded" / "lake"
    for crawl in ("c1", "c2"):
        assert _outputs(lake, crawl) == _outputs(tmp_path / "whole" / "lake", crawl)
    files = lake / "filters" / "code_files" / "crawl=c1"
    held = [pl.read_parquet(f"{files}/shard-{s:03d}/*.parquet").height for s in range(3)]
    assert all(held) and (files / "_SHARDS").read_text() == "000 001 002"
    plan = load_plan(str(lake), "c1")
    assert plan is not None and plan.shards == 3 and len(plan.parts) == 1
    # Dagster sees each shard as a partition of its own, and each crawl's later stages once; one shard run
    # again (last, in the script) left every output as it was.
    assert sharded["shard_partitions"] == [f"{c}|{s:03d}" for c in ("c1", "c2") for s in range(3)]
    assert sharded["crawl_partitions"] == ["c1", "c2"] and sharded["again"]
    assert sharded["syntax_partitions"] == sharded["shard_partitions"]  # the syntax check runs per shard too
    for s in range(3):  # every file of a shard's deduplicated and syntax-checked files came from that shard
        ids = {a: set(pl.read_parquet(f"{lake}/{a}/crawl=c1/shard-{s:03d}/*.parquet")["id"].to_list())
               for a in ("filters/code_files", "dedup/near_deduped_files", "filters/syntax_checked_files")}
        assert ids["filters/syntax_checked_files"] <= ids["dedup/near_deduped_files"] <= ids["filters/code_files"]
        assert ids["filters/syntax_checked_files"]


def test_oracle_labels_fan_out_per_shard_and_give_what_the_whole_crawl_gives(both: tuple[Path, dict, dict]) -> None:
    """The sample is drawn over the whole crawl; each shard rates the sampled files it holds, and the shards'
    labels together are the whole crawl's: every sampled file once, with the same answer."""
    tmp_path, whole, sharded = both
    assert whole["labels"] == [True, 2, True] and sharded["labels"] == [True, 4, True]
    assert sharded["label_partitions"] == [f"c1|{s:03d}" for s in range(3)]

    def labels(home: Path) -> pl.DataFrame:
        return pl.read_parquet(f"{home}/lake/quality/oracle_labels/crawl=c1/**/*.parquet").select(
            "id", "language", "status", "rating").sort("id")

    sample = pl.read_parquet(f"{tmp_path}/sharded/lake/quality/oracle_label_sample/crawl=c1/**/*.parquet")
    assert labels(tmp_path / "sharded").equals(labels(tmp_path / "whole"))
    assert sorted(labels(tmp_path / "sharded")["id"]) == sorted(sample["id"])  # each sampled file, once
    lake = tmp_path / "sharded" / "lake"
    per_shard = []
    for s in range(3):
        held = set(pl.read_parquet(f"{lake}/filters/syntax_checked_files/crawl=c1/shard-{s:03d}/*.parquet")["id"])
        rated = pl.read_parquet(f"{lake}/quality/oracle_labels/crawl=c1/shard-{s:03d}/*.parquet")["id"].to_list()
        assert set(rated) <= held  # a shard rates only the files it holds
        per_shard.append(len(rated))
    assert sum(per_shard) == sample.height and sum(1 for n in per_shard if n) >= 2  # the work was spread


def test_a_crawl_partition_with_a_shard_missing_is_not_read(tmp_path: Path, crawls: Path) -> None:
    """The crawl's dedup refuses to start on two of three shards (it would decide without the third)."""
    out = _materialize(tmp_path, crawls, 3, step="missing")
    assert not out["success"] and "missing or incomplete" in out["failure"][0]


def test_a_landing_over_its_byte_budget_is_registered_as_several_crawl_partitions(
        tmp_path: Path, small_crawl: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sensor cuts a landing of three repositories, each over the shard budget, into three crawl partitions
    (one shard each, here), and each part ingests exactly its own repository."""
    from seedcoder_assets_tests.defs.test_automation import _storage, _tick

    landing = tmp_path / "landing" / "big"
    landing.mkdir(parents=True)
    lines = (small_crawl / "repos.jsonl").read_text().splitlines()[:3]
    for line in lines:
        shutil.copy(small_crawl / json.loads(line)["archive"], landing)
    (landing / "repos.jsonl").write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("SEEDCODER_SHARD_BYTES", "1")  # every repository is over budget: a part of its own

    instance = dg.DagsterInstance.ephemeral()
    storage = _storage(tmp_path)
    tick = _tick(defs().get_sensor_def("new_crawl_sensor"), instance, storage, None)
    parts = ["big", "big.p01", "big.p02"]
    assert sorted(instance.get_dynamic_partitions("crawl")) == parts
    assert sorted(r.partition_key for r in tick.run_requests) == sorted(f"{p}|000" for p in parts)
    repos = []
    for part in parts:
        result = defs().resolve_job_def("github_shards_job").execute_in_process(
            instance=instance, resources={"storage": storage},
            partition_key=dg.MultiPartitionKey({"crawl": part, "shard": "000"}))
        assert result.success
        repos += pl.read_parquet(f"{storage.lake_root}/ingest/crawl_repos/crawl={part}/**/*.parquet")["repo"].to_list()
    assert sorted(repos) == sorted(json.loads(x)["name"] for x in lines)  # each repository once, in one part
