"""Run the GitHub branch of one crawl partition in process, as the CLI and the automation do: the per-shard
job on every shard, the per-crawl job, then the per-shard syntax job. For tests that need the whole branch
as one result."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from seedcoder_assets.core import pipeline
from seedcoder_assets.partitions import job_partition_keys


@dataclass
class BranchResult:
    """Every run of the branch, read as one result."""

    results: list[dg.ExecuteInProcessResult] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return bool(self.results) and all(r.success for r in self.results)

    @property
    def all_events(self) -> list[Any]:
        return [e for r in self.results for e in r.all_events]

    def get_asset_check_evaluations(self) -> list[dg.AssetCheckEvaluation]:
        return [e for r in self.results for e in r.get_asset_check_evaluations()]

    def get_asset_materialization_events(self) -> list[Any]:
        return [e for r in self.results for e in r.get_asset_materialization_events()]

    def asset_materializations_for_node(self, node: str) -> list[dg.AssetMaterialization]:
        return [m for r in self.results if r.job_def.graph.has_node_named(node)
                for m in r.asset_materializations_for_node(node)]

    def __iter__(self) -> Iterator[dg.ExecuteInProcessResult]:
        return iter(self.results)


def run_github_branch(d: dg.Definitions, instance: dg.DagsterInstance, crawl: str,
                      jobs: tuple[str, ...] = (pipeline.SHARDS, pipeline.GITHUB, pipeline.SYNTAX), **kw: Any) -> BranchResult:
    """Each job on each of its partitions of `crawl`, in order; stops after a failed run (what follows would
    only fail after it). `kw` goes to `execute_in_process` (resources, raise_on_error, ...); each job gets
    the ops of `run_config` it has."""
    out = BranchResult()
    config = kw.pop("run_config", None) or {}
    for job in jobs:
        job_def = d.resolve_job_def(job)
        ops = {k: v for k, v in config.get("ops", {}).items() if job_def.graph.has_node_named(k)}  # its own ops
        for key in job_partition_keys(job, crawl):
            result = job_def.execute_in_process(instance=instance, partition_key=key,
                                                run_config={"ops": ops} if ops else None, **kw)
            out.results.append(result)
            if not result.success:
                return out
    return out
