"""What Dagster's UI, sensors and backfills cost with thousands of partitions, on this project's code location.

    python benchmarks/bench_dagster_partitions.py [--counts 1000 10000] [--shards 1] [--daemon-seconds 240]

For each count N, a fresh instance (SQLite under a temporary DAGSTER_HOME, as `dagster dev` uses) gets N
partitions of the `crawl` dimension, so the per-shard assets (crawl x shard, SEEDCODER_SHARDS=--shards)
have N x shards partitions, and a materialization of the first per-crawl asset for half of the crawls and
of the first per-shard asset for half of the shards. Then, with the real code location
(seedcoder_assets.definitions):
- registration: `add_dynamic_partitions` of the N keys (what the new-crawl sensor's request does);
- UI: a `dagster-webserver` on loopback answers the GraphQL queries behind the asset graph's partition
  counts (every asset), the partition bar of a per-crawl and of a per-shard asset, and the partition keys
  of the per-crawl and the per-shard GitHub job (median of 3, after one warm-up);
- sensors: one tick of the new-crawl sensor with nothing new (it reads every registered key) and one
  evaluation of the declared automation conditions (what the automation sensor runs each tick);
- backfill: launching a backfill of the per-shard GitHub job's assets over all N x shards partitions,
  then `dagster-daemon run` for --daemon-seconds with runs held in the queue (max_concurrent_runs: 0, so
  nothing executes): seconds to the first run and runs submitted per second.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
LOCATION = "seedcoder_assets.definitions"
BIN = Path(sys.executable).parent

GRAPH = """query { assetNodes { assetKey { path } partitionStats { numMaterialized numPartitions numFailed
  numMaterializing } } }"""
BAR = """query($k: AssetKeyInput!) { assetNodeOrError(assetKey: $k) { ... on AssetNode { assetPartitionStatuses {
  __typename ... on DefaultPartitionStatuses { materializedPartitions failedPartitions materializingPartitions
  unmaterializedPartitions } } } } }"""
KEYS = """query($s: PipelineSelector!) { pipelineOrError(params: $s) { ... on Pipeline { partitionKeysOrError {
  ... on PartitionKeys { partitionKeys } } } } }"""
BACKFILL = """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) { __typename
  ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gql(url: str, query: str, variables: dict | None = None) -> tuple[float, dict]:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(f"{url}/graphql", body, {"Content-Type": "application/json"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as reply:
        out = json.loads(reply.read())
    if out.get("errors"):
        raise RuntimeError(out["errors"])
    return time.perf_counter() - t0, out["data"]


def _median(url: str, query: str, variables: dict | None = None) -> float:
    _gql(url, query, variables)  # warm-up: the location's first load
    return statistics.median(_gql(url, query, variables)[0] for _ in range(3))


def _start(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    # started in its own session with SIGINT restored: dagster processes ignore SIGTERM otherwise (PACKAGES.md)
    return subprocess.Popen(cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def child(n: int, home: Path, daemon_seconds: int, shards: int) -> dict:
    """Everything for one count, in a process whose DAGSTER_HOME is `home`."""
    import dagster as dg

    from seedcoder_assets.core import pipeline
    from seedcoder_assets.definitions import defs
    from seedcoder_assets.defs.automation.sensors import new_crawl_sensor
    from seedcoder_assets.resources.storage import StorageResource

    out: dict = {"partitions": n, "shards": shards, "shard_partitions": n * shards}
    instance = dg.DagsterInstance.get()
    keys = [f"crawl-2026-12~{i:05d}" for i in range(n)]
    t0 = time.perf_counter()
    instance.add_dynamic_partitions("crawl", keys)
    out["register_s"] = time.perf_counter() - t0
    first = dg.AssetKey(list(pipeline.DEDUPED_REPOS))  # the first per-crawl asset
    for k in keys[: n // 2]:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=first, partition=k))
    shard_keys = [f"{k}|{s:03d}" for k in keys for s in range(shards)]
    for k in shard_keys[: len(shard_keys) // 2]:  # the first per-shard asset
        instance.report_runless_asset_event(dg.AssetMaterialization(
            asset_key=dg.AssetKey(list(pipeline.RAW_REPO_FILES)), partition=k))

    landing = home / "landing"
    landing.mkdir()
    storage = StorageResource(lake_root=str(home / "lake"), landing_root=str(landing), local_dir=str(home / "local"))
    with dg.build_sensor_context(instance=instance, resources={"storage": storage}) as ctx:
        t0 = time.perf_counter()
        new_crawl_sensor(ctx)
        out["new_crawl_sensor_tick_s"] = time.perf_counter() - t0
    d = defs()
    t0 = time.perf_counter()
    dg.evaluate_automation_conditions(defs=d, instance=instance)
    out["automation_tick_s"] = time.perf_counter() - t0

    env = {**os.environ, "DAGSTER_HOME": str(home)}
    port = _port()
    url = f"http://127.0.0.1:{port}"
    web = _start([str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-m", LOCATION], env,
                 home / "webserver.log")
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=2):
                    break
            except OSError:
                if web.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((home / "webserver.log").read_text()[-3000:]) from None
                time.sleep(1)
        out["ui_asset_graph_partition_counts_s"] = _median(url, GRAPH)
        out["ui_partition_bar_s"] = _median(url, BAR, {"k": {"path": list(pipeline.DEDUPED_REPOS)}})
        selector = {"repositoryLocationName": LOCATION, "repositoryName": "__repository__",
                    "pipelineName": pipeline.GITHUB}
        out["ui_job_partition_keys_s"] = _median(url, KEYS, {"s": selector})
        listed = _gql(url, KEYS, {"s": selector})[1]["pipelineOrError"]["partitionKeysOrError"]["partitionKeys"]
        assert len(listed) == n, f"the job lists {len(listed)} partitions, not {n}"
        out["ui_shard_partition_bar_s"] = _median(url, BAR, {"k": {"path": list(pipeline.RAW_REPO_FILES)}})
        shard_job = {**selector, "pipelineName": pipeline.SHARDS}
        out["ui_shard_job_partition_keys_s"] = _median(url, KEYS, {"s": shard_job})
        listed = _gql(url, KEYS, {"s": shard_job})[1]["pipelineOrError"]["partitionKeysOrError"]["partitionKeys"]
        assert len(listed) == n * shards, f"the shard job lists {len(listed)} partitions, not {n * shards}"
        assets = [{"path": list(k)} for k in pipeline.job_assets(pipeline.SHARDS)]
        took, data = _gql(url, BACKFILL, {"p": {"partitionNames": shard_keys, "assetSelection": assets,
                                                "fromFailure": False}})
        if data["launchPartitionBackfill"]["__typename"] != "LaunchBackfillSuccess":
            raise RuntimeError(data)
        out["backfill_launch_s"] = took
    finally:
        _stop(web)
    daemon = _start([str(BIN / "dagster-daemon"), "run", "-m", LOCATION], env, home / "daemon.log")
    t0, first_run, runs = time.monotonic(), None, 0
    try:
        while time.monotonic() - t0 < daemon_seconds:
            time.sleep(2)
            runs = instance.get_runs_count()
            if runs and first_run is None:
                first_run = time.monotonic() - t0
            if runs >= n * shards:
                break
    finally:
        _stop(daemon)
    elapsed = time.monotonic() - t0
    out.update(backfill_first_run_s=first_run, backfill_runs_submitted=runs, backfill_daemon_s=elapsed,
               backfill_runs_per_s=runs / (elapsed - (first_run or 0)) if runs else 0.0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--counts", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--daemon-seconds", type=int, default=240)
    ap.add_argument("--shards", type=int, default=1, help="SEEDCODER_SHARDS: shard slots per crawl")
    ap.add_argument("--child", type=int)
    ap.add_argument("--home")
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child, Path(a.home), a.daemon_seconds, a.shards)))
        return
    rows = []
    for n in a.counts:
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp)
            (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nrun_queue:\n  max_concurrent_runs: 0\n")
            out = subprocess.run([sys.executable, __file__, "--child", str(n), "--home", str(home),
                                  "--daemon-seconds", str(a.daemon_seconds), "--shards", str(a.shards)],
                                 env={**os.environ, "DAGSTER_HOME": str(home), "SEEDCODER_SHARDS": str(a.shards)},
                                 capture_output=True, text=True)
            if out.returncode:
                raise RuntimeError(out.stderr[-3000:])
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    print("\n| crawls | shards each | shard partitions | register s | asset graph counts s | partition bar s "
          "(crawl / shard asset) | job partition keys s (crawl / shard job) | new-crawl sensor tick s "
          "| automation tick s | shard backfill launch s | first run s | runs per s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['partitions']:,} | {r['shards']} | {r['shard_partitions']:,} | {r['register_s']:.2f} "
              f"| {r['ui_asset_graph_partition_counts_s']:.2f} | {r['ui_partition_bar_s']:.2f} / "
              f"{r['ui_shard_partition_bar_s']:.2f} | {r['ui_job_partition_keys_s']:.2f} / "
              f"{r['ui_shard_job_partition_keys_s']:.2f} | {r['new_crawl_sensor_tick_s']:.2f} "
              f"| {r['automation_tick_s']:.2f} | {r['backfill_launch_s']:.2f} | {r['backfill_first_run_s'] or 0:.0f} "
              f"| {r['backfill_runs_per_s']:.1f} |")


if __name__ == "__main__":
    main()
