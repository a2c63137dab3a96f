"""DuckDB catalog over the lake: one view per asset, a `lineage` view, and the questions users ask."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.fs as pafs

from seedcoder_assets.core import pipeline
from seedcoder_assets.core.object_store import duckdb_connect, is_s3, resolve
from seedcoder_assets.core.parquet_io import SUCCESS_MARKER
from seedcoder_assets.core.paths import shard_folder
from seedcoder_assets.core.schemas import LINEAGE_SCHEMA

LINEAGE_VIEW = "lineage"


def _ident(name: str) -> str:
    """A quoted SQL identifier: folder names become view names whatever they contain."""
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _finished_parts(fs: pafs.FileSystem, folder: str, prefix: str, skip: frozenset[str] = frozenset()) -> list[str]:
    """Parquet parts of the finished partitions (with `_SUCCESS`) under `folder`, except the partition
    folders named in `skip`: a partition being rewritten, or left half-written by a killed run, is never
    read."""
    parts = []
    for partition in fs.get_file_info(pafs.FileSelector(folder)):
        if partition.type != pafs.FileType.Directory or partition.base_name in skip:
            continue
        inside = fs.get_file_info(pafs.FileSelector(partition.path))
        if any(i.base_name == SUCCESS_MARKER for i in inside):
            parts += sorted(prefix + i.path for i in inside if i.path.endswith(".parquet"))
        elif any(i.base_name.startswith(shard_folder("")) for i in inside):  # a crawl of shards: each finished shard
            parts += _finished_parts(fs, partition.path, prefix)
    return parts


def _asset_views(lake_root: str) -> list[tuple[str, list[str]]]:
    """(view name, parts) for every <group>/<asset> folder holding finished crawl partitions."""
    fs, root = resolve(lake_root)
    if fs.get_file_info(root).type == pafs.FileType.NotFound:
        return []
    out = []
    for group in fs.get_file_info(pafs.FileSelector(root)):
        if group.type != pafs.FileType.Directory or group.base_name in ("lineage",) or group.base_name.startswith("_"):
            continue
        for asset in fs.get_file_info(pafs.FileSelector(group.path)):
            if asset.type == pafs.FileType.Directory:
                parts = _finished_parts(fs, asset.path, _prefix(lake_root))
                if parts:
                    out.append((f"{group.base_name}_{asset.base_name}", parts))
    return sorted(out)


def _prefix(uri: str) -> str:
    return "s3://" if uri.startswith("s3://") else ""


def _view(conn: duckdb.DuckDBPyConnection, name: str, parts: list[str], schema: pa.Schema | None = None) -> None:
    """A view over Parquet parts; with `schema`, every column of it exists even if no part has it yet."""
    listed = ", ".join(_literal(p) for p in parts)
    sql = f"SELECT * FROM read_parquet([{listed}], hive_partitioning = true, union_by_name = true)"
    if schema is not None:
        types = {pa.string(): "VARCHAR", pa.float32(): "FLOAT"}
        empty = ", ".join(f"NULL::{types[f.type]} AS {_ident(f.name)}" for f in schema)
        sql = f"{sql} UNION ALL BY NAME SELECT {empty} WHERE false"
    conn.execute(f"CREATE OR REPLACE VIEW {_ident(name)} AS {sql}")


# Lineage stages were named apart from their assets before the stage framework. A lake written then is
# read under the new names; where a crawl has been re-materialized since, only its new folder is read.
LEGACY_STAGES = {"ingest": "raw_repo_files", "language": "code_files", "repo_dedup": "deduped_repos",
                 "repo_level": "repo_level_files", "exact_dedup": "exact_deduped_files",
                 "near_dedup": "near_deduped_files", "syntax": "syntax_checked_files", "quality": "quality_files",
                 "repo_quality": "repo_level_corpus"}


def _lineage_parts(fs: pafs.FileSystem, lake_root: str, root: str) -> list[str]:
    stages = {i.base_name.removeprefix("stage="): i.path for i in fs.get_file_info(pafs.FileSelector(f"{root}/lineage"))
              if i.type == pafs.FileType.Directory}
    parts = []
    for name, path in stages.items():
        newer = stages.get(LEGACY_STAGES.get(name, ""))
        superseded = frozenset(i.base_name for i in fs.get_file_info(pafs.FileSelector(newer))
                               if i.type == pafs.FileType.Directory) if newer else frozenset()
        parts += _finished_parts(fs, path, _prefix(lake_root), superseded)
    return parts


def open_catalog(database: str, lake_root: str) -> duckdb.DuckDBPyConnection:
    """Open (creating if needed) the catalog and (re)create its views over the current lake."""
    Path(database).parent.mkdir(parents=True, exist_ok=True)
    conn = duckdb_connect(database, s3=is_s3(lake_root))
    for name, parts in _asset_views(lake_root):
        _view(conn, name, parts)
    fs, root = resolve(lake_root)
    if fs.get_file_info(f"{root}/lineage").type == pafs.FileType.Directory:
        parts = _lineage_parts(fs, lake_root, root)
        if parts:
            _view(conn, f"{LINEAGE_VIEW}_parts", parts, LINEAGE_SCHEMA)
            legacy = " ".join(f"WHEN {_literal(old)} THEN {_literal(new)}" for old, new in LEGACY_STAGES.items())
            conn.execute(f"CREATE OR REPLACE VIEW {LINEAGE_VIEW} AS SELECT * REPLACE "
                         f"(CASE stage {legacy} ELSE stage END AS stage) FROM {LINEAGE_VIEW}_parts")
    return conn



def _ingest_stage() -> str:
    """The lineage stage whose rows hold each crawl record's repo/path (the ingest's)."""
    return pipeline.stage(pipeline.RAW_REPO_FILES).name


def why(conn: duckdb.DuckDBPyConnection, needle: str) -> list[dict[str, Any]]:
    """Every lineage row of the records matching `needle` (an id, or a 'repo/path' substring).

    The ingest row's `detail` holds 'repo/path', so a path finds its id and then its fate in
    every stage, in pipeline order. An output of a merge or transform (an `output_id`) is followed
    back to every record that went into it, and theirs to the crawl records they came from.
    """
    rows = conn.execute(
        f"""
        WITH RECURSIVE hits(id, crawl) AS (
            SELECT DISTINCT id, crawl FROM {LINEAGE_VIEW}
            WHERE id = $needle OR (stage = $ingest AND detail LIKE '%' || $needle || '%')
            UNION
            SELECT DISTINCT l.id, l.crawl FROM {LINEAGE_VIEW} l JOIN hits h
                ON l.output_id = h.id AND l.crawl = h.crawl AND l.id <> h.id
        )
        SELECT l.id, l.crawl, l.stage, l.decision, l.reason, l.survivor, l.cluster, l.detail, l.score, l.run_id,
               l.output_id
        FROM {LINEAGE_VIEW} l JOIN hits USING (id, crawl)
        ORDER BY l.crawl, l.id, list_position($stages, l.stage)
        """,
        {"needle": needle, "stages": pipeline.lineage_order(), "ingest": _ingest_stage()},
    ).fetchall()
    cols = ["id", "crawl", "stage", "decision", "reason", "survivor", "cluster", "detail", "score", "run_id",
            "output_id"]
    return [dict(zip(cols, r)) for r in rows]


def where_from(conn: duckdb.DuckDBPyConnection, file_id: str) -> dict[str, Any] | None:
    """The crawl, repository and path a file id came from (from the ingest lineage row)."""
    row = conn.execute(f"SELECT crawl, detail FROM {LINEAGE_VIEW} WHERE stage = ? AND id = ?",
                       [_ingest_stage(), file_id]).fetchone()
    return {"crawl": row[0], "repo_path": row[1]} if row else None


def balance(conn: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Per crawl and stage: rows in, kept, dropped, and records with more than one fate."""
    rows = conn.execute(f"""
        SELECT crawl, stage, count(*) AS rows_in,
               count(*) FILTER (WHERE decision = 'kept') AS kept,
               count(*) FILTER (WHERE decision = 'dropped') AS dropped,
               count(*) - count(DISTINCT id) AS multi_fate
        FROM {LINEAGE_VIEW} GROUP BY crawl, stage ORDER BY crawl, list_position($stages, stage)
    """, {"stages": pipeline.lineage_order()}).fetchall()
    cols = ["crawl", "stage", "rows_in", "kept", "dropped", "multi_fate"]
    return [dict(zip(cols, r)) for r in rows]


def chain_violations(conn: duckdb.DuckDBPyConnection, crawl: str | None = None) -> list[str]:
    """Stages whose inputs do not equal the kept records of their upstream stage, or with multi-fate ids."""
    stats = {(r["crawl"], r["stage"]): r for r in balance(conn) if crawl is None or r["crawl"] == crawl}
    problems = [f"{c}/{s}: {r['multi_fate']} records with more than one fate"
                for (c, s), r in stats.items() if r["multi_fate"]]
    inputs = pipeline.lineage_inputs()  # stage -> the stage whose kept records are its records
    for (c, s), r in stats.items():
        up = inputs.get(s)
        if up and (c, up) in stats:
            # What the upstream stage wrote: its kept records, a merge's inputs counted once per output.
            upstream_kept = conn.execute(
                f"SELECT count(*) FILTER (WHERE output_id IS NULL) + count(DISTINCT output_id) FROM {LINEAGE_VIEW} "
                "WHERE crawl = ? AND stage = ? AND decision = 'kept' AND NOT starts_with(id, 'manifest:')",
                [c, up]).fetchone()[0]
            if upstream_kept != r["rows_in"]:
                problems.append(f"{c}/{s}: {r['rows_in']} records in, but {up} kept {upstream_kept}")
    return problems
