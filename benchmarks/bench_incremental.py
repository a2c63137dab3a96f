"""Cost of adding a crawl: crawl k alone, and after histories of 1x, 2x and 4x its size.

    python benchmarks/bench_incremental.py --crawl LARGE_CRAWL_DIR [--work DIR]

The large crawl's repositories are split by project (a release's name without its version): crawl k
takes every 8th project, the history pool the rest, so no project is shared between crawl k and any
history. Histories of 1x, 2x and 4x crawl k's archive bytes are drawn from the pool. For each size, a
fresh home runs the history crawl through the dedup stages, then crawl k registered after it; every
stage of crawl k runs in a fresh process (CPU seconds from the process, thread pools pinned to one
thread). The history's index entries are Parquet per crawl, read as keys (no content): the probe
of crawl k scans them, so the figures show what that scan costs as the history grows, and, with the 4x
history registered as 8 crawls, what each further crawl of history costs (more partitions to open).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PINNED = {"RAYON_NUM_THREADS": "1", "POLARS_MAX_THREADS": "1", "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1",
          "BENCH_DUCKDB_THREADS": "1"}
STAGES = ["raw_repo_files", "code_files", "deduped_repos", "exact_deduped_files", "minhash_signatures",
          "near_dup_clusters", "near_deduped_files"]
DEDUP = ["deduped_repos", "exact_deduped_files", "near_dup_clusters", "near_deduped_files"]  # they read the history


def project(name: str) -> str:
    return re.sub(r"-v?\d+(\.\d+)*([a-z]+\d*)?$", "", name)


def split(crawl: Path) -> tuple[list[dict], list[dict]]:
    entries = [json.loads(x) for x in (crawl / "repos.jsonl").read_text().splitlines()]
    projects = sorted({project(e["name"]) for e in entries})
    chosen = set(projects[::8])
    return [e for e in entries if project(e["name"]) in chosen], [e for e in entries if project(e["name"]) not in chosen]


def size(crawl: Path, entries: list[dict]) -> int:
    return sum((crawl / e["archive"]).stat().st_size for e in entries)


def lay_out(crawl: Path, entries: list[dict], dest: Path) -> None:
    dest.mkdir(parents=True)
    for e in entries:
        os.link(crawl / e["archive"], dest / e["archive"])
    (dest / "repos.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))


def stage(name: str, home: Path, crawl: str, prior: list[str]) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(HERE / "stages.py"), name, "--home", str(home), "--crawl", crawl,
                             "--prior", *prior], stdout=subprocess.PIPE, text=True, env={**os.environ, **PINNED})
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status:
        raise RuntimeError(f"{name} on {crawl} failed")
    figures = json.loads(out.strip().splitlines()[-1])
    return {"wall_s": time.perf_counter() - t0, "cpu_s": usage.ru_utime + usage.ru_stime,
            "rows_in": figures["rows_in"], "drops": figures.get("drop_reasons", {})}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--crawl", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=HERE / "out" / "incremental")
    a = ap.parse_args()
    shutil.rmtree(a.work, ignore_errors=True)
    new, pool = split(a.crawl)
    new_bytes = size(a.crawl, new)
    results: dict[str, dict] = {}
    # (label, history size in crawl k's bytes, how many crawls the history is registered as)
    for label, multiple, pieces in (("0x", 0, 0), ("1x", 1, 1), ("2x", 2, 1), ("4x", 4, 1), ("4x in 8", 4, 8)):
        home = a.work / label.replace(" ", "_")
        lay_out(a.crawl, new, home / "landing" / "k")
        prior: list[str] = []
        history_bytes = 0
        if multiple:
            picked, total = [], 0
            for e in pool:  # the pool in manifest order, until the history is `multiple` x crawl k
                if total >= multiple * new_bytes:
                    break
                picked.append(e)
                total += (a.crawl / e["archive"]).stat().st_size
            for i in range(pieces):
                name = f"history{i}"
                lay_out(a.crawl, picked[i::pieces], home / "landing" / name)
                for s in STAGES:
                    stage(s, home, name, list(prior))
                prior.append(name)
            history_bytes = total
        results[label] = {"history_mb": history_bytes / 1e6, **{s: stage(s, home, "k", prior) for s in STAGES}}
        print(json.dumps({label: {s: round(v["cpu_s"], 2) for s, v in results[label].items()
                                  if isinstance(v, dict)}}), file=sys.stderr, flush=True)
        shutil.rmtree(home)
    a.work.mkdir(parents=True, exist_ok=True)
    (a.work / "results.json").write_text(json.dumps(results, indent=1))
    print(f"crawl k: {len(new)} repositories, {new_bytes / 1e6:.0f} MB of archives; no project in any history\n")
    labels = list(results)
    print("| stage (CPU s, one thread) | alone | after 1x history | after 2x | after 4x | after 4x in 8 crawls |")
    print("|---|---|---|---|---|---|")
    for s in STAGES:
        print(f"| {s} | " + " | ".join(f"{results[k][s]['cpu_s']:.2f}" for k in labels) + " |")
    print("| history archives (MB) | " + " | ".join(f"{results[k]['history_mb']:.0f}" for k in labels) + " |")
    drops = {k: {s: results[k][s]["drops"] for s in DEDUP} for k in results}
    print("\ndrops of crawl k per history (no project shared, so cross-crawl drops are vendored or shared code):")
    print(json.dumps(drops))


if __name__ == "__main__":
    main()
