"""The commits corpus (paper 2.2.2): commit crawls in, repositories selected, commits to code-change
samples, per shard of a crawl. The stages are declared in core/pipeline.py; these wrappers add their
metadata and their checks (core/commits/checks.py: measured with git itself and DuckDB)."""

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from seedcoder_assets import settings
from seedcoder_assets.core import pipeline
from seedcoder_assets.core.commits.checks import (
    commits_accounted,
    no_merge_or_bot_left,
    no_same_change_left,
    sample_lengths,
    samples_within_budget,
    targets_apply,
)
from seedcoder_assets.core.commits.corpus import local_repository
from seedcoder_assets.core.parquet_io import read_table
from seedcoder_assets.core.pipeline import COMMIT_REPOS, COMMIT_SAMPLES, DEDUPED_COMMIT_SAMPLES
from seedcoder_assets.defs.configs import CommitRepoConfig, CommitSampleConfig, DedupConfig
from seedcoder_assets.lib.dagster_utils import check_result, reconciles_check, run_declared, stage_run, stats_metadata
from seedcoder_assets.lib.plots import bar_chart_markdown, histogram_markdown
from seedcoder_assets.lib.stage_assets import asset_kwargs, key
from seedcoder_assets.partitions import split_key
from seedcoder_assets.resources.storage import StorageResource


def _check(name: str, description: str, asset: pipeline.Key) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(name, asset=key(asset), description=description)


@dg.asset(**asset_kwargs(COMMIT_REPOS), check_specs=[
    _check("lineage_reconciles", "every manifest entry has one fate; the kept ones are exactly the output", COMMIT_REPOS)])
def commit_repos(context: dg.AssetExecutionContext, config: CommitRepoConfig,
                 storage: StorageResource) -> dg.MaterializeResult:
    crawl, shard = split_key(context.partition_key)
    stats, dst = run_declared(context, storage, COMMIT_REPOS, config.to_params())
    return dg.MaterializeResult(metadata=stats_metadata(stats, dst), check_results=[
        reconciles_check(storage, COMMIT_REPOS, crawl, dst, shard=shard, output_ids_sql="repo")])


@contextmanager
def _git_dirs(context: dg.AssetExecutionContext, storage: StorageResource, repos_uri: str) -> Iterator:
    """Repository name -> a local git folder of it (a bundle cloned bare once), for the git-based checks."""
    crawl_uri, _ = pipeline.commit_crawl_of(stage_run(context, storage, source="commits"))
    git = {r["repo"]: r["git"] for r in read_table(repos_uri, ["repo", "git"]).to_pylist()}
    with tempfile.TemporaryDirectory(dir=storage.temp_dir()) as work:
        yield lambda name: local_repository(crawl_uri, git[name], work).path


@dg.asset(**asset_kwargs(COMMIT_SAMPLES), check_specs=[
    _check("lineage_reconciles", "every commit has one fate; the kept ones are exactly the samples", COMMIT_SAMPLES),
    _check("commits_accounted", "git rev-list: every commit on HEAD of every selected repository has exactly one "
                                "lineage row",
           COMMIT_SAMPLES),
    _check("targets_apply", "git apply --check: a sample of targets applies to the parent's tree", COMMIT_SAMPLES),
    _check("no_merge_or_bot_left", "git log: no kept commit has two parents or a bot author", COMMIT_SAMPLES),
    _check("samples_within_budget", "every sample within max_chars and shaped as documented", COMMIT_SAMPLES),
])
def commit_samples(context: dg.AssetExecutionContext, config: CommitSampleConfig,
                   storage: StorageResource) -> dg.MaterializeResult:
    crawl, shard = split_key(context.partition_key)
    stats, dst = run_declared(context, storage, COMMIT_SAMPLES, config.to_params())
    repos_uri = storage.uri(COMMIT_REPOS, crawl, shard)
    metadata = stats_metadata(stats, dst)
    if stats.languages:
        metadata["samples_per_language"] = bar_chart_markdown("samples per language", dict(stats.languages),
                                                              "language")
    if stats.rows_out:
        lengths, unit = sample_lengths(dst, settings.current().tokenizer)
        metadata["sample_length"] = histogram_markdown(f"sample length in {unit} ({len(lengths)} sampled)",
                                                       lengths, unit)
    lineage = storage.lineage_uri(pipeline.stage(COMMIT_SAMPLES).lineage_stage, crawl, shard)
    with _git_dirs(context, storage, repos_uri) as git_dir:
        checks = [
            reconciles_check(storage, COMMIT_SAMPLES, crawl, dst, shard=shard),
            check_result("commits_accounted", commits_accounted(lineage, repos_uri, git_dir)),
            check_result("targets_apply", targets_apply(dst, git_dir, config.apply_check_sample)),
            check_result("no_merge_or_bot_left", no_merge_or_bot_left(dst, git_dir)),
            check_result("samples_within_budget", samples_within_budget(dst, config.max_chars)),
        ]
    return dg.MaterializeResult(metadata=metadata, check_results=checks)


@dg.asset(**asset_kwargs(DEDUPED_COMMIT_SAMPLES), check_specs=[
    _check("lineage_reconciles", "every sample has one fate; the kept ones are exactly the output",
           DEDUPED_COMMIT_SAMPLES),
    _check("no_same_change_left", "git patch-id --stable: no two kept samples carry the same change",
           DEDUPED_COMMIT_SAMPLES),
])
def deduped_commit_samples(context: dg.AssetExecutionContext, config: DedupConfig,
                           storage: StorageResource) -> dg.MaterializeResult:
    crawl, _ = split_key(context.partition_key)
    stats, dst = run_declared(context, storage, DEDUPED_COMMIT_SAMPLES, config.to_params())
    metadata = stats_metadata(stats, dst)
    if stats.languages:
        metadata["samples_per_language"] = bar_chart_markdown("deduplicated samples per language",
                                                              dict(stats.languages), "language")
    return dg.MaterializeResult(metadata=metadata, check_results=[
        reconciles_check(storage, DEDUPED_COMMIT_SAMPLES, crawl, dst, storage.uri(COMMIT_SAMPLES, crawl)),
        check_result("no_same_change_left", no_same_change_left(dst))])
