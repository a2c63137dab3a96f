"""Crawls in: repository archives and manifests (or Parquet file rows) -> decoded file rows."""


from collections import Counter

import dagster as dg

from seedcoder_assets.core.parquet_io import read_table
from seedcoder_assets.core.pipeline import CRAWL_REPOS, RAW_REPO_FILES, stage
from seedcoder_assets.defs.configs import IngestConfig
from seedcoder_assets.lib.dagster_utils import reconciles_check, run_declared, stats_metadata
from seedcoder_assets.lib.plots import bar_chart_markdown
from seedcoder_assets.lib.stage_assets import key, op_tags, partitions_of, spec
from seedcoder_assets.partitions import split_key
from seedcoder_assets.resources.storage import StorageResource


@dg.multi_asset(
    op_tags=op_tags(stage(RAW_REPO_FILES)),
    specs=[
        spec(RAW_REPO_FILES, description="Source files of a crawl, one row per file: id, repo, path, language, size, "
                                 "sha256, content. Undecodable, binary, oversized, empty, symlinked and "
                                 "path-traversing entries are dropped with a counted reason."),
        spec(CRAWL_REPOS, description="Repositories of a crawl with the crawler's metadata and a hash of their file set."),
    ],
    partitions_def=partitions_of(stage(RAW_REPO_FILES)),
    check_specs=[dg.AssetCheckSpec("lineage_reconciles", asset=key(RAW_REPO_FILES))],
)
def raw_repo_files(context: dg.AssetExecutionContext, config: IngestConfig, storage: StorageResource):
    crawl, shard = split_key(context.partition_key)
    stats, files_uri = run_declared(context, storage, RAW_REPO_FILES, config.to_params())
    repos_uri = storage.uri(CRAWL_REPOS, crawl, shard)
    languages = Counter(dict(zip(*read_table(files_uri, ["language"]).column("language")
                                 .fill_null("(none)").value_counts().flatten())))
    md = stats_metadata(stats, files_uri)
    md["languages"] = bar_chart_markdown("files per language", {str(k): int(v) for k, v in languages.items()},
                                         "language")
    yield dg.MaterializeResult(asset_key=key(RAW_REPO_FILES), metadata=md)
    yield dg.MaterializeResult(asset_key=key(CRAWL_REPOS), metadata={"dagster/row_count": stats.extra["repos"],
                                                                 "uri": dg.MetadataValue.path(repos_uri)})
    yield reconciles_check(storage, RAW_REPO_FILES, crawl, files_uri, asset_key=key(RAW_REPO_FILES), shard=shard)

