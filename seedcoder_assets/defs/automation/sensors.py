"""New crawls register and run themselves; what follows a crawl's files is declared automation."""

import json

import dagster as dg

from seedcoder_assets import settings
from seedcoder_assets.core.ingest.landing import plan_tick
from seedcoder_assets.core.ingest.shards import plan_shards, save_plan
from seedcoder_assets.defs.jobs import commits_job, github_shards_job, web_pages_job
from seedcoder_assets.partitions import (
    commit_crawl_partitions,
    crawl_partitions,
    shard_keys,
    shard_partition,
    web_dump_partitions,
)
from seedcoder_assets.resources.storage import StorageResource


def default_status() -> dg.DefaultSensorStatus:
    """Off on a laptop (`dagster dev` must not start crawling by itself); the deployment turns it on."""
    return dg.DefaultSensorStatus.RUNNING if settings.current().automation else dg.DefaultSensorStatus.STOPPED


@dg.sensor(jobs=[github_shards_job], minimum_interval_seconds=60, default_status=default_status())
def new_crawl_sensor(context: dg.SensorEvaluationContext, storage: StorageResource) -> dg.SensorResult:
    """Registers each newly landed crawl (local folder or S3 prefix) as a partition, once, and runs its shards.

    The cursor remembers every decided crawl, so a tick lists the landing root and looks only at
    folders it has not decided; a malformed manifest is reported once (again only if it changes). A new
    crawl is cut into shards here (core/ingest/shards.py: one listing, no archive read; a landing over
    `shards x shard_bytes` becomes several crawl partitions), one run per shard; the crawl's dedup and
    syntax follow by their declared automation once every shard is in.
    """
    return _register_and_run(context, storage, "github", crawl_partitions, github_shards_job.name, "new_crawl")


@dg.sensor(jobs=[commits_job], minimum_interval_seconds=60, default_status=default_status())
def new_commit_crawl_sensor(context: dg.SensorEvaluationContext, storage: StorageResource) -> dg.SensorResult:
    """Registers each newly landed commit crawl (`git_repos.jsonl` plus bundles or bare mirrors, under the
    commits landing root) as a `commit_crawl` partition, cut into shards by repository bytes, and runs
    its shards, as the new-crawl sensor does for code crawls."""
    return _register_and_run(context, storage, "commits", commit_crawl_partitions, commits_job.name,
                             "new_commit_crawl")


@dg.sensor(jobs=[web_pages_job], minimum_interval_seconds=60, default_status=default_status())
def new_web_dump_sensor(context: dg.SensorEvaluationContext, storage: StorageResource) -> dg.SensorResult:
    """Registers each newly landed web dump (`warc.paths` plus its WARC files, under the web landing root) as
    a `web_dump` partition, cut into shards by WARC file bytes, and runs its shards; the dump's dedup
    follows by its declared automation once every shard is in."""
    return _register_and_run(context, storage, "web", web_dump_partitions, web_pages_job.name, "new_web_dump")


def _register_and_run(context: dg.SensorEvaluationContext, storage: StorageResource, source: str,
                      partitions: dg.DynamicPartitionsDefinition, job: str,
                      trigger: str) -> dg.SensorResult:
    """One tick for a source: decide the newly landed crawls, cut each into shards (the plan saved before its
    partitions exist, so a shard run always finds it), register its parts, request a run per shard."""
    registered = set(context.instance.get_dynamic_partitions(partitions.name))
    root = storage.landing_for(source)
    plan = plan_tick(root, json.loads(context.cursor) if context.cursor else {}, registered, source=source)
    for report in plan.reports:
        context.log.warning(report)
    cursor = json.dumps(plan.cursor, sort_keys=True)
    if not plan.register:
        return dg.SensorResult(skip_reason="; ".join(plan.reports) or f"no new {partitions.name} has landed",
                               cursor=cursor)
    s = settings.current()
    parts = []
    for crawl in plan.register:
        shard_plan = plan_shards(crawl, f"{root.rstrip('/')}/{crawl}", s.shards, s.shard_bytes, source=source)
        save_plan(storage.lake_root, shard_plan, source=source)
        parts += [p.key for p in shard_plan.parts if p.key not in registered]
    return dg.SensorResult(
        dynamic_partitions_requests=[partitions.build_add_request(parts)],
        run_requests=[dg.RunRequest(run_key=f"{part}|{shard}:{job}", partition_key=shard_partition(part, shard),
                                    tags={"seedcoder/trigger": trigger})
                      for part in parts for shard in shard_keys(s.shards)],
        cursor=cursor,
    )


# What used to be a hand-written follow-up sensor is declared on the assets (core/pipeline.py:
# `automation`): after a crawl's files, its label sample, its labels (with an oracle), its scores (once a
# scorer exists; a new scorer re-scores every crawl), its corpora and the catalog follow by themselves.
# This sensor evaluates those conditions; like the others it is off on a laptop.
seedcoder_automation = dg.AutomationConditionSensorDefinition(
    "seedcoder_automation", target=dg.AssetSelection.all(), default_status=default_status(),
    minimum_interval_seconds=60, description="Materializes what the declared automation conditions ask for.")
