"""Dedup at repository and file level, within a crawl and against every earlier crawl."""


import dagster as dg
import numpy as np

from seedcoder_assets.core.dedup import minhash
from seedcoder_assets.core.dedup.exact import connect, exact_dedup
from seedcoder_assets.core.dedup.near import apply_near_dedup, compute_signatures, file_near_clusters
from seedcoder_assets.core.dedup.repos import dedup_repos
from seedcoder_assets.core.dedup.repos import repo_level_files as build_repo_level_files
from seedcoder_assets.core.parquet_io import read_table, sample_rows
from seedcoder_assets.defs.configs import DedupConfig
from seedcoder_assets.defs.filters.assets import CODE_FILES, NEAR_DEDUPED_FILES
from seedcoder_assets.defs.ingest.assets import CRAWL_REPOS
from seedcoder_assets.lib.dagster_utils import (
    balanced_check,
    bar_chart_markdown,
    earlier_crawls_indexed,
    prior_crawls,
    stats_metadata,
)
from seedcoder_assets.lib.k8s import CPU_STEP_TAGS
from seedcoder_assets.partitions import crawl_partitions
from seedcoder_assets.resources.storage import StorageResource

DEDUPED_REPOS = dg.AssetKey(["dedup", "deduped_repos"])
REPO_LEVEL_FILES = dg.AssetKey(["dedup", "repo_level_files"])
EXACT_DEDUPED_FILES = dg.AssetKey(["dedup", "exact_deduped_files"])
MINHASH_SIGNATURES = dg.AssetKey(["dedup", "minhash_signatures"])
NEAR_DUP_CLUSTERS = dg.AssetKey(["dedup", "near_dup_clusters"])
CODE_VERSION = f"dedup-v1-{minhash.SCHEME_VERSION}"


def _conn(storage: StorageResource):
    return connect(storage.duckdb_memory_limit, storage.temp_dir())


@dg.asset(
    key=DEDUPED_REPOS, group_name="dedup", partitions_def=crawl_partitions, deps=[CODE_FILES, CRAWL_REPOS],
    code_version=CODE_VERSION,
    check_specs=[dg.AssetCheckSpec("lineage_balanced", asset=DEDUPED_REPOS),
                 dg.AssetCheckSpec("no_duplicate_repo_hash", asset=DEDUPED_REPOS)],
)
def deduped_repos(context: dg.AssetExecutionContext, config: DedupConfig,
                  storage: StorageResource) -> dg.MaterializeResult:
    """Every repository of a crawl with its repository-level dedup decision (exact and near, vs. earlier crawls)."""
    crawl = context.partition_key
    dst = storage.uri(DEDUPED_REPOS, crawl)
    with earlier_crawls_indexed(context):
        stats = dedup_repos(storage.uri(CODE_FILES, crawl), storage.uri(CRAWL_REPOS, crawl), dst,
                            storage.lineage("repo_dedup", crawl, context.run.run_id), config.to_params(),
                            config.survivor_rule, storage.index(), prior_crawls(context), _conn(storage))
    kept = [r["repo_sha256"] for r in read_table(dst, ["decision", "repo_sha256"]).to_pylist()
            if r["decision"] == "kept"]
    return dg.MaterializeResult(
        metadata=stats_metadata(stats, dst),
        check_results=[balanced_check(stats),
                       dg.AssetCheckResult(check_name="no_duplicate_repo_hash", passed=len(kept) == len(set(kept)),
                                           metadata={"kept_repos": len(kept), "distinct": len(set(kept))})],
    )


@dg.asset(
    key=REPO_LEVEL_FILES, group_name="dedup", partitions_def=crawl_partitions, deps=[CODE_FILES, DEDUPED_REPOS],
    code_version=CODE_VERSION, check_specs=[dg.AssetCheckSpec("lineage_balanced", asset=REPO_LEVEL_FILES)],
)
def repo_level_files(context: dg.AssetExecutionContext, storage: StorageResource) -> dg.MaterializeResult:
    """The repository-level variant: all code files of the repositories that survived repository-level dedup."""
    crawl = context.partition_key
    dst = storage.uri(REPO_LEVEL_FILES, crawl)
    stats = build_repo_level_files(storage.uri(CODE_FILES, crawl), storage.uri(DEDUPED_REPOS, crawl), dst,
                                   storage.lineage("repo_level", crawl, context.run.run_id))
    return dg.MaterializeResult(metadata=stats_metadata(stats, dst), check_results=[balanced_check(stats)])


@dg.asset(
    key=EXACT_DEDUPED_FILES, group_name="dedup", partitions_def=crawl_partitions, deps=[CODE_FILES, CRAWL_REPOS],
    code_version=CODE_VERSION,
    check_specs=[dg.AssetCheckSpec("lineage_balanced", asset=EXACT_DEDUPED_FILES),
                 dg.AssetCheckSpec("no_duplicate_sha256", asset=EXACT_DEDUPED_FILES)],
)
def exact_deduped_files(context: dg.AssetExecutionContext, config: DedupConfig,
                        storage: StorageResource) -> dg.MaterializeResult:
    """Code files with byte-identical copies removed (SHA256), within the crawl and against earlier crawls."""
    crawl = context.partition_key
    dst = storage.uri(EXACT_DEDUPED_FILES, crawl)
    with earlier_crawls_indexed(context):
        stats = exact_dedup(storage.uri(CODE_FILES, crawl), storage.uri(CRAWL_REPOS, crawl), dst,
                            storage.lineage("exact_dedup", crawl, context.run.run_id), storage.index(),
                            prior_crawls(context), config.survivor_rule, _conn(storage))
    hashes = read_table(dst, ["sha256"]).column("sha256")
    distinct = len(hashes.unique())
    md = stats_metadata(stats, dst)
    if stats.extra.get("cluster_sizes"):
        md["cluster_size_chart"] = bar_chart_markdown("exact duplicate set sizes", stats.extra["cluster_sizes"], "size")
    return dg.MaterializeResult(
        metadata=md,
        check_results=[balanced_check(stats),
                       dg.AssetCheckResult(check_name="no_duplicate_sha256", passed=distinct == len(hashes),
                                           metadata={"rows": len(hashes), "distinct_sha256": distinct})],
    )


@dg.asset(
    key=MINHASH_SIGNATURES, group_name="dedup", partitions_def=crawl_partitions, deps=[EXACT_DEDUPED_FILES],
    code_version=CODE_VERSION, op_tags=CPU_STEP_TAGS,
)
def minhash_signatures(context: dg.AssetExecutionContext, config: DedupConfig,
                       storage: StorageResource) -> dg.MaterializeResult:
    """MinHash signature (word 5-gram shingles) of every exact-deduplicated file; kept apart from the clusters."""
    crawl = context.partition_key
    dst = storage.uri(MINHASH_SIGNATURES, crawl)
    stats = compute_signatures(storage.uri(EXACT_DEDUPED_FILES, crawl), dst, config.to_params())
    return dg.MaterializeResult(metadata=stats_metadata(stats, dst))


@dg.asset(
    key=NEAR_DUP_CLUSTERS, group_name="dedup", partitions_def=crawl_partitions,
    deps=[MINHASH_SIGNATURES, EXACT_DEDUPED_FILES, CRAWL_REPOS], code_version=CODE_VERSION, op_tags=CPU_STEP_TAGS,
)
def near_dup_clusters(context: dg.AssetExecutionContext, config: DedupConfig,
                      storage: StorageResource) -> dg.MaterializeResult:
    """Near-duplicate clusters: one row per member with its survivor and the survivor rule's inputs."""
    crawl = context.partition_key
    dst = storage.uri(NEAR_DUP_CLUSTERS, crawl)
    with earlier_crawls_indexed(context):
        stats = file_near_clusters(storage.uri(MINHASH_SIGNATURES, crawl), storage.uri(EXACT_DEDUPED_FILES, crawl),
                                   storage.uri(CRAWL_REPOS, crawl), dst, crawl, config.to_params(),
                                   config.survivor_rule, storage.index(), prior_crawls(context), _conn(storage),
                                   prior_files=lambda c: storage.uri(EXACT_DEDUPED_FILES, c))
    md = stats_metadata(stats, dst)
    if stats.extra.get("cluster_sizes"):
        md["cluster_size_chart"] = bar_chart_markdown("near-duplicate cluster sizes", stats.extra["cluster_sizes"],
                                                      "size")
    return dg.MaterializeResult(metadata=md)


@dg.asset(
    key=NEAR_DEDUPED_FILES, group_name="dedup", partitions_def=crawl_partitions,
    deps=[EXACT_DEDUPED_FILES, NEAR_DUP_CLUSTERS, MINHASH_SIGNATURES], code_version=CODE_VERSION,
    check_specs=[dg.AssetCheckSpec("lineage_balanced", asset=NEAR_DEDUPED_FILES),
                 dg.AssetCheckSpec("no_near_duplicates_in_sample", asset=NEAR_DEDUPED_FILES)],
)
def near_deduped_files(context: dg.AssetExecutionContext, config: DedupConfig,
                       storage: StorageResource) -> dg.MaterializeResult:
    """Code files with near duplicates (MinHash LSH, verified) removed; one survivor per cluster."""
    crawl, params = context.partition_key, config.to_params()
    dst = storage.uri(NEAR_DEDUPED_FILES, crawl)
    stats = apply_near_dedup(storage.uri(EXACT_DEDUPED_FILES, crawl), storage.uri(NEAR_DUP_CLUSTERS, crawl),
                             storage.uri(MINHASH_SIGNATURES, crawl), dst,
                             storage.lineage("near_dedup", crawl, context.run.run_id), params, storage.index())
    pairs = _near_pairs_in_sample(dst, params)
    return dg.MaterializeResult(
        metadata=stats_metadata(stats, dst),
        check_results=[balanced_check(stats),
                       dg.AssetCheckResult(check_name="no_near_duplicates_in_sample", passed=not pairs,
                                           metadata={"pairs_above_threshold": len(pairs),
                                                     "examples": dg.MetadataValue.json(pairs[:10])})],
    )


def _near_pairs_in_sample(uri: str, params: minhash.MinHashParams, k: int = 3000) -> list[list[str]]:
    """Pairs of kept files with exact 5-gram Jaccard at or above the threshold, among a seeded sample.

    LSH over the sample proposes pairs; every pair whose estimate comes within the exact-check
    margin of the threshold is then judged on its exact Jaccard.
    """
    sample = sample_rows(uri, ["id", "content"], k)
    if len(sample) < 2:
        return []
    texts = [r["content"] for r in sample]
    sigs, counts = minhash.signatures(texts, params)
    pairs = minhash.candidate_pairs(minhash.band_keys(sigs, params), counts > 0, 10**9)
    if not len(pairs):
        return []
    sim = minhash.similarity(sigs[pairs[:, 0]], sigs[pairs[:, 1]])
    close = pairs[np.flatnonzero(sim >= params.threshold - params.exact_margin)]
    rows = sorted(set(close.ravel().tolist()))
    sets = dict(zip(rows, minhash.shingle_sets([texts[r] for r in rows], params)))
    return [[sample[a]["id"], sample[b]["id"]] for a, b in close.tolist()
            if minhash.exact_jaccard(sets[a], sets[b]) >= params.threshold]
