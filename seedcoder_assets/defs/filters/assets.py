"""Basic filters: code languages only, then tree-sitter syntax check."""


import dagster as dg

from seedcoder_assets.core.checks import only_code_languages, syntax_errors_left
from seedcoder_assets.core.filters.language import filter_code_files
from seedcoder_assets.core.filters.syntax import filter_syntax
from seedcoder_assets.core.parquet_io import read_table
from seedcoder_assets.defs.configs import SyntaxConfig
from seedcoder_assets.defs.ingest.assets import RAW_REPO_FILES
from seedcoder_assets.lib.dagster_utils import bar_chart_markdown, check_result, reconciles_check, stats_metadata
from seedcoder_assets.lib.k8s import CPU_STEP_TAGS
from seedcoder_assets.partitions import crawl_partitions
from seedcoder_assets.resources.storage import StorageResource

CODE_FILES = dg.AssetKey(["filters", "code_files"])
SYNTAX_CHECKED_FILES = dg.AssetKey(["filters", "syntax_checked_files"])
NEAR_DEDUPED_FILES = dg.AssetKey(["dedup", "near_deduped_files"])


def _language_chart(uri: str, title: str) -> dg.MetadataValue:
    counts = read_table(uri, ["language"]).column("language").fill_null("(none)").value_counts()
    return bar_chart_markdown(title, {str(v["values"]): int(v["counts"]) for v in counts.to_pylist()}, "language")


@dg.asset(
    key=CODE_FILES, group_name="filters", partitions_def=crawl_partitions, deps=[RAW_REPO_FILES],
    code_version="language-v1",
    check_specs=[dg.AssetCheckSpec("lineage_reconciles", asset=CODE_FILES),
                 dg.AssetCheckSpec("only_code_languages", asset=CODE_FILES)],
)
def code_files(context: dg.AssetExecutionContext, storage: StorageResource) -> dg.MaterializeResult:
    """Files of a crawl in one of the 89 code languages; non-code (docs, licences, data) dropped as `non_code`."""
    crawl = context.partition_key
    dst = storage.uri(CODE_FILES, crawl)
    stats = filter_code_files(storage.uri(RAW_REPO_FILES, crawl), dst,
                              storage.lineage("language", crawl, context.run.run_id))
    return dg.MaterializeResult(
        metadata={**stats_metadata(stats, dst), "languages": _language_chart(dst, "code files per language")},
        check_results=[reconciles_check(storage, "language", crawl, dst, storage.uri(RAW_REPO_FILES, crawl)),
                       check_result("only_code_languages", only_code_languages(dst))],
    )


@dg.asset(
    key=SYNTAX_CHECKED_FILES, group_name="filters", partitions_def=crawl_partitions, deps=[NEAR_DEDUPED_FILES],
    code_version="syntax-v1", op_tags=CPU_STEP_TAGS,
    check_specs=[dg.AssetCheckSpec("lineage_reconciles", asset=SYNTAX_CHECKED_FILES),
                 dg.AssetCheckSpec("syntax_errors_left_within_bound", asset=SYNTAX_CHECKED_FILES,
                                   description="Python's compiler and json reject at most a small share of a sample")],
)
def syntax_checked_files(context: dg.AssetExecutionContext, config: SyntaxConfig,
                         storage: StorageResource) -> dg.MaterializeResult:
    """Deduplicated code files that parse with their language's tree-sitter grammar (calibrated error share)."""
    crawl, params = context.partition_key, config.to_params()
    dst = storage.uri(SYNTAX_CHECKED_FILES, crawl)
    stats = filter_syntax(storage.uri(NEAR_DEDUPED_FILES, crawl), dst,
                          storage.lineage("syntax", crawl, context.run.run_id), params)
    return dg.MaterializeResult(
        metadata={**stats_metadata(stats, dst), "languages": _language_chart(dst, "syntax-checked files per language")},
        check_results=[reconciles_check(storage, "syntax", crawl, dst, storage.uri(NEAR_DEDUPED_FILES, crawl)),
                       check_result("syntax_errors_left_within_bound",
                                    syntax_errors_left(dst, config.native_check_sample, config.native_reject_max_share))],
    )
