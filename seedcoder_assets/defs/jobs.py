"""The jobs users launch, each the stages declared with it (core/pipeline.py): the GitHub branch as one
job per shard (ingest, code files) and one per crawl partition (dedup, syntax); the quality branch as three jobs, because the scorer is one model for all crawls
(unpartitioned) while labels and scores are per crawl; and the catalog refresh."""

import dagster as dg

from seedcoder_assets.core import pipeline
from seedcoder_assets.lib.stage_assets import job_selection


def _job(name: str):
    return dg.define_asset_job(name, selection=job_selection(name), description=pipeline.JOB_DESCRIPTIONS[name])


github_shards_job = _job(pipeline.SHARDS)
github_files_job = _job(pipeline.GITHUB)
oracle_labels_job = _job(pipeline.LABELS)
scorer_job = _job(pipeline.SCORER)
scoring_job = _job(pipeline.SCORING)
catalog_job = _job(pipeline.CATALOG)
