"""Per-stage throughput and peak memory of the GitHub branch on a large real crawl.

    python benchmarks/bench_github_branch.py [--crawl DIR] [--out benchmarks/out]

Builds the large PyPI crawl (~230 sdists, >1 GB of text, many languages) unless --crawl is
given, then runs every stage in its own process on (a) a quarter of the repositories and
(b) the whole crawl, and reports per stage: input MB, wall s, CPU s, MB/s per CPU-second
("per core") and peak RSS. The quarter/full RSS ratio shows whether memory grows with the crawl.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.stages import STAGES  # noqa: E402
from seedcoder_assets.sample_crawl import build_crawl  # noqa: E402


def run_stage(stage: str, home: Path, crawl: str) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(HERE / "stages.py"), stage, "--home", str(home), "--crawl", crawl],
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "POLARS_MAX_THREADS": "2"})
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise RuntimeError(f"stage {stage} failed ({status})")
    figures = json.loads(out.strip().splitlines()[-1])
    cpu = usage.ru_utime + usage.ru_stime
    mb = figures["bytes_in"] / 1e6
    return {"stage": stage, "rows_in": figures["rows_in"], "rows_out": figures["rows_out"], "mb_in": round(mb, 1),
            "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "mb_per_cpu_s": round(mb / cpu, 2) if cpu else None,
            "peak_rss_mb": round(figures["peak_rss_mb"]), "drops": figures.get("drop_reasons")}


def subset_crawl(src: Path, dest: Path, step: int) -> Path:
    """Every `step`-th repository of `src` by archive size rank: about 1/step of the bytes, same mix."""
    dest.mkdir(parents=True, exist_ok=True)
    lines = (src / "repos.jsonl").read_text().splitlines()
    by_size = sorted(lines, key=lambda x: -(src / json.loads(x)["archive"]).stat().st_size)
    keep = by_size[::step]
    for line in keep:
        archive = json.loads(line)["archive"]
        if not (dest / archive).exists():
            os.link(src / archive, dest / archive)
    (dest / "repos.jsonl").write_text("\n".join(keep) + "\n")
    return dest


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--crawl", type=Path)
    ap.add_argument("--out", type=Path, default=HERE / "out")
    ap.add_argument("--work", type=Path, default=HERE / "out" / "work")
    a = ap.parse_args()
    shutil.rmtree(a.work, ignore_errors=True)
    landing = a.work / "landing"
    full = a.crawl or build_crawl(landing / "_source", "large")
    results = {}
    for name, step in (("quarter", 4), ("full", 1)):
        home = a.work / name  # separate index per run: both runs see no earlier crawl
        subset_crawl(full, home / "landing" / name, step)
        results[name] = [run_stage(s, home, name) for s in STAGES]
        for r in results[name]:
            print(json.dumps({"run": name, **r}))
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "github_branch.json").write_text(json.dumps(results, indent=1))
    q_mb, f_mb = results["quarter"][0]["mb_in"], results["full"][0]["mb_in"]
    print(f"\n| stage | MB in | rows in -> out | wall s | MB/s per core | peak RSS MB, {q_mb:.0f} MB crawl "
          f"| peak RSS MB, {f_mb:.0f} MB crawl |")
    print("|---|---|---|---|---|---|---|")
    for q, f in zip(results["quarter"], results["full"]):
        print(f"| {f['stage']} | {f['mb_in']} | {f['rows_in']} -> {f['rows_out']} | {f['wall_s']} | "
              f"{f['mb_per_cpu_s']} | {q['peak_rss_mb']} | {f['peak_rss_mb']} |")


if __name__ == "__main__":
    main()
