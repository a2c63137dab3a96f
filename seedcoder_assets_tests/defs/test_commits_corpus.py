"""The commits corpus through Dagster: a commit crawl of real histories with bad entries among them, cut
into shards (the same output as whole), re-crawled (only new commits processed), re-run (identical);
the demo crawl of PyPI releases; the commit-crawl sensor."""

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

from seedcoder_assets.definitions import defs

GIT = Path(__file__).resolve().parents[3] / "shared" / "data" / "git"
REAL = {"pallets/itsdangerous": ("pallets+itsdangerous.bundle", 3000, 200),
        "spf13/cobra": ("spf13+cobra.bundle", 39000, 2900), "tj/commander.js": ("tj+commander.js.bundle", 27000, 1700),
        "BurntSushi/walkdir": ("BurntSushi+walkdir.bundle", 1400, 110),
        "google/snappy": ("google+snappy.bundle", 6300, 1600)}


def _digest(frame: pl.DataFrame) -> str:
    frame = frame.select(sorted(frame.columns))
    return hashlib.sha256(frame.sort(frame.columns).hash_rows(seed=0).to_numpy().tobytes()).hexdigest()


def _outputs(lake: Path, crawl: str) -> dict[str, str]:
    out = {a: _digest(pl.read_parquet(f"{lake}/commits/{a}/crawl={crawl}/**/*.parquet"))
           for a in ("commit_repos", "commit_samples", "deduped_commit_samples")}
    for stage in ("commit_repos", "commit_samples", "deduped_commit_samples"):
        out[f"lineage:{stage}"] = _digest(pl.read_parquet(
            f"{lake}/lineage/stage={stage}/crawl={crawl}/**/*.parquet").drop("run_id"))
    return out


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """c1: the five real histories, a shallow mirror, a corrupt bundle, a missing one, a bad line, a repeated
    repository and one the selection drops; c2: a re-crawl of cobra and walkdir, and a fork of walkdir."""
    if not GIT.is_dir():
        pytest.skip("../shared/data/git is not beside the project")
    root = tmp_path_factory.mktemp("landing-commits")
    c1, c2 = root / "c1", root / "c2"
    c1.mkdir()
    c2.mkdir()
    lines = []
    for name, (bundle, stars, forks) in REAL.items():
        shutil.copy(GIT / bundle, c1 / bundle)
        lines.append({"name": name, "git": bundle, "stars": stars, "forks": forks, "license": "OSI"})
    full = root / "full-cobra.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(GIT / "spf13+cobra.bundle"), str(full)], check=True)
    subprocess.run(["git", "clone", "-q", "--bare", "--depth", "150", f"file://{full}", str(c1 / "shallow" / "cobra.git")],
                   check=True)
    (c1 / "corrupt.bundle").write_bytes(b"# v2 git bundle\nnot a bundle at all\n")
    lines += [{"name": "x/shallow-cobra", "git": "shallow/cobra.git", "stars": 500, "forks": 50},
              {"name": "x/corrupt", "git": "corrupt.bundle", "stars": 500, "forks": 50},
              {"name": "x/missing", "git": "missing.bundle", "stars": 500, "forks": 50},
              {"name": "x/unloved", "git": "spf13+cobra.bundle", "stars": 3, "forks": 50}]
    text = "".join(json.dumps(x) + "\n" for x in lines)
    text += "{not json\n" + json.dumps(lines[0]) + "\n"  # a bad line; the first repository again
    (c1 / "git_repos.jsonl").write_text(text)
    for bundle in ("spf13+cobra.bundle", "BurntSushi+walkdir.bundle"):
        shutil.copy(GIT / bundle, c2 / bundle)
    (c2 / "git_repos.jsonl").write_text("".join(json.dumps(x) + "\n" for x in [
        {"name": "spf13/cobra", "git": "spf13+cobra.bundle", "stars": 40000, "forks": 3000},
        {"name": "someone/walkdir-fork", "git": "BurntSushi+walkdir.bundle", "stars": 150, "forks": 12}]))
    return root


MATERIALIZE = """
import json, sys
import dagster as dg
from seedcoder_assets_tests.defs.test_commits_corpus import _outputs
from seedcoder_assets.definitions import defs
from seedcoder_assets.partitions import job_partition_keys
from seedcoder_assets.resources.storage import StorageResource
home, landing = sys.argv[1:3]
storage = StorageResource(lake_root=home + "/lake", landing_root=home + "/landing", commits_landing_root=landing,
                          local_dir=home + "/local")
out = {}
with dg.DagsterInstance.ephemeral() as instance:
    instance.add_dynamic_partitions("commit_crawl", ["c1", "c2"])
    for step, crawl in enumerate(("c1", "c2", "c1")):  # c1 again last: a re-run changes nothing
        if step == 2:
            before = _outputs(home + "/lake", "c1")
        for name in ("commits_job", "commits_dedup_job"):
            job = defs().resolve_job_def(name)
            for key in job_partition_keys(name, crawl):
                r = job.execute_in_process(instance=instance, resources={"storage": storage}, partition_key=key)
                checks = {e.check_name: e.passed for e in r.get_asset_check_evaluations()}
                out.setdefault(crawl, []).append([r.success, checks])
    out["rerun_identical"] = _outputs(home + "/lake", "c1") == before
print(json.dumps(out))
"""


def _materialize(home: Path, landing: Path, shards: int) -> dict:
    env = {**os.environ, "SEEDCODER_SHARDS": str(shards), "SEEDCODER_EXECUTOR": "in_process", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", MATERIALIZE, str(home), str(landing)], env=env,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_commit_crawl_in_shards_gives_what_it_gives_whole_and_recrawls_only_new_commits(
        tmp_path: Path, landing: Path) -> None:
    whole = _materialize(tmp_path / "whole", landing, 1)
    sharded = _materialize(tmp_path / "sharded", landing, 2)
    assert whole["rerun_identical"] and sharded["rerun_identical"]  # outputs and lineage, row for row
    for result, runs in ((whole, 1), (sharded, 2)):
        assert len(result["c1"]) == 2 * (runs + 1) and len(result["c2"]) == runs + 1  # shards, then the dedup
        for crawl in ("c1", "c2"):
            for success, checks in result[crawl]:
                assert success and all(checks.values()), checks
            assert set(result[crawl][0][1]) >= {"lineage_reconciles", "commits_accounted", "targets_apply",
                                                "no_merge_or_bot_left", "samples_within_budget"}
            assert set(result[crawl][runs][1]) == {"lineage_reconciles", "no_same_change_left"}
    for crawl in ("c1", "c2"):
        assert _outputs(tmp_path / "sharded" / "lake", crawl) == _outputs(tmp_path / "whole" / "lake", crawl)
    lake = tmp_path / "sharded" / "lake"
    assert all((lake / "commits" / "commit_samples" / "crawl=c1" / f"shard-00{s}").is_dir() for s in range(2))

    repos = pl.read_parquet(f"{lake}/lineage/stage=commit_repos/crawl=c1/**/*.parquet")
    fate = dict(zip(repos["id"], repos["reason"]))
    assert {n: fate[n] for n in REAL} == dict.fromkeys(REAL)  # all five kept
    assert fate["x/corrupt"] == "bad_repository" and fate["x/missing"] == "missing_repository"
    assert fate["x/unloved"] == "few_stars"
    assert sorted(r for i, r in fate.items() if i.startswith("manifest:")) == ["bad_manifest_json", "duplicate_repo"]

    commits = pl.read_parquet(f"{lake}/lineage/stage=commit_samples/crawl=c1/**/*.parquet")
    reasons = commits.group_by("reason").len()
    counts = dict(zip(reasons["reason"], reasons["len"]))
    assert counts[None] > 1500 and counts["merge"] > 600 and counts["bot_author"] > 200
    assert commits["id"].n_unique() == commits.height
    shallow = commits.filter(pl.col("id").str.starts_with("x/shallow-cobra@"))
    reachable = subprocess.run(["git", "--git-dir", str(landing / "c1" / "shallow" / "cobra.git"), "rev-list",
                                "--count", "HEAD"], capture_output=True, text=True, check=True).stdout
    assert shallow.height == int(reachable) < 1106  # what git reaches in the shallow mirror, each with a fate
    boundary = (landing / "c1" / "shallow" / "cobra.git" / "shallow").read_text().split()
    cut = shallow.filter(pl.col("reason") == "shallow_boundary")["id"].str.split("@").list.last()
    assert sorted(cut) == sorted(boundary)  # not taken for root commits that add the whole tree

    # c2 re-crawls cobra and a fork of walkdir: every commit c1 saw is dropped before any diff
    again = pl.read_parquet(f"{lake}/lineage/stage=commit_samples/crawl=c2/**/*.parquet")
    assert again.height == 1106 + 192 and set(again["reason"].unique()) == {"seen_in_earlier_crawl"}
    assert pl.read_parquet(f"{lake}/commits/commit_samples/crawl=c2/**/*.parquet").height == 0

    samples = pl.read_parquet(f"{lake}/commits/commit_samples/crawl=c1/**/*.parquet")
    assert samples.height == counts[None] and set(samples["language"].drop_nulls()) >= {"Python", "Go", "Rust", "C++"}
    recall = samples["changed_retrieved"].sum() / samples["changed_in_snapshot"].sum()
    assert 0.4 < recall <= 1

    # the shallow mirror is a copy of cobra's recent history: its samples are cobra's, which survive
    dedup = pl.read_parquet(f"{lake}/lineage/stage=deduped_commit_samples/crawl=c1/**/*.parquet")
    copies = dedup.filter(pl.col("id").str.starts_with("x/shallow-cobra@"))
    assert copies.height > 20 and set(copies["reason"]) == {"exact_dup"}
    assert (copies["survivor"] == copies["id"].str.replace("x/shallow-cobra@", "spf13/cobra@")).all()
    kept = dedup.filter(pl.col("decision") == "kept")
    assert kept.height == pl.read_parquet(f"{lake}/commits/deduped_commit_samples/crawl=c1/**/*.parquet").height


def test_the_demo_commit_crawl_of_pypi_releases_materializes_with_every_check_passing(tmp_path: Path) -> None:
    from seedcoder_assets.partitions import job_partition_keys
    from seedcoder_assets.resources.storage import StorageResource
    from seedcoder_assets.sample_commit_crawl import build_commit_crawl

    landing = tmp_path / "landing-commits"
    build_commit_crawl(landing / "demo", [("six", 8), ("itsdangerous", 6)])
    storage = StorageResource(lake_root=str(tmp_path / "lake"), landing_root=str(tmp_path / "landing"),
                              commits_landing_root=str(landing), local_dir=str(tmp_path / "local"))
    import yaml

    config = yaml.safe_load((Path(__file__).resolve().parents[2] / "deploy" / "demo" / "commits.yaml").read_text())
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("commit_crawl", ["demo"])
        for key in job_partition_keys("commits_job", "demo"):
            result = defs().resolve_job_def("commits_job").execute_in_process(
                instance=instance, resources={"storage": storage}, partition_key=key, run_config=config)
            assert result.success
            assert all(e.passed for e in result.get_asset_check_evaluations())
            md = result.asset_materializations_for_node("commits__commit_samples")[0].metadata
            assert {"samples_per_language", "sample_length", "drop_reasons_chart"} <= set(md)
    samples = pl.read_parquet(f"{tmp_path}/lake/commits/commit_samples/crawl=demo/**/*.parquet")
    assert samples.height >= 5 and samples["text"].str.starts_with("<commit_message>\n").all()
    assert samples["message"].str.contains("Pull request|Issue|issue|Fix|fix|Add|add").any()  # changelog entries


def test_the_commit_crawl_sensor_registers_a_landed_crawl_and_runs_its_shards(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from seedcoder_assets.resources.storage import StorageResource

    landing = tmp_path / "landing-commits"
    (landing / "c1").mkdir(parents=True)
    (landing / "c1" / "a.bundle").write_bytes(b"x" * 100)
    (landing / "c1" / "b.git" / "objects").mkdir(parents=True)
    (landing / "c1" / "b.git" / "objects" / "pack").write_bytes(b"y" * 300)  # a bare mirror weighs its files
    (landing / "c1" / "git_repos.jsonl").write_text(
        json.dumps({"name": "o/a", "git": "a.bundle"}) + "\n" + json.dumps({"name": "o/b", "git": "b.git/"}) + "\n")
    (landing / "uploading").mkdir()  # no manifest yet: not landed
    (landing / "broken").mkdir()
    (landing / "broken" / "git_repos.jsonl").write_text("{nope\n")
    monkeypatch.setenv("SEEDCODER_SHARDS", "2")
    storage = StorageResource(lake_root=str(tmp_path / "lake"), landing_root=str(tmp_path / "landing"),
                              commits_landing_root=str(landing), local_dir=str(tmp_path / "local"))
    from seedcoder_assets.core.ingest.shards import load_plan
    from seedcoder_assets_tests.defs.test_automation import _tick

    sensor = defs().get_sensor_def("new_commit_crawl_sensor")
    with dg.DagsterInstance.ephemeral() as instance:
        result = _tick(sensor, instance, storage, None)
        assert instance.get_dynamic_partitions("commit_crawl") == ["c1"]
        assert instance.get_dynamic_partitions("crawl") == []  # code crawls are another set
        assert sorted(str(r.partition_key) for r in result.run_requests) == ["c1|000", "c1|001"]
        assert {r.job_name for r in result.run_requests} <= {"commits_job", None}
        plan = load_plan(str(tmp_path / "lake"), "c1", "commits")
        assert sorted(s.bytes for s in plan.parts[0].shards) == [100, 300]  # one repository per shard, by bytes
        again = _tick(sensor, instance, storage, result.cursor)
        assert not again.run_requests  # decided once; the broken manifest is reported once
