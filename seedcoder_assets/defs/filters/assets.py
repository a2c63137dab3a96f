"""The tree-sitter syntax check (its own asset: it takes run config). The other filters, code languages
first, are declared filter stages (core/pipeline.py) that definitions.py builds with lib/stage_assets.py."""


import dagster as dg

from seedcoder_assets.core.checks import syntax_errors_left
from seedcoder_assets.core.pipeline import NEAR_DEDUPED_FILES, SYNTAX_CHECKED_FILES
from seedcoder_assets.defs.configs import SyntaxConfig
from seedcoder_assets.lib.dagster_utils import check_result, reconciles_check, run_declared, stats_metadata
from seedcoder_assets.lib.plots import bar_chart_markdown
from seedcoder_assets.lib.stage_assets import asset_kwargs, key
from seedcoder_assets.partitions import split_key
from seedcoder_assets.resources.storage import StorageResource


@dg.asset(
    **asset_kwargs(SYNTAX_CHECKED_FILES),
    check_specs=[dg.AssetCheckSpec("lineage_reconciles", asset=key(SYNTAX_CHECKED_FILES)),
                 dg.AssetCheckSpec("syntax_errors_left_within_bound", asset=key(SYNTAX_CHECKED_FILES),
                                   description="Python's compiler and json reject at most a small share of a sample")],
)
def syntax_checked_files(context: dg.AssetExecutionContext, config: SyntaxConfig,
                         storage: StorageResource) -> dg.MaterializeResult:
    """Deduplicated code files that parse with their language's tree-sitter grammar (calibrated error share),
    one shard of a crawl per run."""
    crawl, shard = split_key(context.partition_key)
    stats, dst = run_declared(context, storage, SYNTAX_CHECKED_FILES, config.to_params())
    src = storage.uri(NEAR_DEDUPED_FILES, crawl, shard)  # the crawl's dedup keeps each shard's files apart
    return dg.MaterializeResult(
        metadata={**stats_metadata(stats, dst),
                  "languages": bar_chart_markdown("syntax-checked files per language", stats.languages, "language")},
        check_results=[reconciles_check(storage, SYNTAX_CHECKED_FILES, crawl, dst, src, shard=shard),
                       check_result("syntax_errors_left_within_bound",
                                    syntax_errors_left(dst, config.native_check_sample, config.native_reject_max_share))],
    )
