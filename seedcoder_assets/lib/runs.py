"""Runs on this instance that died with their process: found, marked failed, and their pool slots freed.

A run executed in-process by `seedcoder` (laptop sleep, OOM kill, SIGKILL) reports nothing when it dies:
it stays STARTED and keeps its op-concurrency slots, so every later run would wait on its pool for ever.
Runs the CLI starts carry the host, PID and start time of their process; before each job the CLI marks
runs whose process is gone as failed and frees the slots of every finished run. Runs launched from the
UI are watched by the daemon's run monitoring (dagster.yaml: `run_monitoring`).
"""

from __future__ import annotations

import os
import socket

import dagster as dg
import psutil

HOST_TAG, PID_TAG, STARTED_TAG = "seedcoder/host", "seedcoder/pid", "seedcoder/pid_started"
_RUNNING = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
            dg.DagsterRunStatus.CANCELING]


def process_tags() -> dict[str, str]:
    """Tags naming this process, so a later CLI call can tell whether a run's process still lives."""
    me = psutil.Process()
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(me.pid), STARTED_TAG: f"{me.create_time():.3f}"}


def _gone(tags: dict[str, str]) -> bool:
    try:
        proc = psutil.Process(int(tags[PID_TAG]))
        # A reused PID belongs to a process started at another time.
        return proc.status() == psutil.STATUS_ZOMBIE or f"{proc.create_time():.3f}" != tags.get(STARTED_TAG)
    except (psutil.NoSuchProcess, ValueError, KeyError):
        return True


def recover_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark this host's runs whose process is gone as failed and free the pool slots of finished runs.

    Returns:
        One message per run recovered.
    """
    messages = []
    host = socket.gethostname()
    for record in instance.get_run_records(dg.RunsFilter(statuses=_RUNNING, tags={HOST_TAG: host})):
        run = record.dagster_run
        if run.tags.get(PID_TAG) != str(os.getpid()) and _gone(run.tags):
            instance.report_run_failed(run, f"the process that ran it (pid {run.tags.get(PID_TAG)}) is gone")
            messages.append(f"run {run.run_id} ({run.job_name}): its process {run.tags.get(PID_TAG)} is gone; "
                            "marked failed")
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits:
        for run_id in sorted(storage.get_concurrency_run_ids()):
            run = instance.get_run_by_id(run_id)
            if run is None or run.is_finished:
                freed = storage.free_concurrency_slots_for_run(run_id)
                if freed:
                    messages.append(f"run {run_id}: freed {freed} pool slot(s) it held after it ended")
    return messages
