"""A run killed inside a pooled step (SIGKILL: no cleanup) must not block every later run: the next
`seedcoder materialize` finds it, marks it failed and frees its slot. A run waiting for a slot held by
a live run sleeps instead of spinning, and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
# The CLI, paused inside the catalog step (pool `duckdb`) once it holds the slot, for a test to act then.
PAUSED_CLI = """
import os, pathlib, sys, time
from seedcoder_assets.core.catalog import catalog
real = catalog.open_catalog
def paused(*a, **kw):
    pathlib.Path(os.environ["PAUSED_FLAG"]).touch()
    time.sleep(600)
    return real(*a, **kw)
catalog.open_catalog = paused
from seedcoder_assets.cli import main
main(sys.argv[1:])
"""
WAIT_FOR_CATALOG = """
import dagster as dg
from seedcoder_assets.cli import _execute, _report, stop_on_sigterm
stop_on_sigterm()
from seedcoder_assets.definitions import defs
with dg.DagsterInstance.get() as instance:
    result = _execute(defs().resolve_job_def("catalog_job"), instance, None)
    _report("catalog_job", result)
raise SystemExit(0 if result.success else 1)
"""


@pytest.fixture
def home(tmp_path: Path, small_crawl: Path) -> dict[str, str]:
    shutil.copytree(small_crawl, tmp_path / "landing" / "c1")
    (tmp_path / "dagster_home").mkdir()
    shutil.copy(ROOT / "dagster.yaml", tmp_path / "dagster_home" / "dagster.yaml")
    env = {**os.environ, "SEEDCODER_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path / "dagster_home"),
           "SEEDCODER_EXECUTOR": "in_process", "HF_HUB_OFFLINE": "1", "PAUSED_FLAG": str(tmp_path / "paused")}
    subprocess.run([sys.executable, "-m", "seedcoder_assets.cli", "register-crawl", "c1"], env=env, check=True,
                   capture_output=True)
    return env


def _start_paused(env: dict[str, str]) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", PAUSED_CLI, "materialize", "c1", "--skip-quality"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    flag, deadline = Path(env["PAUSED_FLAG"]), time.monotonic() + 300
    while not flag.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the run never reached the catalog step"
        time.sleep(0.1)
    return proc


def _slots(env: dict[str, str]) -> int:
    os.environ["DAGSTER_HOME"] = env["DAGSTER_HOME"]
    with dg.DagsterInstance.get() as instance:
        return len(instance.event_log_storage.get_concurrency_run_ids())


def test_a_run_killed_inside_a_pooled_step_does_not_block_the_next(home: dict[str, str],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGSTER_HOME", home["DAGSTER_HOME"])
    proc = _start_paused(home)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert _slots(home) == 1  # the dead run holds the `duckdb` slot
    out = subprocess.run([sys.executable, "-m", "seedcoder_assets.cli", "materialize", "c1", "--skip-quality"],
                         env=home, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "is gone; marked failed" in out.stderr
    assert "catalog_job: success" in out.stdout and _slots(home) == 0
    with dg.DagsterInstance.get() as instance:
        statuses = {r.job_name: r.status for r in reversed(instance.get_runs(limit=10))}  # newest wins
        dead = [r for r in instance.get_runs() if r.status == dg.DagsterRunStatus.FAILURE]
    assert len(dead) == 1 and statuses["catalog_job"] == dg.DagsterRunStatus.SUCCESS


def test_waiting_for_a_slot_sleeps_and_stops_cleanly_on_sigterm(home: dict[str, str],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGSTER_HOME", home["DAGSTER_HOME"])
    holder = _start_paused(home)  # alive, holding the slot
    try:
        waiter = subprocess.Popen([sys.executable, "-c", WAIT_FOR_CATALOG], env=home, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        ps = psutil.Process(waiter.pid)
        time.sleep(8)  # imports done, blocked on the pool
        assert waiter.poll() is None, "the waiting run should still wait"
        before = sum(ps.cpu_times()[:2])
        time.sleep(5)
        busy = sum(ps.cpu_times()[:2]) - before
        assert busy < 1.5, f"waiting for a pool slot used {busy:.1f} CPU-s in 5 s"
        waiter.send_signal(signal.SIGTERM)
        waiter.wait(timeout=30)
        assert waiter.returncode == 1
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
    with dg.DagsterInstance.get() as instance:
        waiting_run = instance.get_runs(limit=1)[0]  # the newest: the one stopped by SIGTERM
    assert waiting_run.job_name == "catalog_job" and waiting_run.is_finished, waiting_run.status
