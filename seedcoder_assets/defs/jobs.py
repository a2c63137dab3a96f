"""Jobs users launch: the whole GitHub branch for one crawl partition, and the catalog refresh."""

import dagster as dg

github_files_job = dg.define_asset_job(
    "github_files_job",
    selection=dg.AssetSelection.groups("ingest", "filters", "dedup"),
    description="Ingest, filter, deduplicate and syntax-check one crawl partition.",
)

catalog_job = dg.define_asset_job("catalog_job", selection=dg.AssetSelection.groups("catalog"))
