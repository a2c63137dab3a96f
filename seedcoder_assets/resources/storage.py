"""Where the lake, the landing area, the models and the dedup index live: local folders or S3."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import boto3
import dagster as dg
from dagster_aws.s3 import S3Resource
from pydantic import Field

from seedcoder_assets.core import object_store, paths
from seedcoder_assets.core.dedup.index import DedupIndex
from seedcoder_assets.core.models import ModelStore
from seedcoder_assets.core.stats import LineageWriter


class StorageResource(dg.ConfigurableResource):
    """Storage roots: a local folder by default; `s3://bucket/prefix` in production.

    Endpoint and credentials of S3 come from the dagster-aws `S3Resource` (explicit keys, a
    profile, or boto3's default chain: environment, IRSA web identity, instance role).
    """

    lake_root: str = Field(description="Root of the Parquet lake: <root>/<group>/<asset>/crawl=<crawl>/")
    landing_root: str = Field(description="Where crawls land: <landing_root>/<crawl>/{repos.jsonl, archives}")
    commits_landing_root: str = Field("", description="Where commit crawls land: <root>/<crawl>/{git_repos.jsonl, "
                                                      "bundles or bare mirrors}; default <landing_root>-commits")
    web_landing_root: str = Field("", description="Where web dumps land: <root>/<dump>/{warc.paths, *.warc.gz}; "
                                                  "default <landing_root>-web")
    local_dir: str = Field(description="This machine's scratch folder: DuckDB spill files, the model cache")
    index_root: str = Field("", description="What every crawl kept (hashes, LSH bands, signatures) as Parquet, one "
                                            "partition per crawl: a folder or s3://; default <lake_root>/_index")
    duckdb_memory_limit: str = Field("1GB", description="Memory cap of DuckDB group-bys/joins; beyond it they spill")
    model_root: str = Field("", description="Trained models (scorers): a folder or s3://; default <index dir>/../models")
    s3: S3Resource = Field(default_factory=S3Resource, description="How to reach S3 when a root is s3://")

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if any(object_store.is_s3(r) for r in (self.lake_root, self.landing_root, self.commits_landing_root,
                                                 self.web_landing_root,
                                                 self.model_root, self.index_root)):
            object_store.configure_s3(self.s3_settings())

    def s3_settings(self) -> object_store.S3Settings:
        """Credentials resolved once by boto3 (the same chain the S3Resource's clients use)."""
        s3 = self.s3
        session = boto3.session.Session(
            profile_name=s3.profile_name, aws_access_key_id=s3.aws_access_key_id,
            aws_secret_access_key=s3.aws_secret_access_key, aws_session_token=s3.aws_session_token)
        creds = session.get_credentials()
        frozen = creds.get_frozen_credentials() if creds is not None else None
        return object_store.S3Settings(
            region=s3.region_name or session.region_name or "us-east-1", endpoint_url=s3.endpoint_url,
            access_key=frozen.access_key if frozen else None, secret_key=frozen.secret_key if frozen else None,
            session_token=frozen.token if frozen else None)

    def uri(self, asset_key: dg.AssetKey | Sequence[str], crawl: str, shard: str | None = None) -> str:
        """A crawl's partition of an asset (of a per-shard asset: every shard, read as one), or one shard's."""
        path = asset_key.path if isinstance(asset_key, dg.AssetKey) else list(asset_key)
        return paths.partition_uri(self.lake_root, path, crawl, shard)

    def crawl_uri(self, crawl: str) -> str:
        return paths.crawl_uri(self.landing_root, crawl)

    def landing_for(self, source: str) -> str:
        """The landing root of a source's partitions (GitHub crawls, commit crawls, web dumps)."""
        if source == "commits":
            return self.commits_landing_root or f"{self.landing_root.rstrip('/')}-commits"
        if source == "web":
            return self.web_landing_root or f"{self.landing_root.rstrip('/')}-web"
        return self.landing_root

    def lineage(self, stage: str, crawl: str, run_id: str) -> LineageWriter:
        return LineageWriter(self.lake_root, stage, crawl, run_id)

    def lineage_uri(self, stage: str, crawl: str, shard: str | None = None) -> str:
        return paths.lineage_uri(self.lake_root, stage, crawl, shard)

    def index(self) -> DedupIndex:
        """What earlier crawls kept. Each crawl writes its own partitions, so steps of different crawls
        (and pods) read and write it concurrently; no step holds a lock on it."""
        return DedupIndex(self.index_root or f"{self.lake_root.rstrip('/')}/_index")

    def models(self) -> ModelStore:
        """Trained models: `model_root` (a folder or s3://), cached under `local_dir/models` when remote."""
        return ModelStore(self.model_root, Path(self.local_dir) / "models")

    def label_cache_uri(self) -> str:
        """Oracle answers, kept across runs and partitions (under `_cache`, outside the catalog's views)."""
        return f"{self.lake_root.rstrip('/')}/_cache/oracle_labels"

    def temp_dir(self) -> str:
        tmp = Path(self.local_dir) / "duckdb_tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        return str(tmp)
