"""`seedcoder materialize` stops at the first failed job and says why."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_materialize_stops_at_the_first_failed_job_with_its_error(tmp_path: Path) -> None:
    (tmp_path / "dagster_home").mkdir()
    (tmp_path / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    (tmp_path / "landing" / "empty").mkdir(parents=True)  # landed, but neither a manifest nor Parquet
    env = {**os.environ, "SEEDCODER_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path / "dagster_home"),
           "SEEDCODER_EXECUTOR": "in_process", "HF_HUB_OFFLINE": "1"}
    cli = [sys.executable, "-m", "seedcoder_assets.cli"]
    subprocess.run([*cli, "register-crawl", "empty"], env=env, check=True, capture_output=True)
    out = subprocess.run([*cli, "materialize", "empty"], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert "github_shards_job[empty|000]: FAILED" in out.stdout
    assert "no repos.jsonl and no Parquet files" in out.stdout  # the step's own error, printed
    assert "github_files_job" not in out.stdout and "catalog_job" not in out.stdout
    assert "stopped: github_shards_job[empty|000] failed" in out.stderr
