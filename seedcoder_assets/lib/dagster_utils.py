"""Small helpers shared by the Dagster wrappers (kept outside defs/ so autoloading skips them)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg

from seedcoder_assets import settings
from seedcoder_assets.core import pipeline
from seedcoder_assets.core.checks import CheckOutcome, lineage_reconciles
from seedcoder_assets.core.dedup.index import PriorCrawlsNotIndexed
from seedcoder_assets.core.quality.labels import LabelRun
from seedcoder_assets.core.stage_run import StageRun
from seedcoder_assets.core.stats import StageStats
from seedcoder_assets.lib.plots import bar_chart_markdown  # stats_metadata draws drop reasons
from seedcoder_assets.partitions import CRAWL_DIM, CRAWL_PARTITIONS_NAME, shard_keys, split_key
from seedcoder_assets.resources.engine import DedupEngineResource
from seedcoder_assets.resources.storage import StorageResource


def prior_crawls(context: dg.AssetExecutionContext) -> list[str]:
    """Partitions of the same source registered before this one: what it is deduplicated against."""
    partitions = context.assets_def.partitions_def
    if isinstance(partitions, dg.MultiPartitionsDefinition):
        partitions = partitions.get_partitions_def_for_dimension(CRAWL_DIM)
    name = partitions.name if isinstance(partitions, dg.DynamicPartitionsDefinition) else CRAWL_PARTITIONS_NAME
    keys = list(context.instance.get_dynamic_partitions(name))
    crawl, _ = split_key(context.partition_key)
    return keys[: keys.index(crawl)] if crawl in keys else keys


@contextmanager
def earlier_crawls_indexed(context: dg.AssetExecutionContext, wait_s: float = 60.0,
                           max_waits: int = 120) -> Iterator[None]:
    """Dedup of crawl k needs the entries of every crawl registered before it.

    If an earlier crawl's run is in progress (the sensor starts crawls in any order), the step asks
    Dagster to retry it later; if none is, it fails at once and says which crawls to materialize
    first. Either way the duplicates of those crawls never survive unseen.
    """
    try:
        yield
    except PriorCrawlsNotIndexed as exc:
        raise wait_or_fail(context.instance, context.run.run_id, exc, wait_s, max_waits) from exc


def wait_or_fail(instance: dg.DagsterInstance, own_run_id: str, exc: PriorCrawlsNotIndexed, wait_s: float = 60.0,
                 max_waits: int = 120) -> Exception:
    """RetryRequested while a missing earlier crawl has a run in progress, else a Failure.

    Only a run that has started counts: waiting on a queued one could hold every run slot while the
    run it waits for can never start. A crawl that fails this way is rebuilt by the nightly backfill,
    which runs crawls in registration order.
    """
    in_flight = instance.get_run_records(dg.RunsFilter(
        statuses=[dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]))
    busy = sorted({r.dagster_run.tags.get("dagster/partition") for r in in_flight
                   if r.dagster_run.run_id != own_run_id} & set(exc.missing))
    if busy:
        return dg.RetryRequested(max_retries=max_waits, seconds_to_wait=wait_s)
    return dg.Failure(description=str(exc), metadata={"earlier_crawls_missing": exc.missing})


def stage_run(context: dg.AssetExecutionContext, storage: StorageResource,
              engine: DedupEngineResource | None = None, source: str = "github") -> StageRun:
    """This step's partition, run and storage (and dedup engine), for a declared stage's `run`."""
    crawl, shard = split_key(context.partition_key)
    s = settings.current()
    return StageRun(storage.lake_root, crawl, context.run.run_id, storage.landing_for(source),
                    storage.index_root, tuple(prior_crawls(context)), storage.duckdb_memory_limit,
                    temp_dir=storage.temp_dir(), engine=engine.spec() if engine is not None else None,
                    shard=shard, shards=tuple(shard_keys(s.shards)), shards_total=s.shards, shard_bytes=s.shard_bytes,
                    sharded=pipeline.stored_per_shard())


def run_declared(context: dg.AssetExecutionContext, storage: StorageResource, asset: pipeline.Key,
                 params: Any = None, engine: DedupEngineResource | None = None) -> tuple[StageStats, str]:
    """Run the declared stage that writes `asset` on this partition: (its figures, the asset's URI)."""
    run = stage_run(context, storage, engine, pipeline.stage(asset).source)
    with earlier_crawls_indexed(context):
        stats = pipeline.run(pipeline.stage(asset), run, params)
    return stats, run.uri(asset)


def stats_metadata(stats: StageStats, uri: str) -> dict[str, Any]:
    """MaterializeResult metadata: counts, bytes, drop reasons as JSON, time, where the data is."""
    md: dict[str, Any] = {}
    for key, value in stats.as_metadata().items():
        md[key] = dg.MetadataValue.json(value) if isinstance(value, (dict, list)) else value
    md["dagster/row_count"] = stats.rows_out
    md["uri"] = dg.MetadataValue.path(uri)
    if stats.drops:
        md["drop_reasons_chart"] = bar_chart_markdown(f"{stats.stage}: drop reasons", stats.drops, "reason")
    return {k: v for k, v in md.items() if v is not None}


def check_result(name: str, outcome: CheckOutcome, asset_key: dg.AssetKey | None = None) -> dg.AssetCheckResult:
    """A core check's verdict as a Dagster check result (figures as metadata)."""
    md = {k: dg.MetadataValue.json(v) if isinstance(v, (dict, list)) else v for k, v in outcome.metadata.items()}
    return dg.AssetCheckResult(check_name=name, asset_key=asset_key, passed=bool(outcome.passed), metadata=md)


def reconciles_check(storage: StorageResource, asset: pipeline.Key, crawl: str, output_uri: str | None,
                     input_uri: str | None = None, asset_key: dg.AssetKey | None = None, shard: str | None = None,
                     **sql: str) -> dg.AssetCheckResult:
    """`lineage_reconciles`: the lineage of the stage writing `asset` (on one crawl, or one shard of it)
    against its input and output partitions, by id."""
    outcome = lineage_reconciles(storage.lineage_uri(pipeline.stage(asset).lineage_stage, crawl, shard), output_uri,
                                 input_uri, memory_limit=storage.duckdb_memory_limit, **sql)
    return check_result("lineage_reconciles", outcome, asset_key)


def oracle_step_result(run: LabelRun, model: str, prompt_version: str, ratings: dict[int, int],
                       check: dg.AssetCheckResult, metadata: dict[str, Any]) -> dg.MaterializeResult:
    """How every oracle step ends (file labels, web labels, web scores): the client's figures next to the
    step's own metadata, and, when the oracle dropped out mid-run, a failure that keeps what was answered
    (cache and partition are written) and says how to resume."""
    metadata = {
        **metadata, "oracle_model": model, "prompt_version": prompt_version,
        "statuses": dg.MetadataValue.json(dict(run.statuses)), "cached": run.cached, "asked": run.asked,
        "retries": run.oracle.retries, "truncated": run.truncated,
        "requests_per_s": round(run.oracle.requests_per_s, 2), "oracle_seconds": round(run.oracle.seconds, 2),
        "completion_tokens": run.oracle.completion_tokens,
        "ratings": bar_chart_markdown("oracle ratings", {r: ratings.get(r, 0) for r in range(11)}, "rating")}
    if run.oracle.aborted:
        raise dg.Failure(description=f"Oracle unreachable mid-run ({run.oracle.aborted}). {run.cached + run.asked} "
                                     "answers are cached; re-materialize to resume.", metadata=metadata)
    return dg.MaterializeResult(metadata=metadata, check_results=[check])
