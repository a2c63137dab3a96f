"""A real PostgreSQL server (Debian's postgresql package) holds run, event and schedule storage, as deployed."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
import yaml

from seedcoder_assets.definitions import defs
from seedcoder_assets.resources.catalog import CatalogResource
from seedcoder_assets.resources.storage import StorageResource
from seedcoder_assets.testing.branch import run_github_branch
from seedcoder_assets_tests.defs.test_automation import _one_repo_crawl

PASSWORD = "seedcoder-test"
# SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3, which is not installed and whose errors
# dagster-postgres's retries do not catch: name the psycopg2 driver (Helm: postgresql.postgresqlScheme).
SCHEME = "postgresql+psycopg2"


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name)]
    if not found[-1]:
        raise RuntimeError("PostgreSQL server binaries not found: apt-get install postgresql (as .ci/run does)")
    return found[-1]


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root; tests on CI run as root."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="module")
def postgres() -> Iterator[dict]:
    root = Path(tempfile.mkdtemp(prefix="seedcoder-pg-"))  # not under pytest's root-only tmp tree
    data, run = root / "data", root / "run"
    run.mkdir()
    pwfile = root / "pw"
    pwfile.write_text(PASSWORD)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        for p in (run, pwfile):
            shutil.chown(p, "postgres")
    subprocess.run(_as_postgres([_pg_bin("initdb"), "-D", str(data), "-U", "dagster", "--auth=scram-sha-256",
                                 f"--pwfile={pwfile}", "-E", "UTF8"]), check=True, capture_output=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(_as_postgres([_pg_bin("postgres"), "-D", str(data), "-p", str(port), "-h", "127.0.0.1",
                                            "-k", str(run), "-c", "fsync=off"]),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dsn = {"host": "127.0.0.1", "port": port, "user": "dagster", "password": PASSWORD}
    deadline = time.monotonic() + 60
    while True:
        try:
            conn = psycopg2.connect(dbname="postgres", **dsn)
            conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
            conn.cursor().execute("CREATE DATABASE dagster")
            conn.close()
            break
        except psycopg2.OperationalError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise
            time.sleep(0.3)
    yield {**dsn, "dbname": "dagster"}
    server.terminate()
    server.wait(timeout=30)
    shutil.rmtree(root, ignore_errors=True)


def _deployment_like_instance(home: Path, pg: dict) -> None:
    """dagster.yaml as the Helm chart renders it: Postgres storage (password from the environment,
    as the chart passes the secret), concurrency pools and the queued run coordinator."""
    local = yaml.safe_load((Path(__file__).resolve().parents[2] / "dagster.yaml").read_text())
    config = {
        "storage": {"postgres": {"postgres_db": {
            "hostname": pg["host"], "port": pg["port"], "username": pg["user"], "db_name": pg["dbname"],
            "password": {"env": "DAGSTER_PG_PASSWORD"}, "scheme": SCHEME}}},
        "run_coordinator": {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator"},
        "concurrency": local["concurrency"],
        "telemetry": {"enabled": False},
    }
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))


def test_materialization_against_a_postgres_instance(postgres: dict, tmp_path: Path, small_crawl: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _one_repo_crawl(small_crawl, tmp_path / "landing" / "c1")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", postgres["password"])
    _deployment_like_instance(tmp_path / "dagster_home", postgres)
    resources = {"storage": StorageResource(lake_root=str(tmp_path / "lake"), landing_root=str(tmp_path / "landing"),
                                            local_dir=str(tmp_path / "local")),
                 "catalog_db": CatalogResource(database=str(tmp_path / "catalog.duckdb"))}
    d = defs()
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster_home")) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        # The sensor registers the crawl (dynamic partitions live in the event log storage).
        with dg.build_sensor_context(instance=instance, resources={"storage": resources["storage"]}) as context:
            tick = d.get_sensor_def("new_crawl_sensor")(context)
        instance.add_dynamic_partitions("crawl", list(tick.dynamic_partitions_requests[0].partition_keys))
        result = run_github_branch(d, instance, "c1", resources=resources)
        assert result.success
        assert instance.get_materialized_partitions(dg.AssetKey(["filters", "syntax_checked_files"])) == {"c1|000"}
        assert instance.get_materialized_partitions(dg.AssetKey(["dedup", "near_deduped_files"])) == {"c1"}
        instance.event_log_storage.set_concurrency_slots("oracle", 1)
        assert "oracle" in instance.event_log_storage.get_concurrency_keys()

    # The rows are really in Postgres: runs, materializations, check results, partitions.
    with psycopg2.connect(**postgres) as conn, conn.cursor() as cur:
        cur.execute("SELECT status, pipeline_name FROM runs")
        assert sorted(cur.fetchall()) == [("SUCCESS", "github_files_job"), ("SUCCESS", "github_shards_job"),
                                          ("SUCCESS", "github_syntax_job")]
        cur.execute("SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'")
        assert cur.fetchone()[0] >= 9
        cur.execute("SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_CHECK_EVALUATION'")
        assert cur.fetchone()[0] >= 8
        cur.execute("SELECT partition FROM dynamic_partitions WHERE partitions_def_name = 'crawl'")
        assert cur.fetchall() == [("c1",)]
        cur.execute("SELECT event FROM event_logs WHERE dagster_event_type IN ('RUN_SUCCESS', 'PIPELINE_SUCCESS')")
        events = " ".join(row[0] for row in cur.fetchall())
        assert "github_shards_job" in events and "github_files_job" in events
