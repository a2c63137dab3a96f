"""A run killed mid-partition (SIGKILL, no cleanup), marked failed as run monitoring does, and re-executed
from failure gives the same lake, lineage and dedup index as a run that was never interrupted."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from seedcoder_assets_tests.defs.test_pipeline import FILE_ASSETS

KILL_AT_STEP = "filters__syntax_checked_files"  # the last, slowest step: most of the run is done by then
RUN_JOB = """
import dagster as dg
from seedcoder_assets.definitions import defs
with dg.DagsterInstance.get() as instance:
    defs().resolve_job_def("github_files_job").execute_in_process(instance=instance, partition_key="c1")
"""


def github_files_job() -> dg.JobDefinition:
    """Reconstructable (re-execution loads the job by this module path)."""
    from seedcoder_assets.definitions import defs

    return defs().resolve_job_def("github_files_job")


def _home(root: Path, small_crawl: Path) -> dict[str, str]:
    shutil.copytree(small_crawl, root / "landing" / "c1")
    (root / "dagster_home").mkdir(parents=True)
    (root / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return {**os.environ, "SEEDCODER_HOME": str(root), "DAGSTER_HOME": str(root / "dagster_home"),
            "SEEDCODER_EXECUTOR": "in_process", "HF_HUB_OFFLINE": "1"}


def _register(env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "seedcoder_assets.cli", "register-crawl", "c1"], env=env, check=True,
                   capture_output=True)


def _fingerprint(root: Path) -> dict[str, str]:
    """Content of every partition and lineage stage (row order, part layout and run ids aside), and
    the crawl's rows in the dedup index."""
    out = {}
    for asset in FILE_ASSETS:
        df = pl.read_parquet(f"{root}/lake/{asset}/crawl=c1/*.parquet")
        out[asset] = hashlib.sha256(df.sort(df.columns).hash_rows(seed=0).to_numpy().tobytes()).hexdigest()
    for stage_dir in sorted((root / "lake" / "lineage").glob("stage=*")):
        df = pl.read_parquet(f"{stage_dir}/crawl=c1/*.parquet").drop("run_id")
        out[stage_dir.name] = hashlib.sha256(df.sort(["id", "stage"]).hash_rows(seed=0).to_numpy().tobytes()).hexdigest()
    with sqlite3.connect(root / "index" / "dedup_index.sqlite") as conn:
        for table in ("file_hash", "repo_hash", "band", "signature"):
            rows = conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3").fetchall()
            out[f"index.{table}"] = hashlib.sha256(repr(rows).encode()).hexdigest()
    return out


def test_killed_run_reexecuted_from_failure_matches_an_uninterrupted_run(tmp_path: Path, small_crawl: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env = _home(tmp_path / "clean", small_crawl)
    _register(clean_env)
    subprocess.run([sys.executable, "-c", RUN_JOB], env=clean_env, check=True, capture_output=True)
    expected = _fingerprint(tmp_path / "clean")

    env = _home(tmp_path / "killed", small_crawl)
    _register(env)
    for key in ("SEEDCODER_HOME", "DAGSTER_HOME", "SEEDCODER_EXECUTOR"):
        monkeypatch.setenv(key, env[key])
    proc = subprocess.Popen([sys.executable, "-c", RUN_JOB], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    with dg.DagsterInstance.get() as instance:
        deadline = time.monotonic() + 300
        run_id = None
        while proc.poll() is None and time.monotonic() < deadline:
            runs = instance.get_runs()
            run_id = runs[0].run_id if runs else None
            if run_id and any(e.dagster_event.step_key == KILL_AT_STEP for e in
                              instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)):
                time.sleep(0.5)  # inside the step: its Parquet parts and lineage are half written
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.05)
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
        run = instance.get_run_by_id(run_id)
        assert run.status == dg.DagsterRunStatus.STARTED  # a killed process reports nothing
        done = {e.dagster_event.step_key for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)}
        assert KILL_AT_STEP not in done and len(done) >= 5

        instance.report_run_failed(run)  # what run monitoring does for a run whose pod died
        result = dg.execute_job(
            dg.reconstructable(github_files_job), instance=instance, tags=run.tags,  # the partition, as the UI does
            reexecution_options=dg.ReexecutionOptions.from_failure(run_id, instance))
        assert result.success
        rerun = {e.step_key for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_SUCCESS}
        assert KILL_AT_STEP in rerun and not (rerun & done), "only the unfinished steps run again"

    assert _fingerprint(tmp_path / "killed") == expected
