"""Which engine the dedup joins fan out on, and how to reach it (no engine is imported until used)."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from seedcoder_assets.core import object_store


@dataclass(frozen=True)
class EngineParams:
    rows_per_unit: int = 65_536  # records per unit (a shard of a crawl's partition)
    key_ranges: int = 64  # hash ranges (buckets) of the joins, at least
    entries_per_range: int = 4_000_000  # more ranges when a range would hold more (band keys or files)

    def ranges_for(self, entries: int) -> int:
        """How many ranges `entries` rows are cut into: a range task's memory stays bounded as crawls grow."""
        return max(self.key_ranges, -(-entries // self.entries_per_range))


def code_fingerprint() -> str:
    """A hash of the dedup code: workers must run the code the step runs (an image from another release
    would decide differently without an error)."""
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(here.glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


class EngineMismatch(RuntimeError):
    """The Dask workers run other dedup code than the step."""


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
        """A client for the duration (the default scheduler of dask.compute), its workers checked and set up."""
        from distributed import Client, LocalCluster

        from seedcoder_assets.core.dedup.dask_plugins import S3Setup

        cluster = None if self.address else LocalCluster(
            n_workers=self.workers, threads_per_worker=self.threads_per_worker, memory_limit=self.memory_limit,
            dashboard_address=None, processes=True)
        try:
            with Client(self.address or cluster) as client:
                theirs = set(client.run(code_fingerprint).values())
                if theirs - {code_fingerprint()}:
                    raise EngineMismatch(f"the Dask workers at {self.address or 'the local cluster'} run other dedup "
                                         "code than this step: deploy the same image to both")
                if object_store.s3_in_use():
                    client.register_plugin(S3Setup(self._s3_for_workers()), name="seedcoder-s3")
                yield
        finally:
            if cluster is not None:
                cluster.close()

    def _s3_for_workers(self) -> object_store.S3Settings:
        """The step's endpoint and region; its credentials only to local workers (same machine, same user):
        a remote cluster's workers use their own (the DaskCluster's service account), never keys sent over
        the scheduler's connection."""
        settings = object_store.s3_settings()
        if self.address:
            return dataclasses.replace(settings, access_key=None, secret_key=None, session_token=None)
        return settings

