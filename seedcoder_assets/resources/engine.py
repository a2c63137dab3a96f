"""Where the dedup joins run: in the step's own process (the laptop default) or on Dask."""

from __future__ import annotations

from typing import Literal

import dagster as dg
from pydantic import Field

from seedcoder_assets.core.dedup.engine import DaskEngine, EngineParams


class DedupEngineResource(dg.ConfigurableResource):
    """`dask` fans exact dedup's decisions (per hash range) and near dedup's candidate join and exact checks (per
    shard and key range) out (core/dedup/distributed.py) on the scheduler at `dask_address` (in Kubernetes: a
    DaskCluster of the Dask operator running this project's image), or on a local cluster of `dask_workers`
    processes when no address is given. The decisions are the same as in process."""

    engine: Literal["in-process", "dask"] = Field("in-process", description="in-process | dask")
    dask_address: str = Field("", description="tcp://scheduler:8786; empty = a local cluster per step")
    dask_workers: int = Field(2, description="Processes of the local cluster")
    rows_per_unit: int = Field(EngineParams.rows_per_unit, description="Records per shard of a crawl's signatures")
    key_ranges: int = Field(EngineParams.key_ranges, description="Hash ranges (buckets) of the joins, at least "
                                                                 "(more as crawls grow: 4M entries per range at most)")

    def spec(self) -> DaskEngine | None:
        if self.engine == "in-process":
            return None
        return DaskEngine(address=self.dask_address, workers=self.dask_workers,
                          params=EngineParams(rows_per_unit=self.rows_per_unit, key_ranges=self.key_ranges))
