"""One resource set; environments differ only in their environment values."""

from __future__ import annotations

import os

import dagster as dg
from dagster_aws.s3 import S3Resource

from seedcoder_assets.resources.catalog import CatalogResource
from seedcoder_assets.resources.oracle import OracleResource
from seedcoder_assets.resources.storage import StorageResource


@dg.definitions
def resources() -> dg.Definitions:
    # Read when the code location loads, not at import: unset variables fall back to ./data.
    home = os.environ.get("SEEDCODER_HOME", os.path.abspath("data"))
    env = os.environ.get
    return dg.Definitions(resources={
        "storage": StorageResource(
            lake_root=env("SEEDCODER_LAKE_ROOT", f"{home}/lake"),
            landing_root=env("SEEDCODER_LANDING_ROOT", f"{home}/landing"),
            local_dir=env("SEEDCODER_LOCAL_DIR", f"{home}/local"),
            duckdb_memory_limit=env("SEEDCODER_DUCKDB_MEMORY", "1GB"),
            model_root=env("SEEDCODER_MODEL_ROOT", f"{home}/models"),
            index_root=env("SEEDCODER_INDEX_ROOT", ""),
            # Any root may be s3://bucket/prefix; keys come from boto3's chain (env, IRSA, instance role).
            s3=S3Resource(endpoint_url=env("SEEDCODER_S3_ENDPOINT_URL") or None,
                          region_name=env("AWS_REGION") or env("AWS_DEFAULT_REGION") or None),
        ),
        "oracle": OracleResource(
            base_url=env("SEEDCODER_ORACLE_URL", ""),
            model=env("SEEDCODER_ORACLE_MODEL", ""),
            max_concurrency=int(env("SEEDCODER_ORACLE_CONCURRENCY", "32")),
            timeout_s=float(env("SEEDCODER_ORACLE_TIMEOUT_S", "120")),
            structured_output=env("SEEDCODER_ORACLE_STRUCTURED", "vllm"),
            explanation=env("SEEDCODER_ORACLE_EXPLANATION", "1") == "1",
        ),
        "catalog_db": CatalogResource(database=env("SEEDCODER_CATALOG", f"{home}/catalog.duckdb")),
    })
