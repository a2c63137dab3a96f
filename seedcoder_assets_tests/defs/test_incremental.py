"""Dedup across crawls on real sdists: the same repository names crawled again (identical, changed a
little, changed a lot), re-materialized in both orders, then a third crawl of near copies under new
names; and crawls materialized out of order."""

from __future__ import annotations

import json
import random
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from seedcoder_assets.definitions import defs
from seedcoder_assets.lib.dagster_utils import wait_or_fail
from seedcoder_assets.resources.storage import StorageResource
from seedcoder_assets.testing.branch import run_github_branch
from seedcoder_assets_tests.conftest import rewrite_sdist
from seedcoder_assets_tests.defs.test_pipeline import FILE_ASSETS, _digest

REPOS = {"click": "pypi/click-8.1.7", "six": "pypi/six-1.17.0", "idna": "pypi/idna-3.7", "pkg": "pypi/packaging-24.1"}


def _entries(crawl: Path) -> dict[str, dict]:
    return {e["name"]: e for e in map(json.loads, (crawl / "repos.jsonl").read_text().splitlines())}


def _a_little(text: str) -> str:
    return text + "\n# crawled again: one comment line more\n"


def _a_lot(text: str) -> str:
    lines = text.splitlines()
    random.Random(len(text)).shuffle(lines)
    return "\n".join(f"{line} # {i}" for i, line in enumerate(lines))


def _crawl(landing: Path, name: str, small: Path, repos: list[tuple[str, str, Callable[[str], str] | None]]) -> None:
    """repos: (name in this crawl, repo of the small crawl, change or None for an identical copy)."""
    dest = landing / name
    dest.mkdir(parents=True)
    by_name = _entries(small)
    lines = []
    for new_name, old, change in repos:
        archive = by_name[old]["archive"]
        out = f"{new_name.replace('/', '_')}.tar.gz"
        if change is None:
            shutil.copy(small / archive, dest / out)
        else:
            rewrite_sdist(small / archive, dest / out, change)
        lines.append({"name": new_name, "archive": out, "stars": 10})
    (dest / "repos.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


def _env(root: Path, small: Path):
    landing = root / "landing"
    _crawl(landing, "c1", small, [(r, r, None) for r in REPOS.values()])
    _crawl(landing, "c2", small, [(REPOS["click"], REPOS["click"], None), (REPOS["six"], REPOS["six"], _a_little),
                                  (REPOS["idna"], REPOS["idna"], _a_lot)])
    _crawl(landing, "c3", small, [("fork/click", REPOS["click"], _a_little), ("fork/pkg", REPOS["pkg"], _a_little)])
    resources = {"storage": StorageResource(lake_root=str(root / "lake"), landing_root=str(landing),
                                            local_dir=str(root / "local"))}
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("crawl", ["c1", "c2", "c3"])
    return resources, instance


def _run(resources, instance, crawl: str, raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
    return run_github_branch(defs(), instance, crawl, resources=resources, raise_on_error=raise_on_error)


def _lineage(root: Path, crawl: str, stage: str) -> pl.DataFrame:
    return pl.read_parquet(f"{root}/lake/lineage/stage={stage}/crawl={crawl}/**/*.parquet")


def _digests(root: Path) -> dict[str, str]:
    return {f"{a}[{c}]": _digest(root, a, c) for a in FILE_ASSETS for c in ("c1", "c2", "c3")}


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory, small_crawl: Path):
    root = tmp_path_factory.mktemp("incr_a")
    resources, instance = _env(root, small_crawl)
    for crawl in ("c1", "c2", "c2", "c1", "c3"):  # c2 twice, then c1 again after c2 landed
        assert _run(resources, instance, crawl).success
    return root


def test_the_same_names_crawled_again_are_separate_records(first: Path) -> None:
    repos = _lineage(first, "c2", "deduped_repos").select("detail", "decision", "reason", "survivor")
    by_repo = {d.split(" ")[0]: (dec, reason, surv) for d, dec, reason, surv in repos.rows()}
    assert by_repo[REPOS["click"]] == ("dropped", "repo_exact_dup_prior_crawl", f"c1:{REPOS['click']}")
    assert by_repo[REPOS["six"]][:2] == ("dropped", "repo_near_dup_prior_crawl")
    assert by_repo[REPOS["six"]][2] == f"c1:{REPOS['six']}"
    assert by_repo[REPOS["idna"]][0] == "kept", "changed a lot: a repository of its own"
    # Every changed file of the re-crawled six is a near copy of the file c1 kept.
    near = _lineage(first, "c2", "near_deduped_files")
    six_py = _lineage(first, "c2", "raw_repo_files").filter(pl.col("detail").str.starts_with(REPOS["six"]) &
                                                   pl.col("detail").str.ends_with(".py") & (pl.col("decision") == "kept"))
    fate = near.filter(pl.col("id").is_in(six_py["id"].to_list()))
    assert fate.height and (fate["reason"] == "near_dup_prior_crawl").all(), fate


def _grams(text: str) -> set[tuple[str, ...]]:
    """Word 5-grams by an independent definition (Python's `\\w+`), for judging the stage's output."""
    w = re.findall(r"\w+", text)
    return {tuple(w[i:i + 5]) for i in range(len(w) - 4)} or {tuple(w)}


def test_near_copies_in_a_third_crawl_are_all_found(first: Path) -> None:
    repos = dict(_lineage(first, "c3", "deduped_repos").select(pl.col("detail").str.split(" ").list.first(),
                                                            "reason").rows())
    assert repos == {"fork/click": "repo_near_dup_prior_crawl", "fork/pkg": "repo_near_dup_prior_crawl"}
    # File level: every code file of c3 whose exact 5-gram Jaccard with its original in c1 is >= 0.7
    # must be gone, as an exact or near duplicate of the earlier crawl.
    c1 = pl.read_parquet(f"{first}/lake/dedup/exact_deduped_files/crawl=c1/**/*.parquet")
    c3 = pl.read_parquet(f"{first}/lake/filters/code_files/crawl=c3/**/*.parquet")
    original = {(r.split("/")[-1].rsplit("-", 1)[0], p): t for r, p, t in c1.select("repo", "path", "content").rows()}
    fate = {**dict(_lineage(first, "c3", "exact_deduped_files").select("id", "reason").rows()),
            **dict(_lineage(first, "c3", "near_deduped_files").select("id", "reason").rows())}
    judged = 0
    for id_, repo, path, text in c3.select("id", "repo", "path", "content").rows():
        old = original.get((repo.split("/")[-1], path))
        if old is None:
            continue
        a, b = _grams(text), _grams(old)
        if len(a & b) / len(a | b) >= 0.7:
            judged += 1
            assert fate.get(id_) in ("exact_dup_prior_crawl", "near_dup_prior_crawl"), (repo, path, fate.get(id_))
    assert judged > 50


def test_outputs_do_not_depend_on_the_order_of_re_materialization(first: Path, tmp_path: Path,
                                                                    small_crawl: Path) -> None:
    resources, instance = _env(tmp_path, small_crawl)
    for crawl in ("c1", "c2", "c1", "c2", "c3"):
        assert _run(resources, instance, crawl).success
    assert _digests(tmp_path) == _digests(first)


def test_a_crawl_materialized_before_an_earlier_one_fails_and_says_which(tmp_path: Path, small_crawl: Path) -> None:
    resources, instance = _env(tmp_path, small_crawl)
    result = _run(resources, instance, "c2", raise_on_error=False)
    assert not result.success
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    text = " ".join(str(e.event_specific_data) for e in failures)
    assert "c1" in text and "registered earlier" in text, text
    assert not list((tmp_path / "lake").glob("dedup/near_deduped_files/crawl=c2"))
    # Once c1 is done, c2 runs and finds its duplicates.
    assert _run(resources, instance, "c1").success and _run(resources, instance, "c2").success
    reasons = set(_lineage(tmp_path, "c2", "deduped_repos")["reason"].drop_nulls())
    assert "repo_exact_dup_prior_crawl" in reasons


def test_a_crawl_waits_for_an_earlier_crawl_that_is_running() -> None:
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("crawl", ["c1", "c2"])
    running = instance.create_run_for_job(job_def=defs().resolve_job_def("github_files_job"),
                                          tags={"dagster/partition": "c1"}, status=dg.DagsterRunStatus.STARTED)
    assert running.status == dg.DagsterRunStatus.STARTED
    from seedcoder_assets.core.dedup.index import PriorCrawlsNotIndexed

    missing = PriorCrawlsNotIndexed("file", ["c1"])
    assert isinstance(wait_or_fail(instance, "this-run", missing), dg.RetryRequested)
    instance.report_run_failed(running)
    failure = wait_or_fail(instance, "this-run", missing)
    assert isinstance(failure, dg.Failure) and "c1" in failure.description
    # A run of c1 not yet started is not waited for: it might never get a slot while c2 holds one.
    instance.create_run_for_job(job_def=defs().resolve_job_def("github_files_job"), tags={"dagster/partition": "c1"},
                                status=dg.DagsterRunStatus.NOT_STARTED)
    assert isinstance(wait_or_fail(instance, "this-run", missing), dg.Failure)


def test_dedup_on_the_dask_engine_decides_as_in_process(first: Path, tmp_path: Path) -> None:
    """The third crawl again, its exact-dedup decisions and near-dedup candidate join fanned out on a local
    Dask cluster (cut into many shards and hash ranges): the same files, clusters and lineage as in process."""
    from seedcoder_assets.resources.engine import DedupEngineResource

    shutil.copytree(first / "lake", tmp_path / "lake")
    resources = {"storage": StorageResource(lake_root=str(tmp_path / "lake"), landing_root=str(first / "landing"),
                                            local_dir=str(tmp_path / "local")),
                 "dedup_engine": DedupEngineResource(engine="dask", dask_workers=2, rows_per_unit=64, key_ranges=6)}
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("crawl", ["c1", "c2", "c3"])
    result = _run(resources, instance, "c3")
    md = result.asset_materializations_for_node("dedup__near_dup_clusters")[0].metadata
    assert md["engine"].value == "dask" and md["prior_crawl_matches"].value > 0
    for asset in ("dedup/exact_deduped_files", "dedup/near_dup_clusters", "dedup/near_deduped_files"):
        assert _digest(tmp_path, asset, "c3") == _digest(first, asset, "c3"), asset
    for stage in ("exact_deduped_files", "near_deduped_files"):
        cols = ["id", "decision", "reason", "cluster", "survivor", "detail"]
        assert _lineage(tmp_path, "c3", stage).select(cols).sort("id").equals(
            _lineage(first, "c3", stage).select(cols).sort("id")), stage
