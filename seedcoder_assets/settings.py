"""Every environment variable the package reads, read here and nowhere else (README: "Settings").

`current()` reads the environment when called (when the code location loads, a command starts or a
step asks), never at import, so a deployment differs from a laptop only in its environment values.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    home: str  # SEEDCODER_HOME: base of the defaults below
    lake_root: str  # SEEDCODER_LAKE_ROOT
    landing_root: str  # SEEDCODER_LANDING_ROOT
    commits_landing_root: str  # SEEDCODER_COMMITS_LANDING_ROOT: where commit crawls land
    web_landing_root: str  # SEEDCODER_WEB_LANDING_ROOT: where web dumps (WARC files) land
    index_root: str  # SEEDCODER_INDEX_ROOT ("" = <lake>/_index)
    local_dir: str  # SEEDCODER_LOCAL_DIR
    catalog: str  # SEEDCODER_CATALOG
    duckdb_memory: str  # SEEDCODER_DUCKDB_MEMORY
    model_root: str  # SEEDCODER_MODEL_ROOT
    s3_endpoint_url: str | None  # SEEDCODER_S3_ENDPOINT_URL
    aws_region: str | None  # AWS_REGION, else AWS_DEFAULT_REGION
    oracle_url: str  # SEEDCODER_ORACLE_URL
    oracle_model: str  # SEEDCODER_ORACLE_MODEL
    oracle_concurrency: int  # SEEDCODER_ORACLE_CONCURRENCY
    oracle_timeout_s: float  # SEEDCODER_ORACLE_TIMEOUT_S
    oracle_structured: str  # SEEDCODER_ORACLE_STRUCTURED
    oracle_explanation: bool  # SEEDCODER_ORACLE_EXPLANATION
    scorer_backbone: str  # SEEDCODER_SCORER_BACKBONE
    vllm_python: str  # SEEDCODER_VLLM_PYTHON
    executor: str  # SEEDCODER_EXECUTOR
    max_concurrent: int  # SEEDCODER_MAX_CONCURRENT
    automation: bool  # SEEDCODER_AUTOMATION
    gpu_node_selector: str  # SEEDCODER_GPU_NODE_SELECTOR
    gpu_toleration: str  # SEEDCODER_GPU_TOLERATION
    cpu_node_selector: str  # SEEDCODER_CPU_NODE_SELECTOR
    cpu_toleration: str  # SEEDCODER_CPU_TOLERATION
    sdist_cache: str  # SEEDCODER_CACHE: where sample crawls keep downloaded sdists
    dedup_engine: str  # SEEDCODER_DEDUP_ENGINE: in-process | dask
    dask_address: str  # SEEDCODER_DASK_ADDRESS: a Dask scheduler ("" = a local cluster per step)
    dask_workers: int  # SEEDCODER_DASK_WORKERS: workers of that local cluster
    shards: int  # SEEDCODER_SHARDS: shard slots per crawl partition (the static shard dimension)
    shard_bytes: int  # SEEDCODER_SHARD_BYTES: most archive bytes per shard (a bigger landing: several parts)
    tokenizer: str  # SEEDCODER_TOKENIZER: a local Hugging Face tokenizer for token counts in metadata ("": chars)
    dagster_home: str  # DAGSTER_HOME


def current(environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    get = env.get
    home = get("SEEDCODER_HOME") or str(Path("data").resolve())
    lake = get("SEEDCODER_LAKE_ROOT") or f"{home}/lake"
    executor = get("SEEDCODER_EXECUTOR", "multiprocess")
    return Settings(
        home=home, lake_root=lake, landing_root=get("SEEDCODER_LANDING_ROOT") or f"{home}/landing",
        commits_landing_root=get("SEEDCODER_COMMITS_LANDING_ROOT") or f"{home}/landing-commits",
        web_landing_root=get("SEEDCODER_WEB_LANDING_ROOT") or f"{home}/landing-web",
        index_root=get("SEEDCODER_INDEX_ROOT", ""), local_dir=get("SEEDCODER_LOCAL_DIR") or f"{home}/local",
        catalog=get("SEEDCODER_CATALOG") or f"{home}/catalog.duckdb", duckdb_memory=get("SEEDCODER_DUCKDB_MEMORY", "1GB"),
        model_root=get("SEEDCODER_MODEL_ROOT") or f"{home}/models",
        s3_endpoint_url=get("SEEDCODER_S3_ENDPOINT_URL") or None,
        aws_region=get("AWS_REGION") or get("AWS_DEFAULT_REGION") or None,
        oracle_url=get("SEEDCODER_ORACLE_URL", ""), oracle_model=get("SEEDCODER_ORACLE_MODEL", ""),
        oracle_concurrency=int(get("SEEDCODER_ORACLE_CONCURRENCY", "32")),
        oracle_timeout_s=float(get("SEEDCODER_ORACLE_TIMEOUT_S", "120")),
        oracle_structured=get("SEEDCODER_ORACLE_STRUCTURED", "vllm"),
        oracle_explanation=get("SEEDCODER_ORACLE_EXPLANATION", "1") == "1",
        scorer_backbone=get("SEEDCODER_SCORER_BACKBONE", ""),
        vllm_python=get("SEEDCODER_VLLM_PYTHON") or str(Path(".venv-vllm/bin/python").absolute()),
        executor=executor,
        max_concurrent=int(get("SEEDCODER_MAX_CONCURRENT") or (8 if executor == "k8s" else 2)),
        automation=get("SEEDCODER_AUTOMATION", "off") == "on",
        gpu_node_selector=get("SEEDCODER_GPU_NODE_SELECTOR", "nvidia.com/gpu.present=true"),
        gpu_toleration=get("SEEDCODER_GPU_TOLERATION", "nvidia.com/gpu:NoSchedule"),
        cpu_node_selector=get("SEEDCODER_CPU_NODE_SELECTOR", ""), cpu_toleration=get("SEEDCODER_CPU_TOLERATION", ""),
        sdist_cache=get("SEEDCODER_CACHE") or str(Path.home() / ".cache" / "seedcoder" / "sdists"),
        dagster_home=get("DAGSTER_HOME", ""), tokenizer=get("SEEDCODER_TOKENIZER", ""),
        dedup_engine=get("SEEDCODER_DEDUP_ENGINE", "in-process"), dask_address=get("SEEDCODER_DASK_ADDRESS", ""),
        dask_workers=int(get("SEEDCODER_DASK_WORKERS", "2")),
        shards=int(get("SEEDCODER_SHARDS", "1")), shard_bytes=int(float(get("SEEDCODER_SHARD_BYTES", "16e9"))),
    )


def secret(name: str) -> str | None:
    """A credential named by configuration (e.g. the oracle's API key), read at use time, never stored."""
    return os.environ.get(name) or None
