"""DuckDB catalog over the lake: one view per asset, a `lineage` view, and the questions users ask."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pyarrow.fs as pafs

from seedcoder_assets.core.object_store import duckdb_connect, is_s3, resolve

LINEAGE_VIEW = "lineage"


def _asset_dirs(lake_root: str) -> list[tuple[str, str]]:
    """(view name, glob) for every <group>/<asset> folder holding crawl partitions."""
    fs, root = resolve(lake_root)
    if fs.get_file_info(root).type == pafs.FileType.NotFound:
        return []
    out = []
    for group in fs.get_file_info(pafs.FileSelector(root)):
        if group.type != pafs.FileType.Directory or group.base_name in ("lineage",) or group.base_name.startswith("_"):
            continue
        for asset in fs.get_file_info(pafs.FileSelector(group.path)):
            if asset.type == pafs.FileType.Directory:
                out.append((f"{group.base_name}_{asset.base_name}", f"{_prefix(lake_root)}{asset.path}/*/*.parquet"))
    return sorted(out)


def _prefix(uri: str) -> str:
    return "s3://" if uri.startswith("s3://") else ""


def open_catalog(database: str, lake_root: str) -> duckdb.DuckDBPyConnection:
    """Open (creating if needed) the catalog and (re)create its views over the current lake."""
    Path(database).parent.mkdir(parents=True, exist_ok=True)
    conn = duckdb_connect(database, s3=is_s3(lake_root))
    for name, glob in _asset_dirs(lake_root):
        conn.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet('{glob}', "
                     "hive_partitioning = true, union_by_name = true)")
    fs, root = resolve(lake_root)
    if fs.get_file_info(f"{root}/lineage").type == pafs.FileType.Directory:
        glob = f"{_prefix(lake_root)}{root}/lineage/*/*/*.parquet"
        conn.execute(f"CREATE OR REPLACE VIEW {LINEAGE_VIEW} AS SELECT * FROM read_parquet('{glob}', "
                     "hive_partitioning = true, union_by_name = true)")
    return conn


STAGE_ORDER = ["ingest", "language", "repo_dedup", "repo_level", "exact_dedup", "near_dedup", "syntax", "quality",
               "repo_quality"]


def why(conn: duckdb.DuckDBPyConnection, needle: str) -> list[dict[str, Any]]:
    """Every lineage row of the records matching `needle` (an id, or a 'repo/path' substring).

    The ingest row's `detail` holds 'repo/path', so a path finds its id and then its fate in
    every stage, in pipeline order.
    """
    rows = conn.execute(
        f"""
        WITH hits AS (
            SELECT DISTINCT id, crawl FROM {LINEAGE_VIEW}
            WHERE id = $needle OR (stage = 'ingest' AND detail LIKE '%' || $needle || '%')
        )
        SELECT l.id, l.crawl, l.stage, l.decision, l.reason, l.survivor, l.cluster, l.detail, l.score, l.run_id
        FROM {LINEAGE_VIEW} l JOIN hits USING (id, crawl)
        ORDER BY l.crawl, l.id, list_position($stages, l.stage)
        """,
        {"needle": needle, "stages": STAGE_ORDER},
    ).fetchall()
    cols = ["id", "crawl", "stage", "decision", "reason", "survivor", "cluster", "detail", "score", "run_id"]
    return [dict(zip(cols, r)) for r in rows]


def where_from(conn: duckdb.DuckDBPyConnection, file_id: str) -> dict[str, Any] | None:
    """The crawl, repository and path a file id came from (from the ingest lineage row)."""
    row = conn.execute(f"SELECT crawl, detail FROM {LINEAGE_VIEW} WHERE stage = 'ingest' AND id = ?",
                       [file_id]).fetchone()
    return {"crawl": row[0], "repo_path": row[1]} if row else None


def balance(conn: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Per crawl and stage: rows in, kept, dropped, and records with more than one fate."""
    rows = conn.execute(f"""
        SELECT crawl, stage, count(*) AS rows_in,
               count(*) FILTER (WHERE decision = 'kept') AS kept,
               count(*) FILTER (WHERE decision = 'dropped') AS dropped,
               count(*) - count(DISTINCT id) AS multi_fate
        FROM {LINEAGE_VIEW} GROUP BY crawl, stage ORDER BY crawl, list_position($stages, stage)
    """, {"stages": STAGE_ORDER}).fetchall()
    cols = ["crawl", "stage", "rows_in", "kept", "dropped", "multi_fate"]
    return [dict(zip(cols, r)) for r in rows]


# stage -> the stage whose kept records are its input (file-level stages only).
STAGE_INPUT = {"language": "ingest", "repo_level": "language", "exact_dedup": "language",
               "near_dedup": "exact_dedup", "syntax": "near_dedup", "quality": "syntax", "repo_quality": "repo_level"}


def chain_violations(conn: duckdb.DuckDBPyConnection, crawl: str | None = None) -> list[str]:
    """Stages whose inputs do not equal the kept records of their upstream stage, or with multi-fate ids."""
    stats = {(r["crawl"], r["stage"]): r for r in balance(conn) if crawl is None or r["crawl"] == crawl}
    problems = [f"{c}/{s}: {r['multi_fate']} records with more than one fate"
                for (c, s), r in stats.items() if r["multi_fate"]]
    for (c, s), r in stats.items():
        up = STAGE_INPUT.get(s)
        if up and (c, up) in stats:
            upstream_kept = conn.execute(
                f"SELECT count(*) FROM {LINEAGE_VIEW} WHERE crawl = ? AND stage = ? AND decision = 'kept' "
                "AND NOT starts_with(id, 'manifest:')", [c, up]).fetchone()[0]
            if upstream_kept != r["rows_in"]:
                problems.append(f"{c}/{s}: {r['rows_in']} records in, but {up} kept {upstream_kept}")
    return problems
