"""One resource set; environments differ only in their environment values."""

from __future__ import annotations

import dagster as dg
from dagster_aws.s3 import S3Resource

from seedcoder_assets import settings
from seedcoder_assets.resources.catalog import CatalogResource
from seedcoder_assets.resources.engine import DedupEngineResource
from seedcoder_assets.resources.oracle import OracleResource
from seedcoder_assets.resources.storage import StorageResource


@dg.definitions
def resources() -> dg.Definitions:
    s = settings.current()  # when the code location loads, not at import
    return dg.Definitions(resources={
        "storage": StorageResource(
            lake_root=s.lake_root, landing_root=s.landing_root, commits_landing_root=s.commits_landing_root,
            web_landing_root=s.web_landing_root,
            local_dir=s.local_dir,
            duckdb_memory_limit=s.duckdb_memory, model_root=s.model_root, index_root=s.index_root,
            # Any root may be s3://bucket/prefix; keys come from boto3's chain (env, IRSA, instance role).
            s3=S3Resource(endpoint_url=s.s3_endpoint_url, region_name=s.aws_region),
        ),
        "oracle": OracleResource(
            base_url=s.oracle_url, model=s.oracle_model, max_concurrency=s.oracle_concurrency,
            timeout_s=s.oracle_timeout_s, structured_output=s.oracle_structured, explanation=s.oracle_explanation,
        ),
        "catalog_db": CatalogResource(database=s.catalog),
        "dedup_engine": DedupEngineResource(engine=s.dedup_engine, dask_address=s.dask_address,
                                            dask_workers=s.dask_workers),
    })
