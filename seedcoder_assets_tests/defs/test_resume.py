"""A run killed mid-partition (SIGKILL, no cleanup), marked failed as run monitoring does, and re-executed
from failure gives the same lake, lineage and dedup index as a run that was never interrupted.

The kill lands inside a chosen step: the syntax check (by time), and exact, near and repository dedup at
their worst moment: the lake partition written but the index entries not, or the index half written
(the child process is paused there by a wrapper installed in that process only)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from seedcoder_assets_tests.defs.test_pipeline import FILE_ASSETS

RUN_JOB = """
import os, pathlib, time
import dagster as dg
from seedcoder_assets.core.dedup.index import DedupIndex
from seedcoder_assets.definitions import defs

pause = os.environ.get("PAUSE_IN")  # "method:first argument" of DedupIndex to stop inside, for the kill
if pause:
    name, arg = pause.split(":")
    real = getattr(DedupIndex, name)
    def paused(self, *args, **kw):
        if args[0] == arg:
            if name == "write_bands":  # the records table first, then stop: the index is half written
                real(self, *args, **kw)
                self_path = self.uri(arg + "_bands", args[1])
                import shutil; shutil.rmtree(self_path, ignore_errors=True)
            pathlib.Path(os.environ["PAUSED_FLAG"]).touch()
            time.sleep(120)
        return real(self, *args, **kw)
    setattr(DedupIndex, name, paused)
from seedcoder_assets.testing.branch import run_github_branch
with dg.DagsterInstance.get() as instance:
    run_github_branch(defs(), instance, "c1")  # its shards, then the crawl's job (the steps killed below)
"""
# (step to kill, where to pause: None = 0.5 s into the step)
KILLS = [("filters__syntax_checked_files", None),
         ("dedup__exact_deduped_files", "write_hashes:file_hashes"),
         ("dedup__near_deduped_files", "write_bands:file"),
         ("dedup__deduped_repos", "write_bands:repo")]


REEXECUTE = """
import json, sys
import dagster as dg
from seedcoder_assets.definitions import defs
from seedcoder_assets.testing.branch import run_github_branch
from seedcoder_assets_tests.defs import test_resume
with dg.DagsterInstance.get() as instance:
    run = instance.get_run_by_id(sys.argv[1])
    instance.report_run_failed(run)  # what run monitoring does for a run whose pod died
    result = dg.execute_job(dg.reconstructable(getattr(test_resume, run.job_name)), instance=instance, tags=run.tags,
                            reexecution_options=dg.ReexecutionOptions.from_failure(run.run_id, instance))
    rerun = sorted(e.step_key for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_SUCCESS)
    if run.job_name == "github_files_job":  # the killed run was the crawl's dedup: its shards' syntax follows
        run_github_branch(defs(), instance, "c1", jobs=("github_syntax_job",))
    print(json.dumps({"success": result.success, "rerun": rerun}))
"""


def github_files_job() -> dg.JobDefinition:
    """Reconstructable (re-execution loads the job by this module path)."""
    from seedcoder_assets.definitions import defs

    return defs().resolve_job_def("github_files_job")


def github_syntax_job() -> dg.JobDefinition:
    from seedcoder_assets.definitions import defs

    return defs().resolve_job_def("github_syntax_job")


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
        df = pl.read_parquet(f"{root}/lake/{asset}/crawl=c1/**/*.parquet")
        out[asset] = hashlib.sha256(df.sort(df.columns).hash_rows(seed=0).to_numpy().tobytes()).hexdigest()
    for stage_dir in sorted((root / "lake" / "lineage").glob("stage=*")):
        df = pl.read_parquet(f"{stage_dir}/crawl=c1/**/*.parquet").drop("run_id")
        out[stage_dir.name] = hashlib.sha256(df.sort(["id", "stage"]).hash_rows(seed=0).to_numpy().tobytes()).hexdigest()
    tables = sorted((root / "lake" / "_index").glob("*/crawl=c1"))
    assert len(tables) == 6, tables
    for table in tables:
        df = pl.read_parquet(f"{table}/*.parquet")
        out[f"index.{table.parent.name}"] = hashlib.sha256(df.hash_rows(seed=0).to_numpy().tobytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, small_crawl: Path) -> dict[str, str]:
    root = tmp_path_factory.mktemp("clean")
    clean_env = _home(root, small_crawl)
    _register(clean_env)
    subprocess.run([sys.executable, "-c", RUN_JOB], env=clean_env, check=True, capture_output=True)
    return _fingerprint(root)


@pytest.mark.parametrize(("kill_at_step", "pause_in"), KILLS)
def test_killed_run_reexecuted_from_failure_matches_an_uninterrupted_run(
        tmp_path: Path, small_crawl: Path, monkeypatch: pytest.MonkeyPatch, uninterrupted: dict[str, str],
        kill_at_step: str, pause_in: str | None) -> None:
    KILL_AT_STEP = kill_at_step
    expected = uninterrupted
    env = _home(tmp_path / "killed", small_crawl)
    flag = tmp_path / "paused"
    if pause_in:
        env.update(PAUSE_IN=pause_in, PAUSED_FLAG=str(flag))
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
            if pause_in and flag.exists():  # stopped inside the step, at the chosen point
                os.kill(proc.pid, signal.SIGKILL)
                break
            if not pause_in and run_id and any(e.dagster_event.step_key == KILL_AT_STEP for e in
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
        assert KILL_AT_STEP not in done  # (the first step of the crawl's job may be the one killed: none done)

    # Re-executed from failure in a fresh process (as the UI's "re-execute from failure" launches it).
    out = subprocess.run([sys.executable, "-c", REEXECUTE, run_id], env={k: v for k, v in env.items()
                                                                        if k not in ("PAUSE_IN", "PAUSED_FLAG")},
                         check=True, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    rerun = set(result["rerun"])
    assert result["success"]
    assert KILL_AT_STEP in rerun and not (rerun & done), "only the unfinished steps run again"

    assert _fingerprint(tmp_path / "killed") == expected
