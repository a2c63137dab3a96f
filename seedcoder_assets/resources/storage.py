"""Where the lake, the landing area and the dedup index live."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import dagster as dg
from pydantic import Field

from seedcoder_assets.core import paths
from seedcoder_assets.core.dedup.index import DedupIndex
from seedcoder_assets.core.stats import LineageWriter


class StorageResource(dg.ConfigurableResource):
    """Storage roots: a local folder by default; `s3://bucket/prefix` in production."""

    lake_root: str = Field(description="Root of the Parquet lake: <root>/<group>/<asset>/crawl=<crawl>/")
    landing_root: str = Field(description="Where crawls land: <landing_root>/<crawl>/{repos.jsonl, archives}")
    index_path: str = Field(description="Local path of the persisted dedup index (SQLite)")
    duckdb_memory_limit: str = Field("1GB", description="Memory cap of DuckDB group-bys/joins; beyond it they spill")
    model_root: str = Field("", description="Local folder of trained models (scorers); default <index dir>/../models")

    def uri(self, asset_key: dg.AssetKey | Sequence[str], crawl: str) -> str:
        path = asset_key.path if isinstance(asset_key, dg.AssetKey) else list(asset_key)
        return paths.partition_uri(self.lake_root, path, crawl)

    def crawl_uri(self, crawl: str) -> str:
        return paths.crawl_uri(self.landing_root, crawl)

    def lineage(self, stage: str, crawl: str, run_id: str) -> LineageWriter:
        return LineageWriter(self.lake_root, stage, crawl, run_id)

    def index(self) -> DedupIndex:
        return DedupIndex(self.index_path)

    def models(self) -> Path:
        root = Path(self.model_root) if self.model_root else Path(self.index_path).parent.parent / "models"
        root.mkdir(parents=True, exist_ok=True)
        return root

    def label_cache_uri(self) -> str:
        """Oracle answers, kept across runs and partitions (under `_cache`, outside the catalog's views)."""
        return f"{self.lake_root.rstrip('/')}/_cache/oracle_labels"

    def temp_dir(self) -> str:
        tmp = Path(self.index_path).parent / "duckdb_tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        return str(tmp)
