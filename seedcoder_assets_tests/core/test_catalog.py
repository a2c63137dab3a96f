"""The catalog reads only finished partitions and survives any folder name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa

from seedcoder_assets.core import paths
from seedcoder_assets.core.catalog import catalog
from seedcoder_assets.core.parquet_io import SUCCESS_MARKER, PartWriter
from seedcoder_assets.core.stats import LineageWriter

SCHEMA = pa.schema([("id", pa.string()), ("n", pa.int64())])


def _partition(lake: Path, key: list[str], crawl: str, rows: int) -> str:
    uri = paths.partition_uri(str(lake), key, crawl)
    with PartWriter(uri, SCHEMA) as out:
        out.write_rows([{"id": f"{crawl}-{i}", "n": i} for i in range(rows)])
    return uri


def test_only_partitions_with_success_markers_are_read(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    _partition(lake, ["dedup", "files"], "c1", 3)
    half = _partition(lake, ["dedup", "files"], "c2", 5)
    Path(half, SUCCESS_MARKER).unlink()  # a partition being rewritten, or left by a killed run
    lw = LineageWriter(str(lake), "exact_dedup", "c1", "r")
    lw.kept("c1-0")
    lw.close()
    lw = LineageWriter(str(lake), "exact_dedup", "c2", "r")
    lw.kept("c2-0")
    lw.close()
    Path(paths.lineage_uri(str(lake), "exact_dedup", "c2"), SUCCESS_MARKER).unlink()
    conn = catalog.open_catalog(str(tmp_path / "cat.duckdb"), str(lake))
    assert conn.execute("SELECT count(*), max(crawl) FROM dedup_files").fetchone() == (3, "c1")
    assert conn.execute("SELECT count(*) FROM lineage").fetchone()[0] == 1


def test_odd_folder_names_become_quoted_views(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    _partition(lake, ["web", "it's-odd"], "c1", 2)
    _partition(lake, ["web", 'with "quotes"'], "c1", 1)
    conn = catalog.open_catalog(str(tmp_path / "cat.duckdb"), str(lake))
    assert conn.execute("""SELECT count(*) FROM "web_it's-odd" """).fetchone()[0] == 2
    assert conn.execute('SELECT count(*) FROM "web_with ""quotes"""').fetchone()[0] == 1


def test_register_crawl_refuses_names_the_sensor_refuses(tmp_path: Path) -> None:
    env = {"DAGSTER_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    for bad in ("../../etc", "a/b", "x..y", ".hidden"):
        out = subprocess.run([sys.executable, "-m", "seedcoder_assets.cli", "register-crawl", bad], env=env,
                             capture_output=True, text=True)
        assert out.returncode != 0 and "not a valid partition key" in out.stderr, (bad, out.stderr)
