"""Jobs users launch: the whole GitHub branch for one crawl partition, and the catalog refresh."""

import dagster as dg

github_files_job = dg.define_asset_job(
    "github_files_job",
    selection=dg.AssetSelection.groups("ingest", "filters", "dedup"),
    description="Ingest, filter, deduplicate and syntax-check one crawl partition.",
)

catalog_job = dg.define_asset_job("catalog_job", selection=dg.AssetSelection.groups("catalog"))

# The quality branch runs as three jobs because the scorer is one model for all crawls (unpartitioned)
# while labels and scores are per crawl.
oracle_labels_job = dg.define_asset_job(
    "oracle_labels_job",
    selection=dg.AssetSelection.assets(["quality", "oracle_label_sample"], ["quality", "oracle_labels"]),
    description="Sample a crawl's syntax-checked files by language and have the oracle rate them (cached).",
)
scorer_job = dg.define_asset_job(
    "scorer_job", selection=dg.AssetSelection.assets(["quality", "quality_scorer"]),
    description="Train and evaluate the quality scorer on every crawl's oracle labels.",
)
scoring_job = dg.define_asset_job(
    "scoring_job",
    selection=dg.AssetSelection.assets(["quality", "file_quality_scores"], ["quality", "quality_files"],
                                       ["quality", "repo_level_corpus"], ["quality", "repo_quality"]),
    description="Score every file of a crawl and build its file-level and repository-level corpora.",
)
