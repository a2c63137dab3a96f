"""Which engine the dedup joins fan out on, and how to reach it (no engine is imported until used)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from seedcoder_assets.core import object_store


@dataclass(frozen=True)
class EngineParams:
    rows_per_unit: int = 65_536  # records per unit (shard of the crawl's signatures)
    key_ranges: int = 64  # key ranges (hash buckets) of the candidate join


@dataclass(frozen=True)
class DaskEngine:
    """Where the fan-out runs: a Dask scheduler at `address` (a DaskCluster of the Dask Kubernetes operator,
    whose workers run this project's image), or, with no address, a local cluster of `workers` processes."""

    address: str = ""
    workers: int = 2
    threads_per_worker: int = 1
    memory_limit: str = "4GiB"  # per local worker; beyond it Dask spills, then pauses the worker
    params: EngineParams = field(default_factory=EngineParams)

    @contextmanager
    def session(self) -> Iterator[None]:
        """A client for the duration (the default scheduler of dask.compute), workers set up for S3."""
        from distributed import Client, LocalCluster

        cluster = None if self.address else LocalCluster(
            n_workers=self.workers, threads_per_worker=self.threads_per_worker, memory_limit=self.memory_limit,
            dashboard_address=None, processes=True)
        try:
            with Client(self.address or cluster) as client:
                if object_store.s3_in_use():  # workers resolve s3:// roots the way this process does
                    client.run(object_store.configure_s3, object_store.s3_settings())
                yield
        finally:
            if cluster is not None:
                cluster.close()
