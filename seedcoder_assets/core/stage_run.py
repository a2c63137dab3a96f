"""One stage on one partition: where its inputs and outputs live and what it may use. The Dagster assets
and the benchmarks build one of these and call a declared stage's `run` with it, so both run a stage the
same way."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import duckdb

from seedcoder_assets.core import paths
from seedcoder_assets.core.dedup.engine import DaskEngine
from seedcoder_assets.core.dedup.index import DedupIndex
from seedcoder_assets.core.object_store import duckdb_connect
from seedcoder_assets.core.parquet_io import clear_partition
from seedcoder_assets.core.stats import LineageWriter

SCRATCH = ("_scratch", "dedup")  # the dedup workers' temporary data, per partition (removed after the stage)


@dataclass(frozen=True)
class StageRun:
    lake: str
    partition: str
    run_id: str
    landing: str = ""
    index_root: str = ""  # default <lake>/_index
    prior: tuple[str, ...] = ()  # partitions registered before this one: what it is deduplicated against
    duckdb_memory: str = "1GB"
    duckdb_threads: int | None = None  # None: DuckDB's default (every core)
    temp_dir: str | None = None  # where DuckDB spills
    source: str = "github"  # which kind of partition `partition` is (github | commits | web)
    stage: str | None = None  # the lineage stage of the declared stage being run (set by pipeline.run)
    engine: DaskEngine | None = None  # where dedup joins fan out; None: in this process
    shard: str | None = None  # the shard of `partition` this run is (a per-shard stage), else None
    shards: tuple[str, ...] = ()  # every shard key of the crawl (the deployment's shard slots)
    shards_total: int = 1  # how many shard slots a crawl has (SEEDCODER_SHARDS)
    shard_bytes: int = 16_000_000_000  # most archive bytes per shard (SEEDCODER_SHARD_BYTES)
    sharded: frozenset[tuple[str, ...]] = frozenset()  # assets written per shard (set by pipeline.run)

    @contextmanager
    def engine_session(self) -> Iterator[None]:
        """The distributed engine's client for the duration (or nothing to set up); the workers' scratch
        folder of this partition (`<lake>/_scratch/dedup/<partition>`) is removed afterwards."""
        if self.engine is None:
            yield
            return
        try:
            with self.engine.session():
                yield
        finally:
            clear_partition(self.uri(SCRATCH))

    def uri(self, key: tuple[str, ...] | list[str], partition: str | None = None) -> str:
        """An asset's partition: this shard's folder when this run is a shard and the asset is written per
        shard, else the crawl's (of a per-shard asset: every shard, read as one)."""
        shard = self.shard if partition is None and tuple(key) in self.sharded else None
        return paths.partition_uri(self.lake, key, partition or self.partition, shard)

    def source_uri(self) -> str:
        """Where this partition landed (a crawl folder or prefix)."""
        return paths.crawl_uri(self.landing, self.partition)

    def lineage(self, stage: str | None = None) -> LineageWriter:
        """A writer of this stage's lineage rows (or of the named stage's)."""
        name = stage or self.stage
        if name is None:
            raise ValueError("no lineage stage: the declared stage writes none")
        return LineageWriter(self.lake, name, self.partition, self.run_id, self.source, self.shard)

    def index(self) -> DedupIndex:
        """What earlier partitions of the same source kept (each source its own index: partition keys of
        different sources may coincide)."""
        root = self.index_root or f"{self.lake.rstrip('/')}/_index"
        return DedupIndex(root if self.source == "github" else f"{root.rstrip('/')}/{self.source}")

    def conn(self) -> duckdb.DuckDBPyConnection:
        """DuckDB with a memory cap: group-bys and joins spill to disk instead of growing."""
        conn = duckdb_connect(memory_limit=self.duckdb_memory, temp_dir=self.temp_dir)
        if self.duckdb_threads:
            conn.execute(f"SET threads TO {int(self.duckdb_threads)}")
        return conn
