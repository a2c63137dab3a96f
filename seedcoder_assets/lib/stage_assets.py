"""Dagster assets from the stage declarations (core/pipeline.py): one place that turns a declaration
into a key, a group, deps, partitions, a code version, pools and Kubernetes tags; and, for a filter
stage, into the whole asset: run the stage, write lineage, report metadata and run its checks."""


from typing import Any

import dagster as dg

from seedcoder_assets import settings
from seedcoder_assets.core import pipeline
from seedcoder_assets.core.pipeline import FilterStage, Key, Stage
from seedcoder_assets.lib.dagster_utils import check_result, reconciles_check, run_declared, stats_metadata
from seedcoder_assets.lib.k8s import cpu_step_tags, gpu_step_tags
from seedcoder_assets.lib.plots import bar_chart_markdown
from seedcoder_assets.partitions import BY_SOURCE, sharded, split_key
from seedcoder_assets.resources.storage import StorageResource

JOB_TAG = "seedcoder/job"  # the job a stage is declared with: jobs select their assets by it


def key(asset: Key) -> dg.AssetKey:
    return dg.AssetKey(list(asset))


def op_tags(stage: Stage) -> dict[str, Any] | None:
    """Pod size and placement under the Kubernetes executor (read when the definitions load)."""
    return {"cpu": cpu_step_tags, "gpu": gpu_step_tags}[stage.compute]() if stage.compute != "light" else None


def automation_condition(stage: Stage) -> dg.AutomationCondition | None:
    """The declared automation as Dagster's conditions. Whether an oracle is configured is a deployment
    fact, not an asset's state, so it is read when the definitions load."""
    ac = dg.AutomationCondition
    if stage.automation == "on_any_update":  # the catalog reads finished partitions only: never wait
        return (ac.any_deps_updated().since_last_handled() & ~ac.in_progress()).with_label("on any update")
    if stage.automation is None:
        return None
    if stage.automation == "on_new_data_with_oracle":
        s = settings.current()
        if not (s.oracle_url and s.oracle_model):
            return None
    # Dagster's eager(), but an input whose data version names its content (the scorer) counts as new only
    # when that version changed: a scorer trained again from the same labels re-scores nothing.
    versioned = dg.AssetSelection.assets(*(key(s.asset) for s in pipeline.STAGES if s.data_versioned))
    new_data = (ac.newly_missing() | ac.any_deps_updated().ignore(versioned)
                | ac.any_deps_match(ac.data_version_changed()).allow(versioned))
    return (ac.in_latest_time_window() & new_data.since_last_handled() & ~ac.any_deps_missing()
            & ~ac.any_deps_in_progress() & ~ac.in_progress()).with_label("on new data")


def partitions_of(stage: Stage) -> dg.PartitionsDefinition | None:
    """Its source's partitions, or crawl x shard for a per-shard stage, or none."""
    if not stage.partitioned:
        return None
    return sharded(BY_SOURCE[stage.source]) if stage.sharded else BY_SOURCE[stage.source]


def asset_kwargs(asset: Key, **extra: Any) -> dict[str, Any]:
    """`@dg.asset` arguments from the declaration of the stage writing `asset` (`extra` adds or overrides)."""
    s = pipeline.stage(asset)
    kwargs: dict[str, Any] = {
        "key": key(asset), "group_name": s.group, "deps": [key(r) for r in s.reads],
        "code_version": s.code_version, "op_tags": op_tags(s), "pool": s.pool,
        "partitions_def": partitions_of(s), "tags": {JOB_TAG: s.job},
        "automation_condition": automation_condition(s),
    }
    if s.description:
        kwargs["description"] = s.description
    return {**kwargs, **extra}


def spec(asset: Key, **extra: Any) -> dg.AssetSpec:
    """An `AssetSpec` for one output of a multi-asset stage (tags and partitions go on the multi-asset)."""
    s = pipeline.stage(asset)
    return dg.AssetSpec(key(asset), **{"group_name": s.group, "deps": [key(r) for r in s.reads],
                                       "code_version": s.code_version, "tags": {JOB_TAG: s.job},
                                       "automation_condition": automation_condition(s), **extra})


def filter_asset(stage: FilterStage) -> dg.AssetsDefinition:
    """The asset of a filter stage: the runner over its first input, its lineage checked, its own checks run."""
    source = stage.reads[0]
    check_specs = [dg.AssetCheckSpec("lineage_reconciles", asset=key(stage.asset),
                                     description="the lineage against the input and output partitions, by id")]
    check_specs += [dg.AssetCheckSpec(c.name, asset=key(stage.asset), description=c.description or None)
                    for c in stage.checks]

    @dg.asset(check_specs=check_specs, **asset_kwargs(stage.asset))
    def _filter(context: dg.AssetExecutionContext, storage: StorageResource) -> dg.MaterializeResult:
        crawl, shard = split_key(context.partition_key)
        stats, dst = run_declared(context, storage, stage.asset)
        src = storage.uri(source, crawl, shard if pipeline.stage(source).sharded else None)
        metadata = stats_metadata(stats, dst)
        if stats.languages:
            metadata["languages"] = bar_chart_markdown(f"{stage.name} per language", dict(stats.languages), "language")
        return dg.MaterializeResult(metadata=metadata, check_results=[
            reconciles_check(storage, stage.asset, crawl, dst, src, shard=shard),
            *(check_result(c.name, c.measure(dst, src)) for c in stage.checks)])

    return _filter


def filter_assets() -> list[dg.AssetsDefinition]:
    """Every declared filter stage as an asset (read when the code location loads, which fails with what
    is wrong if a declaration cannot be wired)."""
    pipeline.check_declarations()
    return [filter_asset(s) for s in pipeline.filter_stages()]


def job_selection(job: str) -> dg.AssetSelection:
    """The assets declared with `job`, resolved when the definitions load (a new declaration joins its job)."""
    return dg.AssetSelection.tag(JOB_TAG, job)
