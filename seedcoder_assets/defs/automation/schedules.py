"""Nightly backfills: every crawl partition that is missing or stale is rebuilt, one job at a time."""


import dagster as dg

from seedcoder_assets import settings
from seedcoder_assets.core.pipeline import COMMIT_SAMPLES, DEDUPED_COMMIT_SAMPLES, DEDUPED_WEB_PAGES, WEB_PAGES
from seedcoder_assets.defs.jobs import (
    commits_dedup_job,
    commits_job,
    corpus_job,
    github_files_job,
    github_shards_job,
    github_syntax_job,
    label_sample_job,
    oracle_labels_job,
    scoring_job,
    web_dedup_job,
    web_pages_job,
)
from seedcoder_assets.lib.backfill import crawl_states, plan_backfill, plan_shards_then_dedup
from seedcoder_assets.partitions import (
    COMMIT_CRAWL_PARTITIONS_NAME,
    CRAWL_PARTITIONS_NAME,
    WEB_DUMP_PARTITIONS_NAME,
    job_partition_keys,
)
from seedcoder_assets.resources.oracle import OracleResource


def _status() -> dg.DefaultScheduleStatus:
    return dg.DefaultScheduleStatus.RUNNING if settings.current().automation else dg.DefaultScheduleStatus.STOPPED


def _backfill_schedule(job, cron: str) -> dg.ScheduleDefinition:
    @dg.schedule(name=f"nightly_{job.name.removesuffix('_job')}_backfill", job=job, cron_schedule=cron,
                 execution_timezone="UTC", default_status=_status(),
                 description=f"Runs {job.name} for every crawl whose partitions are missing or stale.")
    def _schedule(context: dg.ScheduleEvaluationContext, oracle: OracleResource):
        crawls = context.instance.get_dynamic_partitions(CRAWL_PARTITIONS_NAME)
        states, scorer = crawl_states(context.instance, crawls)
        requests = [dg.RunRequest(run_key=f"{key}:{context.scheduled_execution_time:%Y%m%d}", partition_key=key,
                                  tags={"seedcoder/backfill_reason": why})
                    for name, crawl, why in plan_backfill(states, oracle.configured, scorer) if name == job.name
                    for key in job_partition_keys(job.name, crawl)]  # a per-shard job: each shard of the crawl
        return requests or dg.SkipReason(f"every crawl is up to date for {job.name}")

    return _schedule


# Staggered so each job sees the previous one's output; runs queue behind the `oracle`
# and `duckdb` pools, so a long night never overruns the oracle server or the catalog.
nightly_github_shards_backfill = _backfill_schedule(github_shards_job, "0 0 * * *")
nightly_github_files_backfill = _backfill_schedule(github_files_job, "0 1 * * *")
nightly_github_syntax_backfill = _backfill_schedule(github_syntax_job, "30 1 * * *")
nightly_label_sample_backfill = _backfill_schedule(label_sample_job, "30 2 * * *")
nightly_oracle_labels_backfill = _backfill_schedule(oracle_labels_job, "0 3 * * *")
nightly_scoring_backfill = _backfill_schedule(scoring_job, "0 6 * * *")
nightly_corpus_backfill = _backfill_schedule(corpus_job, "0 8 * * *")


def _shards_then_dedup_schedule(job, cron: str, partitions: str, per_shard: tuple[str, ...],
                                deduped: tuple[str, ...], shard_job: str, dedup_job: str, what: str):
    @dg.schedule(name=f"nightly_{job.name.removesuffix('_job')}_backfill", job=job, cron_schedule=cron,
                 execution_timezone="UTC", default_status=_status(),
                 description=f"Runs {job.name} for every {partitions} partition that is missing.")
    def _schedule(context: dg.ScheduleEvaluationContext):
        instance = context.instance
        plan = plan_shards_then_dedup(
            list(instance.get_dynamic_partitions(partitions)),
            set(instance.get_materialized_partitions(dg.AssetKey(list(per_shard)))),
            set(instance.get_materialized_partitions(dg.AssetKey(list(deduped)))), shard_job, dedup_job, what)
        requests = [dg.RunRequest(run_key=f"{key}:{context.scheduled_execution_time:%Y%m%d}", partition_key=key,
                                  tags={"seedcoder/backfill_reason": why})
                    for name, key, why in plan if name == job.name]
        return requests or dg.SkipReason(f"every {partitions} partition is up to date for {job.name}")

    return _schedule


def _commits(job, cron: str):
    return _shards_then_dedup_schedule(job, cron, COMMIT_CRAWL_PARTITIONS_NAME, COMMIT_SAMPLES, DEDUPED_COMMIT_SAMPLES,
                                       commits_job.name, commits_dedup_job.name, "commit samples")


def _web(job, cron: str):
    return _shards_then_dedup_schedule(job, cron, WEB_DUMP_PARTITIONS_NAME, WEB_PAGES, DEDUPED_WEB_PAGES,
                                       web_pages_job.name, web_dedup_job.name, "web pages")


nightly_commits_backfill = _commits(commits_job, "0 2 * * *")
nightly_commits_dedup_backfill = _commits(commits_dedup_job, "30 2 * * *")
nightly_web_pages_backfill = _web(web_pages_job, "0 4 * * *")
nightly_web_dedup_backfill = _web(web_dedup_job, "30 4 * * *")
