"""File-level exact dedup by SHA256, within the crawl and against earlier crawls."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from seedcoder_assets.core.dedup.index import DedupIndex
from seedcoder_assets.core.dedup.survivor import SurvivorOrder
from seedcoder_assets.core.object_store import duckdb_connect
from seedcoder_assets.core.parquet_io import PartWriter, duckdb_source, iter_batches, shard_pairs
from seedcoder_assets.core.schemas import FILE_SCHEMA
from seedcoder_assets.core.stats import LineageWriter, StageStats


def connect(memory_limit: str = "1GB", temp_dir: str | None = None) -> duckdb.DuckDBPyConnection:
    """DuckDB with a memory cap: group-bys and joins spill to disk instead of growing."""
    return duckdb_connect(memory_limit=memory_limit, temp_dir=temp_dir)


DECISION_SCHEMA = pa.schema([("id", pa.string()), ("sha256", pa.string()), ("size", pa.int64()),
                             ("first_id", pa.string()), ("prior_crawl", pa.string()), ("prior_id", pa.string())])


def decide_sql(rule: SurvivorOrder, files: str, repos: str, prior: str) -> str:
    """Per file: the first id of its SHA256 group in survivor order (ties: the smaller id, so the answer
    never depends on the order rows arrive in), and the earlier crawl's survivor if any.

    `files` (id, sha256, size, repo, path), `repos` (repo, stars, pushed_at) and `prior` (sha256,
    prior_crawl, prior_id) are relations; the in-process and the distributed decisions both run this.
    """
    return f"""
        SELECT m.id, m.sha256, m.size,
               first_value(m.id) OVER (PARTITION BY m.sha256 ORDER BY {rule.order_by()}, m.id) AS first_id,
               p.prior_crawl, p.prior_id
        FROM (SELECT f.id, f.sha256, f.size, f.repo, f.path, r.stars, r.pushed_at FROM {files} f
              LEFT JOIN (SELECT repo, stars, pushed_at FROM {repos}) r USING (repo)) m
        LEFT JOIN {prior} p USING (sha256)
    """


def prior_table(known: dict[str, tuple[str, str]]) -> pa.Table:
    return pa.table({"sha256": list(known), "prior_crawl": [c for c, _ in known.values()],
                     "prior_id": [i for _, i in known.values()]},
                    schema=pa.schema([("sha256", pa.string()), ("prior_crawl", pa.string()), ("prior_id", pa.string())]))


def local_decisions(files_uri: str, repos_uri: str, index: DedupIndex, prior_crawls: Sequence[str],
                    rule: SurvivorOrder, conn: duckdb.DuckDBPyConnection) -> None:
    """The `decisions` table in `conn`, decided in this process (DuckDB; the crawl's hashes against each
    earlier crawl's kept hashes)."""
    conn.execute(f"CREATE OR REPLACE TEMP VIEW files AS SELECT * FROM {duckdb_source(files_uri)}")
    conn.execute(f"CREATE OR REPLACE TEMP VIEW repos AS SELECT * FROM {duckdb_source(repos_uri)}")
    known: dict[str, tuple[str, str]] = {}
    if prior_crawls:
        hashes = conn.execute("SELECT DISTINCT sha256 FROM files").fetch_arrow_table()["sha256"]
        known = index.known_hashes("file_hashes", hashes.combine_chunks(), prior_crawls)
    conn.register("prior", prior_table(known))
    conn.execute(f"CREATE OR REPLACE TEMP TABLE decisions AS {decide_sql(rule, 'files', 'repos', 'prior')}")
    conn.unregister("prior")
    conn.execute("DROP VIEW files; DROP VIEW repos")


def exact_dedup(files_uri: str, repos_uri: str, dst_uri: str, lineage: LineageWriter, index: DedupIndex,
                prior_crawls: Sequence[str], rule: SurvivorOrder, conn: duckdb.DuckDBPyConnection,
                decisions: Callable[[duckdb.DuckDBPyConnection], None] | None = None) -> StageStats:
    """Keep one file per SHA256: the survivor by `rule`, unless an earlier crawl already kept it.

    Dropped: `exact_dup` (survivor in this crawl), `exact_dup_prior_crawl` (survivor in an
    earlier crawl; earlier outputs are never rewritten). The crawl's kept hashes are indexed.

    Args:
        decisions: fills the `decisions` table (DECISION_SCHEMA) in `conn`; None: `local_decisions`.
            core/dedup/distributed.py decides per hash range on Dask, with the same result.
    """
    index.require("file_hashes", prior_crawls)
    if decisions is None:
        local_decisions(files_uri, repos_uri, index, prior_crawls, rule, conn)
    else:
        decisions(conn)
    reader = conn.execute("SELECT id, sha256, size, first_id, prior_crawl, prior_id FROM decisions ORDER BY id") \
        .fetch_record_batch(8192)
    for batch in reader:
        for id_, sha, size, first_id, prior_crawl, prior_id in zip(*(c.to_pylist() for c in batch.columns)):
            if prior_id is not None:
                lineage.dropped(id_, "exact_dup_prior_crawl", size, cluster=sha, survivor=prior_id,
                                detail=prior_crawl)
            elif id_ != first_id:
                lineage.dropped(id_, "exact_dup", size, cluster=sha, survivor=first_id)
            else:
                lineage.kept(id_, size, cluster=sha, survivor=id_)
    # DuckDB decides (group-by on hashes only); the content itself streams through our bounded reader.
    kept_ids = conn.execute("SELECT id FROM decisions WHERE prior_id IS NULL AND id = first_id") \
        .fetch_arrow_table().column("id").combine_chunks()
    for src, dst in shard_pairs(files_uri, dst_uri):  # each shard's survivors stay in their shard
        with PartWriter(dst, FILE_SCHEMA) as out:
            for batch in iter_batches(src, batch_rows=1024):
                out.write_table(batch.filter(pc.is_in(batch.column("id"), value_set=kept_ids)))
    kept = conn.execute("SELECT sha256, id FROM decisions WHERE prior_id IS NULL AND id = first_id").fetch_arrow_table()
    index.write_hashes("file_hashes", lineage.crawl, kept["sha256"].combine_chunks(), kept["id"].combine_chunks())
    sizes = dict(conn.execute("SELECT n, count(*) FROM (SELECT count(*) AS n FROM decisions GROUP BY sha256 "
                              "HAVING count(*) > 1) GROUP BY n ORDER BY n").fetchall())
    conn.execute("DROP TABLE decisions")
    stats = lineage.close()
    stats.extra["cluster_sizes"] = {int(k): int(v) for k, v in sizes.items()}
    return stats
