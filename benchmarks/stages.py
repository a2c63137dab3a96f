"""Run one GitHub-branch stage on one crawl, as the assets do, so a benchmark can time it alone.

    python benchmarks/stages.py STAGE --home DIR --crawl NAME [--prior CRAWL ...]

Prints the stage's figures as one JSON line. The stage is the declared one (core/pipeline.py), run by
`pipeline.run` exactly as its Dagster asset runs it, with the core's default parameters.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from seedcoder_assets.core import pipeline
from seedcoder_assets.core.dedup.engine import DaskEngine, EngineParams
from seedcoder_assets.core.dedup.minhash import MinHashParams
from seedcoder_assets.core.dedup.params import DedupParams
from seedcoder_assets.core.stage_run import StageRun

# The GitHub branch's stages in pipeline order, by asset name: per shard (ingest, language), per crawl
# (dedup), the syntax check.
BRANCH_JOBS = (pipeline.SHARDS, pipeline.GITHUB, pipeline.SYNTAX)
DECLARED = {s.name: s for s in pipeline.STAGES if s.job in BRANCH_JOBS}
STAGES = list(DECLARED)


def _engine() -> DaskEngine | None:
    """BENCH_DASK='{"workers": 2, "rows_per_unit": ..., "key_ranges": ...}': a local Dask cluster."""
    spec = json.loads(os.environ.get("BENCH_DASK", "null"))
    if spec is None:
        return None
    params = EngineParams(**{k: spec[k] for k in ("rows_per_unit", "key_ranges") if k in spec})
    return DaskEngine(workers=spec["workers"], memory_limit=spec.get("memory_limit", "4GiB"), params=params)


def run(stage: str, home: str, crawl: str, prior: list[str]) -> dict:
    # Benchmarks may override the MinHash parameters (JSON), pin DuckDB to one thread, use Dask.
    threads = os.environ.get("BENCH_DUCKDB_THREADS")
    r = StageRun(f"{home}/lake", crawl, "bench", landing=f"{home}/landing", prior=tuple(prior),
                 duckdb_threads=int(threads) if threads else None, temp_dir=f"{home}/duckdb_tmp", engine=_engine())
    declared = DECLARED[stage]
    params = None
    if declared.params is DedupParams:
        params = DedupParams(minhash=MinHashParams(**json.loads(os.environ.get("BENCH_MINHASH", "{}"))))
    stats = pipeline.run(declared, r, params)
    return {"stage": stage, **stats.as_metadata()}


class WorkerSampler:
    """Peak RSS and CPU seconds of every child process (the local cluster's workers), sampled every 0.1 s."""

    def __init__(self) -> None:
        import threading

        import psutil

        self.me, self.peak, self.cpu = psutil.Process(), {}, {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.done.wait(0.1):
            for child in self.me.children(recursive=True):
                try:
                    self.peak[child.pid] = max(self.peak.get(child.pid, 0), child.memory_info().rss)
                    t = child.cpu_times()
                    self.cpu[child.pid] = t.user + t.system
                except Exception:  # exited between listing and reading
                    continue

    def stop(self) -> dict:
        self.done.set()
        self.thread.join()
        return {"worker_peak_rss_mb": sorted(round(v / 2**20) for v in self.peak.values()),
                "worker_cpu_s_sampled": round(sum(self.cpu.values()), 2)}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("stage", choices=STAGES)
    ap.add_argument("--home", required=True)
    ap.add_argument("--crawl", required=True)
    ap.add_argument("--prior", nargs="*", default=[])
    a = ap.parse_args()
    workers = WorkerSampler() if os.environ.get("BENCH_DASK") else None
    figures = run(a.stage, a.home, a.crawl, a.prior)
    if workers is not None:
        figures.update(workers.stop())
    figures["peak_rss_mb"] = next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM:")) / 1024
    print(json.dumps(figures, default=str))
    sys.stdout.flush()
