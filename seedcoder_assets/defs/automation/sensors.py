"""New crawls register and run themselves; each finished run requests the next step for its crawl."""

import json

import dagster as dg

from seedcoder_assets import settings
from seedcoder_assets.core.ingest.landing import plan_tick
from seedcoder_assets.core.pipeline import QUALITY_SCORER
from seedcoder_assets.defs.jobs import catalog_job, github_files_job, oracle_labels_job, scoring_job
from seedcoder_assets.partitions import CRAWL_PARTITIONS_NAME, crawl_partitions
from seedcoder_assets.resources.oracle import OracleResource
from seedcoder_assets.resources.storage import StorageResource


def default_status() -> dg.DefaultSensorStatus:
    """Off on a laptop (`dagster dev` must not start crawling by itself); the deployment turns it on."""
    return dg.DefaultSensorStatus.RUNNING if settings.current().automation else dg.DefaultSensorStatus.STOPPED


@dg.sensor(jobs=[github_files_job], minimum_interval_seconds=60, default_status=default_status())
def new_crawl_sensor(context: dg.SensorEvaluationContext, storage: StorageResource) -> dg.SensorResult:
    """Registers each newly landed crawl (local folder or S3 prefix) as a partition, once, and runs it.

    The cursor remembers every decided crawl, so a tick lists the landing root and looks only at
    folders it has not decided; a malformed manifest is reported once (again only if it changes).
    """
    registered = set(context.instance.get_dynamic_partitions(CRAWL_PARTITIONS_NAME))
    plan = plan_tick(storage.landing_root, json.loads(context.cursor) if context.cursor else {}, registered)
    for report in plan.reports:
        context.log.warning(report)
    cursor = json.dumps(plan.cursor, sort_keys=True)
    if not plan.register:
        return dg.SensorResult(skip_reason="; ".join(plan.reports) or "no new crawl has landed", cursor=cursor)
    return dg.SensorResult(
        dynamic_partitions_requests=[crawl_partitions.build_add_request(plan.register)],
        run_requests=[dg.RunRequest(run_key=f"{crawl}:{github_files_job.name}", partition_key=crawl,
                                    tags={"seedcoder/trigger": "new_crawl"}) for crawl in plan.register],
        cursor=cursor,
    )


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS, monitored_jobs=[github_files_job, scoring_job],
    request_jobs=[catalog_job, oracle_labels_job, scoring_job], default_status=default_status(),
)
def crawl_followup_sensor(context: dg.RunStatusSensorContext, oracle: OracleResource):
    """After a crawl's files: refresh the catalog, ask the oracle (if configured), score (if a scorer
    exists). After scoring: refresh the catalog. The scorer itself is retrained on purpose, not here."""
    run = context.dagster_run
    crawl = run.tags.get("dagster/partition")
    if not crawl:
        return dg.SkipReason(f"run {run.run_id} has no crawl partition")
    requests = [dg.RunRequest(run_key=f"{run.run_id}:catalog", job_name=catalog_job.name)]
    if run.job_name == github_files_job.name:
        if oracle.configured:
            requests.append(dg.RunRequest(run_key=f"{run.run_id}:labels", job_name=oracle_labels_job.name,
                                          partition_key=crawl))
        if context.instance.get_latest_materialization_event(dg.AssetKey(list(QUALITY_SCORER))):
            requests.append(dg.RunRequest(run_key=f"{run.run_id}:scores", job_name=scoring_job.name,
                                          partition_key=crawl))
    return requests
