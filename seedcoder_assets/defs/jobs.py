"""The jobs users launch, each the stages declared with it (core/pipeline.py). A job runs one partition,
so the GitHub branch is three: per shard (ingest, code files), per crawl (dedup), per shard again (syntax);
the quality branch five: the label sample per crawl, labels per shard, the scorer (one model for every
crawl), scores per shard, and the corpora per crawl; then the catalog refresh."""

import dagster as dg

from seedcoder_assets.core import pipeline
from seedcoder_assets.lib.stage_assets import job_selection


def _job(name: str):
    return dg.define_asset_job(name, selection=job_selection(name), description=pipeline.JOB_DESCRIPTIONS[name])


github_shards_job = _job(pipeline.SHARDS)
github_files_job = _job(pipeline.GITHUB)
github_syntax_job = _job(pipeline.SYNTAX)
label_sample_job = _job(pipeline.SAMPLE)
oracle_labels_job = _job(pipeline.LABELS)
scorer_job = _job(pipeline.SCORER)
scoring_job = _job(pipeline.SCORING)
corpus_job = _job(pipeline.CORPUS)
catalog_job = _job(pipeline.CATALOG)
commits_job = _job(pipeline.COMMITS)
commits_dedup_job = _job(pipeline.COMMITS_DEDUP)
web_pages_job = _job(pipeline.WEB)
web_dedup_job = _job(pipeline.WEB_DEDUP)
web_label_sample_job = _job(pipeline.WEB_SAMPLE)
web_oracle_labels_job = _job(pipeline.WEB_LABELS)
web_recall_job = _job(pipeline.WEB_RECALL)
web_scoring_job = _job(pipeline.WEB_SCORING)
web_corpus_job = _job(pipeline.WEB_CORPUS_JOB)
hq_rounds_job = _job(pipeline.HQ_ROUNDS_JOB)
hq_corpus_job = _job(pipeline.HQ_CORPUS_JOB)
long_context_job = _job(pipeline.LONG_CONTEXT_JOB)
benchmark_index_job = _job(pipeline.INDEX_JOB)
decontam_job = _job(pipeline.DECONTAM_JOBS["github"])
commits_decontam_job = _job(pipeline.DECONTAM_JOBS["commits"])
web_decontam_job = _job(pipeline.DECONTAM_JOBS["web"])
phase_mixture_job = _job(pipeline.MIXTURE_JOB)
