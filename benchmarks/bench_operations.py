"""Operations: the GitHub branch with every root on S3 vs local disk, and the cost of a new-crawl sensor tick.

    python benchmarks/bench_operations.py [--crawl DIR] [--crawls 2000]

S3 is moto's server in its own process on loopback (no network): it measures the S3 code path
(pyarrow's S3 filesystem, DuckDB httpfs, multipart uploads, listings), not AWS latency. Each
materialization runs in a fresh process, so peak RSS is that run's own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

BUCKET = "bench-lake"
CREDS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _moto() -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **CREDS})
    endpoint = f"http://127.0.0.1:{port}"
    import boto3

    for _ in range(100):
        try:
            boto3.client("s3", endpoint_url=endpoint, **_client_kw()).create_bucket(Bucket=BUCKET)
            return proc, endpoint
        except Exception:  # noqa: BLE001 (not up yet)
            time.sleep(0.1)
    raise RuntimeError("moto_server did not start")


def _client_kw() -> dict[str, str]:
    return {"aws_access_key_id": CREDS["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": CREDS["AWS_SECRET_ACCESS_KEY"],
            "region_name": CREDS["AWS_DEFAULT_REGION"]}


def child(mode: str, home: Path, endpoint: str | None) -> None:
    """One materialization of the GitHub branch in this process; prints its figures as JSON."""
    import dagster as dg
    from dagster_aws.s3 import S3Resource

    from seedcoder_assets.definitions import defs
    from seedcoder_assets.resources.catalog import CatalogResource
    from seedcoder_assets.resources.storage import StorageResource
    from seedcoder_assets.testing.branch import run_github_branch

    if mode == "s3":
        storage = StorageResource(lake_root=f"s3://{BUCKET}/lake", landing_root=f"s3://{BUCKET}/landing",
                                  local_dir=str(home / "local"), s3=S3Resource(endpoint_url=endpoint))
    else:
        storage = StorageResource(lake_root=str(home / "lake"), landing_root=str(home / "landing"),
                                  local_dir=str(home / "local"))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("crawl", ["bench"])
    start = time.perf_counter()
    result = run_github_branch(  # its shard, its dedup, its shard's syntax: the runs a sensor tick leads to
        defs(), instance, "bench",
        resources={"storage": storage, "catalog_db": CatalogResource(database=str(home / "catalog.duckdb"))})
    seconds = time.perf_counter() - start
    assert result.success
    md = {e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
          for e in result.get_asset_materialization_events()}
    print(json.dumps({"mode": mode, "seconds": seconds, "bytes_in": md["ingest/raw_repo_files"]["bytes_in"].value,
                      "files_out": md["filters/syntax_checked_files"]["rows_out"].value,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def materialize(mode: str, crawl: Path, endpoint: str | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        if mode == "s3":
            import boto3

            client = boto3.client("s3", endpoint_url=endpoint, **_client_kw())
            for p in sorted(crawl.rglob("*")):
                if p.is_file():
                    client.upload_file(str(p), BUCKET, f"landing/bench/{p.relative_to(crawl).as_posix()}")
        else:
            shutil.copytree(crawl, home / "landing" / "bench")
        out = subprocess.run([sys.executable, __file__, "--child", mode, "--home", str(home)]
                             + (["--endpoint", endpoint] if endpoint else []),
                             env={**os.environ, **CREDS, "SEEDCODER_EXECUTOR": "in_process"},
                             check=True, capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])


def sensor_ticks(landing: str, n: int, make_dir) -> dict:
    """First tick over n landed crawls, a tick with nothing new, and a tick with one new crawl."""
    from seedcoder_assets.core.ingest.landing import plan_tick

    line = json.dumps({"name": "r", "archive": "r.tar.gz"}) + "\n"
    for i in range(n):
        make_dir(f"crawl-{i:05d}", line)
    t0 = time.perf_counter()
    first = plan_tick(landing, {}, set(), max_new=n)  # every crawl in one tick: the whole cost
    t1 = time.perf_counter()
    second = plan_tick(landing, first.cursor, set(first.register))
    t2 = time.perf_counter()
    make_dir("crawl-new", line)
    third = plan_tick(landing, second.cursor, set(first.register))
    t3 = time.perf_counter()
    assert len(first.register) == n and not second.register and third.register == ["crawl-new"]
    return {"first_s": t1 - t0, "idle_s": t2 - t1, "one_new_s": t3 - t2}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--crawl", type=Path, help="a crawl folder (default: build the small crawl from PyPI)")
    ap.add_argument("--crawls", type=int, default=2000, help="landed crawls for the sensor tick")
    ap.add_argument("--child")
    ap.add_argument("--home", type=Path)
    ap.add_argument("--endpoint")
    a = ap.parse_args()
    if a.child:
        child(a.child, a.home, a.endpoint)
        return

    from seedcoder_assets.core import object_store
    from seedcoder_assets.sample_crawl import build_crawl

    os.environ.update(CREDS)
    proc, endpoint = _moto()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            crawl = a.crawl or build_crawl(Path(tmp) / "small", "small")
            runs = [materialize(mode, crawl, endpoint if mode == "s3" else None) for mode in ("local", "s3")]

            local_landing = Path(tmp) / "landing"

            def local_dir(name: str, text: str) -> None:
                (local_landing / name).mkdir(parents=True, exist_ok=True)
                (local_landing / name / "repos.jsonl").write_text(text)

            ticks = {"local": sensor_ticks(str(local_landing), a.crawls, local_dir)}
            object_store.configure_s3(object_store.S3Settings(endpoint_url=endpoint, access_key="bench",
                                                              secret_key="bench"))

            def s3_dir(name: str, text: str) -> None:
                object_store.write_text(f"s3://{BUCKET}/ticks/{name}/repos.jsonl", text)

            ticks["s3"] = sensor_ticks(f"s3://{BUCKET}/ticks", a.crawls, s3_dir)
    finally:
        proc.terminate()

    lines = ["| roots | the GitHub branch (s) | MB/s of crawl | files out | peak RSS (MB) |", "|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r['mode']} | {r['seconds']:.1f} | {r['bytes_in'] / 1e6 / r['seconds']:.2f} | "
                     f"{r['files_out']} | {r['peak_rss_mb']:.0f} |")
    lines += ["", f"| new-crawl sensor, {a.crawls} landed crawls | first tick (s) | tick, nothing new (s) | "
                  "tick, one new crawl (s) |", "|---|---|---|---|"]
    for where, t in ticks.items():
        lines.append(f"| {where} | {t['first_s']:.2f} | {t['idle_s']:.3f} | {t['one_new_s']:.3f} |")
    table = "\n".join(lines)
    out = HERE / "out" / "operations.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(table + "\n")
    print(table)
    print(json.dumps({"runs": runs, "ticks": ticks}))


if __name__ == "__main__":
    main()
