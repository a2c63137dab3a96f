"""The tree-sitter syntax check (its own asset: it takes run config) and the features of the files it keeps,
read from the same trees. The other filters, code languages first, are declared filter stages
(core/pipeline.py) that definitions.py builds with lib/stage_assets.py."""


import dagster as dg
import pyarrow.compute as pc

from seedcoder_assets.core.checks import syntax_errors_left
from seedcoder_assets.core.features.checks import python_features_agree
from seedcoder_assets.core.parquet_io import read_table
from seedcoder_assets.core.pipeline import FILE_FEATURES, NEAR_DEDUPED_FILES, SYNTAX_CHECKED_FILES, stage
from seedcoder_assets.defs.configs import SyntaxConfig
from seedcoder_assets.lib.dagster_utils import check_result, reconciles_check, run_declared, stats_metadata
from seedcoder_assets.lib.plots import bar_chart_markdown, histogram_markdown
from seedcoder_assets.lib.stage_assets import key, op_tags, partitions_of, spec
from seedcoder_assets.partitions import split_key
from seedcoder_assets.resources.storage import StorageResource


@dg.multi_asset(
    name="filters__syntax_checked_files",  # the step's name before its features joined it (run configs, k8s)
    specs=[
        spec(SYNTAX_CHECKED_FILES, description="Deduplicated code files that parse with their language's tree-sitter "
                                               "grammar (calibrated error share), one shard of a crawl per run."),
        spec(FILE_FEATURES, description="Per kept file with a grammar, from its tree: comment ratio (docstrings "
                                        "included), definitions and how many are documented, imports as written "
                                        "and the external packages among them (core/features/code.py)."),
    ],
    partitions_def=partitions_of(stage(SYNTAX_CHECKED_FILES)), op_tags=op_tags(stage(SYNTAX_CHECKED_FILES)),
    check_specs=[dg.AssetCheckSpec("lineage_reconciles", asset=key(SYNTAX_CHECKED_FILES)),
                 dg.AssetCheckSpec("syntax_errors_left_within_bound", asset=key(SYNTAX_CHECKED_FILES),
                                   description="Python's compiler and json reject at most a small share of a sample"),
                 dg.AssetCheckSpec("python_features_agree", asset=key(FILE_FEATURES),
                                   description="a sample of Python files read again by ast and tokenize: the same "
                                               "imports, comment ratio within 0.02; every kept Python file has a row")],
)
def syntax_checked_files(context: dg.AssetExecutionContext, config: SyntaxConfig, storage: StorageResource):
    crawl, shard = split_key(context.partition_key)
    stats, dst = run_declared(context, storage, SYNTAX_CHECKED_FILES, config.to_params())
    src = storage.uri(NEAR_DEDUPED_FILES, crawl, shard)  # the crawl's dedup keeps each shard's files apart
    yield dg.MaterializeResult(
        asset_key=key(SYNTAX_CHECKED_FILES),
        metadata={**stats_metadata(stats, dst),
                  "languages": bar_chart_markdown("syntax-checked files per language", stats.languages, "language")})
    features_uri = storage.uri(FILE_FEATURES, crawl, shard)
    features = read_table(features_uri, ["comment_ratio", "has_docstring", "packages"])
    packages: dict[str, int] = {}
    for row in features["packages"].to_pylist():
        for p in row or ():
            packages[p] = packages.get(p, 0) + 1
    yield dg.MaterializeResult(asset_key=key(FILE_FEATURES), metadata={
        "dagster/row_count": features.num_rows,
        "with_docstring": int(pc.sum(features["has_docstring"]).as_py() or 0),
        "comment_ratio": histogram_markdown("comment ratio per file", features["comment_ratio"].to_pylist(),
                                            "comment bytes / file bytes"),
        "top_packages": bar_chart_markdown("files importing each package (top 30)", packages, "package"),
        "uri": dg.MetadataValue.path(features_uri)})
    yield reconciles_check(storage, SYNTAX_CHECKED_FILES, crawl, dst, src, shard=shard,
                           asset_key=key(SYNTAX_CHECKED_FILES))
    yield check_result("syntax_errors_left_within_bound",
                       syntax_errors_left(dst, config.native_check_sample, config.native_reject_max_share),
                       asset_key=key(SYNTAX_CHECKED_FILES))
    yield check_result("python_features_agree", python_features_agree(dst, features_uri), asset_key=key(FILE_FEATURES))
