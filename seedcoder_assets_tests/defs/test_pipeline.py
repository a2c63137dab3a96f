"""End to end on real crawls: every asset, every check, idempotent re-runs, incremental second crawl."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from seedcoder_assets.core.catalog import catalog
from seedcoder_assets.definitions import defs
from seedcoder_assets.resources.catalog import CatalogResource
from seedcoder_assets.resources.storage import StorageResource
from seedcoder_assets.testing.branch import run_github_branch
from seedcoder_assets_tests.conftest import make_overlapping_crawl

FILE_ASSETS = ["ingest/raw_repo_files", "filters/code_files", "dedup/exact_deduped_files",
               "dedup/near_deduped_files", "filters/syntax_checked_files", "dedup/repo_level_files",
               "dedup/near_dup_clusters", "dedup/deduped_repos"]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, small_crawl: Path):
    home = tmp_path_factory.mktemp("home")
    landing = home / "landing"
    shutil.copytree(small_crawl, landing / "c1")
    make_overlapping_crawl(small_crawl, landing / "c2")
    resources = {
        "storage": StorageResource(lake_root=str(home / "lake"), landing_root=str(landing),
                                   local_dir=str(home / "local")),
        "catalog_db": CatalogResource(database=str(home / "catalog.duckdb")),
    }
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("crawl", ["c1", "c2"])
    return home, resources, instance


def _run(env, crawl: str) -> dg.ExecuteInProcessResult:
    _, resources, instance = env
    return run_github_branch(defs(), instance, crawl, resources=resources)


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {f"{e.asset_key.to_user_string()}:{e.check_name}": e.passed for e in result.get_asset_check_evaluations()}


def _digest(home: Path, asset: str, crawl: str) -> str:
    """Content digest of a partition, independent of part layout and row order."""
    df = pl.read_parquet(f"{home}/lake/{asset}/crawl={crawl}/**/*.parquet")
    key = "id" if "id" in df.columns else df.columns[1]
    return hashlib.sha256(df.sort(key).hash_rows(seed=0).to_numpy().tobytes()).hexdigest()


def test_small_real_crawl_end_to_end(env) -> None:
    home, resources, instance = env
    result = _run(env, "c1")
    assert result.success
    checks = _checks(result)
    failed = {f"{e.asset_key.to_user_string()}:{e.check_name}": {k: v.value for k, v in e.metadata.items()}
              for e in result.get_asset_check_evaluations() if not e.passed}
    assert len(checks) == 13 and not failed, failed
    assert checks["filters/file_features:python_features_agree"]  # ast and tokenize agree with the features
    files = pl.read_parquet(f"{home}/lake/filters/syntax_checked_files/crawl=c1/**/*.parquet")
    assert files["sha256"].n_unique() == files.height > 1000
    # pip vendors requests: exactly one requests/api.py-like file survives
    assert files.filter(pl.col("path").str.ends_with("requests/api.py")).height == 1
    mats = {e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
            for e in result.get_asset_materialization_events()}
    assert set(FILE_ASSETS) <= set(mats)
    assert mats["filters/syntax_checked_files"]["rows_out"].value == files.height
    assert "image/png;base64" in mats["filters/code_files"]["languages"].value


def test_rematerializing_gives_identical_output(env) -> None:
    home, _, _ = env
    before = {a: _digest(home, a, "c1") for a in FILE_ASSETS}
    assert _run(env, "c1").success
    assert {a: _digest(home, a, "c1") for a in FILE_ASSETS} == before


def test_second_crawl_keeps_only_new_code_and_leaves_first_untouched(env) -> None:
    home, resources, instance = env
    first = {a: _digest(home, a, "c1") for a in FILE_ASSETS}
    result = _run(env, "c2")
    assert result.success and all(_checks(result).values()), _checks(result)
    kept = pl.read_parquet(f"{home}/lake/dedup/near_deduped_files/crawl=c2/**/*.parquet")
    repos = set(kept["repo"].unique())
    assert repos and all(r.startswith(("pypi/iniconfig", "pypi/pluggy")) for r in repos), repos
    lineage = pl.read_parquet(f"{home}/lake/lineage/stage=*/crawl=c2/**/*.parquet", hive_partitioning=True)
    reasons = lineage.filter(pl.col("decision") == "dropped").group_by("stage", "reason").len()
    got = {(s, r) for s, r, _ in reasons.rows()}
    assert {("exact_deduped_files", "exact_dup_prior_crawl"), ("near_deduped_files", "near_dup_prior_crawl"),
            ("deduped_repos", "repo_exact_dup_prior_crawl"), ("deduped_repos", "repo_near_dup_prior_crawl")} <= got
    deduped = pl.read_parquet(f"{home}/lake/dedup/deduped_repos/crawl=c2/**/*.parquet")
    assert set(deduped.filter(pl.col("decision") == "kept")["repo"]) == {"pypi/iniconfig-2.0.0", "pypi/pluggy-1.5.0"}
    assert {a: _digest(home, a, "c1") for a in FILE_ASSETS} == first
    # Re-running the first crawl after the second landed still gives the same output.
    assert _run(env, "c1").success
    assert {a: _digest(home, a, "c1") for a in FILE_ASSETS} == first


def test_catalog_answers_why_and_balances(env) -> None:
    home, resources, instance = env
    result = defs().resolve_job_def("catalog_job").execute_in_process(resources=resources, instance=instance)
    assert result.success and all(_checks(result).values())
    with resources["catalog_db"].connect(resources["storage"].lake_root) as conn:
        rows = catalog.why(conn, "pypi/requests-2.31.0/requests/api.py")
        assert [r["stage"] for r in rows][:2] == ["raw_repo_files", "code_files"]
        assert any(r["reason"] == "exact_dup" for r in rows)
        assert catalog.where_from(conn, rows[0]["id"])["repo_path"] == "pypi/requests-2.31.0/requests/api.py"
        assert not catalog.chain_violations(conn)
