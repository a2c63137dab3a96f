"""The same pipeline with every root on S3: a real S3 HTTP server (moto) on loopback, configuration alone."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import boto3
import dagster as dg
import pyarrow as pa
import pytest
from dagster_aws.s3 import S3Resource
from moto.server import ThreadedMotoServer

from seedcoder_assets.core import object_store
from seedcoder_assets.core.catalog import catalog
from seedcoder_assets.core.parquet_io import PartWriter, duckdb_source, iter_batches, part_paths
from seedcoder_assets.core.quality.scorer import build_tiny_llama
from seedcoder_assets.definitions import defs
from seedcoder_assets.resources.catalog import CatalogResource
from seedcoder_assets.resources.oracle import OracleResource
from seedcoder_assets.resources.storage import StorageResource
from seedcoder_assets.testing.branch import run_github_branch
from seedcoder_assets.testing.fake_oracle import FakeOracle

BUCKET = "seedcoder-lake"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    with pytest.MonkeyPatch.context() as mp:  # dummy credentials: boto3's default chain finds them
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
        yield endpoint
    server.stop()
    object_store.configure_s3(object_store.S3Settings())


def _upload_tree(client, local: Path, prefix: str) -> int:
    files = [p for p in sorted(local.rglob("*")) if p.is_file()]
    for p in files:
        client.upload_file(str(p), BUCKET, f"{prefix}/{p.relative_to(local).as_posix()}")
    return len(files)


def _keys(client, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def test_parquet_parts_and_duckdb_round_trip_on_s3(s3_endpoint: str) -> None:
    storage = StorageResource(lake_root=f"s3://{BUCKET}/rt", landing_root=f"s3://{BUCKET}/rt-landing",
                              local_dir="/tmp/unused", s3=S3Resource(endpoint_url=s3_endpoint))
    object_store.configure_s3(storage.s3_settings())
    uri = storage.uri(["group", "asset"], "c1")
    schema = pa.schema([("id", pa.string()), ("content", pa.string())])
    with PartWriter(uri, schema, rows_per_part=600) as out:
        for start in range(0, 1500, 300):
            out.write_rows([{"id": f"{i:05d}", "content": "x" * (i % 97)} for i in range(start, start + 300)])
    assert [p.rsplit("/", 1)[1] for p in part_paths(uri)] == ["part-00000.parquet", "part-00001.parquet",
                                                              "part-00002.parquet"]
    assert sum(b.num_rows for b in iter_batches(uri, ["id"])) == 1500
    with object_store.duckdb_connect() as conn:
        n, total = conn.execute(f"SELECT count(*), sum(length(content)) FROM {duckdb_source(uri)}").fetchone()
    assert (n, total) == (1500, sum(i % 97 for i in range(1500)))
    assert object_store.list_dirs(f"s3://{BUCKET}/rt/group/asset") == ["crawl=c1"]
    object_store.write_text(f"s3://{BUCKET}/rt/_x/CURRENT", "v1")
    assert object_store.read_text(f"s3://{BUCKET}/rt/_x/CURRENT") == "v1"
    assert "key=***" in repr(storage.s3_settings()) and "testing" not in repr(storage.s3_settings())


def test_small_real_crawl_materializes_with_every_root_on_s3(s3_endpoint: str, small_crawl: Path,
                                                              tmp_path: Path) -> None:
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    assert _upload_tree(client, small_crawl, "landing/c1") > 20
    storage = StorageResource(
        lake_root=f"s3://{BUCKET}/lake", landing_root=f"s3://{BUCKET}/landing", model_root=f"s3://{BUCKET}/models",
        local_dir=str(tmp_path / "local"), s3=S3Resource(endpoint_url=s3_endpoint))
    resources = {"storage": storage, "catalog_db": CatalogResource(database=str(tmp_path / "catalog.duckdb"))}
    d = defs()
    instance = dg.DagsterInstance.ephemeral()
    # The new-crawl sensor sees the crawl land under the S3 prefix and registers it.
    with dg.build_sensor_context(instance=instance, resources={"storage": storage}) as context:
        tick = d.get_sensor_def("new_crawl_sensor")(context)
    assert [r.partition_key for r in tick.run_requests] == ["c1|000"]
    instance.add_dynamic_partitions("crawl", list(tick.dynamic_partitions_requests[0].partition_keys))

    result = run_github_branch(d, instance, "c1", resources=resources)
    assert result.success
    assert all(e.passed for e in result.get_asset_check_evaluations())
    keys = _keys(client, "lake/")
    for asset in ("ingest/raw_repo_files", "dedup/exact_deduped_files", "filters/syntax_checked_files"):
        assert f"lake/{asset}/crawl=c1/shard-000/_SUCCESS" in keys  # each crawl's shards (here one)
    assert "lake/ingest/raw_repo_files/crawl=c1/_SHARDS" in keys and "lake/_shards/c1.json" in keys
    assert any(k.startswith("lake/lineage/stage=near_deduped_files/crawl=c1/part-") for k in keys)
    # What the crawl kept, as Parquet partitions on S3: the next crawl's pods read them from there.
    assert {f"lake/_index/{t}/crawl=c1/_SUCCESS" for t in ("file_hashes", "file_bands", "file_records", "repo_hashes",
                                                           "repo_bands", "repo_records")} <= set(keys)
    assert not list(tmp_path.glob("**/*.parquet")), "nothing of the lake may land on local disk"

    # The quality branch: label cache, model and its CURRENT pointer all on S3; steps fetch the model.
    texts = (c for b in iter_batches(storage.uri(["filters", "syntax_checked_files"], "c1"), ["content"])
             for c in b.column("content").to_pylist())
    backbone = build_tiny_llama(texts, tmp_path / "tiny-llama")
    config = {"ops": {"quality__oracle_label_sample": {"config": {"quotas": {"Python": 120, "C": 20},
                                                                  "scale": 1.0, "seed": 0}}}}
    scorer_config = {"ops": {"quality__quality_scorer": {"config": {"backbone": str(backbone), "max_tokens": 128,
                                                                    "batch_size": 16, "max_mae": 10.0}}}}
    with FakeOracle(model="judge") as server:
        resources["oracle"] = OracleResource(base_url=server.base_url, model="judge", structured_output="none")
        for job, key, cfg in (("label_sample_job", "c1", config), ("oracle_labels_job", "c1|000", {}),
                              ("scorer_job", None, scorer_config),
                              ("scoring_job", "c1|000", {}), ("corpus_job", "c1", {}), ("catalog_job", None, {})):
            assert d.resolve_job_def(job).execute_in_process(
                resources=resources, instance=instance, partition_key=key, run_config=cfg).success, job
    keys = _keys(client, "")
    assert any(k.startswith("lake/_cache/oracle_labels/model=judge/") for k in keys)
    version = client.get_object(Bucket=BUCKET, Key="models/quality_scorer/CURRENT")["Body"].read().decode()
    assert f"models/quality_scorer/{version}/report.json" in keys
    assert "lake/quality/quality_files/crawl=c1/_SUCCESS" in keys

    # A fresh machine (empty local model cache) fetches the current model from S3.
    fresh = storage.model_copy(update={"local_dir": str(tmp_path / "other")})
    local = fresh.models().current("quality_scorer")
    assert local is not None and local.name == version and (local / "report.json").exists()

    with resources["catalog_db"].connect(storage.lake_root) as conn:
        stages = {r["stage"] for r in catalog.why(conn, "requests/api.py")}
    assert {"raw_repo_files", "exact_deduped_files", "near_deduped_files", "quality_files"} <= stages


def test_dedup_on_dask_workers_reads_and_writes_the_lake_on_s3(s3_endpoint: str, small_crawl: Path,
                                                                tmp_path: Path) -> None:
    """The GitHub branch on S3 in process, then again with both dedup stages on a local Dask cluster whose
    worker processes reach S3 only through the settings the engine gives them: the same outputs."""
    from seedcoder_assets.core.parquet_io import dataset
    from seedcoder_assets.resources.engine import DedupEngineResource

    client = boto3.client("s3", endpoint_url=s3_endpoint)
    _upload_tree(client, small_crawl, "dask/landing/c1")
    storage = StorageResource(lake_root=f"s3://{BUCKET}/dask/lake", landing_root=f"s3://{BUCKET}/dask/landing",
                              local_dir=str(tmp_path / "local"), s3=S3Resource(endpoint_url=s3_endpoint))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("crawl", ["c1"])
    job = defs().resolve_job_def("github_files_job")

    def outputs() -> dict[str, list]:
        out = {}
        for where, cols in (("dedup/exact_deduped_files/crawl=c1", ["id", "sha256"]),
                            ("dedup/near_dup_clusters/crawl=c1", ["id", "survivor", "similarity"]),
                            ("lineage/stage=exact_deduped_files/crawl=c1", ["id", "reason", "survivor"]),
                            ("lineage/stage=near_deduped_files/crawl=c1", ["id", "reason", "survivor"])):
            t = dataset(f"{storage.lake_root}/{where}").to_table(columns=cols)
            out[where] = sorted(zip(*(t[c].to_pylist() for c in cols)), key=str)
        return out

    assert run_github_branch(defs(), instance, "c1", resources={"storage": storage}).success
    in_process = outputs()  # then the per-crawl job again, its dedup on Dask workers
    engine = DedupEngineResource(engine="dask", dask_workers=2, rows_per_unit=500, key_ranges=5)
    result = job.execute_in_process(resources={"storage": storage, "dedup_engine": engine}, instance=instance,
                                    partition_key="c1")
    assert result.success
    md = result.asset_materializations_for_node("dedup__near_dup_clusters")[0].metadata
    assert md["engine"].value == "dask"
    assert outputs() == in_process and len(in_process["dedup/exact_deduped_files/crawl=c1"]) > 500
    assert not [k for k in _keys(client, "dask/lake/_scratch/") if "crawl=" in k], "the workers' data is removed"
