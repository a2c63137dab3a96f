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
from seedcoder_assets.core.dedup.minhash import MinHashParams
from seedcoder_assets.core.dedup.params import DedupParams
from seedcoder_assets.core.stage_run import StageRun

# The GitHub branch's stages in pipeline order, by asset name.
DECLARED = {s.name: s for s in pipeline.STAGES if s.job == pipeline.GITHUB}
STAGES = list(DECLARED)


def run(stage: str, home: str, crawl: str, prior: list[str]) -> dict:
    # Benchmarks may override the MinHash parameters (JSON) and pin DuckDB to one thread.
    threads = os.environ.get("BENCH_DUCKDB_THREADS")
    r = StageRun(f"{home}/lake", crawl, "bench", landing=f"{home}/landing", prior=tuple(prior),
                 duckdb_threads=int(threads) if threads else None, temp_dir=f"{home}/duckdb_tmp")
    declared = DECLARED[stage]
    params = None
    if declared.params is DedupParams:
        params = DedupParams(minhash=MinHashParams(**json.loads(os.environ.get("BENCH_MINHASH", "{}"))))
    stats = pipeline.run(declared, r, params)
    return {"stage": stage, **stats.as_metadata()}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("stage", choices=STAGES)
    ap.add_argument("--home", required=True)
    ap.add_argument("--crawl", required=True)
    ap.add_argument("--prior", nargs="*", default=[])
    a = ap.parse_args()
    figures = run(a.stage, a.home, a.crawl, a.prior)
    figures["peak_rss_mb"] = next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM:")) / 1024
    print(json.dumps(figures, default=str))
    sys.stdout.flush()
