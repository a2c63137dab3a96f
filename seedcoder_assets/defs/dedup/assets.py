"""Dedup at repository and file level, within a crawl and against every earlier crawl. Each asset runs its
declared stage (core/pipeline.py) and adds its metadata and checks."""


import dagster as dg

from seedcoder_assets.core.checks import (
    near_duplicates_left,
    no_duplicate_content,
    no_duplicate_repositories,
    record_id_sql,
)
from seedcoder_assets.core.pipeline import (
    CODE_FILES,
    CRAWL_REPOS,
    DEDUPED_REPOS,
    EXACT_DEDUPED_FILES,
    MINHASH_SIGNATURES,
    NEAR_DEDUPED_FILES,
    NEAR_DUP_CLUSTERS,
    RAW_REPO_FILES,
    REPO_LEVEL_FILES,
)
from seedcoder_assets.defs.configs import DedupConfig
from seedcoder_assets.lib.dagster_utils import check_result, reconciles_check, run_declared, stats_metadata
from seedcoder_assets.lib.plots import bar_chart_markdown
from seedcoder_assets.lib.stage_assets import asset_kwargs, key
from seedcoder_assets.resources.engine import DedupEngineResource
from seedcoder_assets.resources.storage import StorageResource


@dg.asset(
    **asset_kwargs(DEDUPED_REPOS),
    check_specs=[dg.AssetCheckSpec("lineage_reconciles", asset=key(DEDUPED_REPOS)),
                 dg.AssetCheckSpec("no_duplicate_repositories", asset=key(DEDUPED_REPOS),
                                   description="no two kept repositories hold the same files (hashed again)")],
)
def deduped_repos(context: dg.AssetExecutionContext, config: DedupConfig,
                  storage: StorageResource) -> dg.MaterializeResult:
    """Every repository of a crawl with its repository-level dedup decision (exact and near, vs. earlier crawls)."""
    crawl = context.partition_key
    stats, dst = run_declared(context, storage, DEDUPED_REPOS, config.to_params())
    return dg.MaterializeResult(
        metadata=stats_metadata(stats, dst),
        check_results=[reconciles_check(storage, DEDUPED_REPOS, crawl, dst, storage.uri(CRAWL_REPOS, crawl),
                                        input_ids_sql=record_id_sql(), output_ids_sql=record_id_sql(),
                                        output_filter_sql="decision = 'kept'"),
                       check_result("no_duplicate_repositories",
                                    no_duplicate_repositories(dst, storage.uri(RAW_REPO_FILES, crawl)))],
    )


@dg.asset(
    **asset_kwargs(REPO_LEVEL_FILES),
    check_specs=[dg.AssetCheckSpec("lineage_reconciles", asset=key(REPO_LEVEL_FILES))],
)
def repo_level_files(context: dg.AssetExecutionContext, storage: StorageResource) -> dg.MaterializeResult:
    """The repository-level variant: all code files of the repositories that survived repository-level dedup."""
    crawl = context.partition_key
    stats, dst = run_declared(context, storage, REPO_LEVEL_FILES)
    return dg.MaterializeResult(metadata=stats_metadata(stats, dst), check_results=[
        reconciles_check(storage, REPO_LEVEL_FILES, crawl, dst, storage.uri(CODE_FILES, crawl))])


@dg.asset(
    **asset_kwargs(EXACT_DEDUPED_FILES),
    check_specs=[dg.AssetCheckSpec("lineage_reconciles", asset=key(EXACT_DEDUPED_FILES)),
                 dg.AssetCheckSpec("no_duplicate_content", asset=key(EXACT_DEDUPED_FILES),
                                   description="no two kept files have the same text (hashed again)")],
)
def exact_deduped_files(context: dg.AssetExecutionContext, config: DedupConfig, storage: StorageResource,
                        dedup_engine: DedupEngineResource) -> dg.MaterializeResult:
    """Code files with byte-identical copies removed (SHA256), within the crawl and against earlier crawls
    (decided in the step's process, or per hash range on Dask: the same decisions)."""
    crawl = context.partition_key
    stats, dst = run_declared(context, storage, EXACT_DEDUPED_FILES, config.to_params(), dedup_engine)
    md = stats_metadata(stats, dst)
    if stats.extra.get("cluster_sizes"):
        md["cluster_size_chart"] = bar_chart_markdown("exact duplicate set sizes", stats.extra["cluster_sizes"], "size")
    return dg.MaterializeResult(
        metadata=md,
        check_results=[reconciles_check(storage, EXACT_DEDUPED_FILES, crawl, dst, storage.uri(CODE_FILES, crawl)),
                       check_result("no_duplicate_content", no_duplicate_content(dst))],
    )


@dg.asset(
    **asset_kwargs(MINHASH_SIGNATURES),
)
def minhash_signatures(context: dg.AssetExecutionContext, config: DedupConfig,
                       storage: StorageResource) -> dg.MaterializeResult:
    """MinHash signature (word 5-gram shingles) of every exact-deduplicated file; kept apart from the clusters."""
    stats, dst = run_declared(context, storage, MINHASH_SIGNATURES, config.to_params())
    return dg.MaterializeResult(metadata=stats_metadata(stats, dst))


@dg.asset(
    **asset_kwargs(NEAR_DUP_CLUSTERS),
)
def near_dup_clusters(context: dg.AssetExecutionContext, config: DedupConfig, storage: StorageResource,
                      dedup_engine: DedupEngineResource) -> dg.MaterializeResult:
    """Near-duplicate clusters: one row per member with its survivor and the survivor rule's inputs (candidates
    found in the step's process, or fanned out on Dask: the same clusters)."""
    stats, dst = run_declared(context, storage, NEAR_DUP_CLUSTERS, config.to_params(), dedup_engine)
    md = stats_metadata(stats, dst)
    if stats.extra.get("cluster_sizes"):
        md["cluster_size_chart"] = bar_chart_markdown("near-duplicate cluster sizes", stats.extra["cluster_sizes"],
                                                      "size")
    return dg.MaterializeResult(metadata=md)


@dg.asset(
    **asset_kwargs(NEAR_DEDUPED_FILES),
    check_specs=[dg.AssetCheckSpec("lineage_reconciles", asset=key(NEAR_DEDUPED_FILES)),
                 dg.AssetCheckSpec("near_duplicates_left_within_bound", asset=key(NEAR_DEDUPED_FILES),
                                   description="kept files with a near duplicate left, by another candidate "
                                               "generator and another tokenizer's exact Jaccard")],
)
def near_deduped_files(context: dg.AssetExecutionContext, config: DedupConfig,
                       storage: StorageResource) -> dg.MaterializeResult:
    """Code files with near duplicates (MinHash LSH, verified) removed; one survivor per cluster."""
    crawl, params = context.partition_key, config.to_params()
    stats, dst = run_declared(context, storage, NEAR_DEDUPED_FILES, params)
    return dg.MaterializeResult(
        metadata=stats_metadata(stats, dst),
        check_results=[reconciles_check(storage, NEAR_DEDUPED_FILES, crawl, dst, storage.uri(EXACT_DEDUPED_FILES, crawl)),
                       check_result("near_duplicates_left_within_bound",
                                    near_duplicates_left(dst, params.minhash.threshold, max_share=config.near_left_max_share))],
    )
