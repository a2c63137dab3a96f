"""Near dedup past one process: the in-process path against Dask with 1, 2 and 4 workers, as data grows.

    python benchmarks/bench_distributed_dedup.py --files EXACT_DEDUPED_PARTITION --repos CRAWL_REPOS_PARTITION
        [--work DIR] [--scales 4 16] [--workers 1 2 4]

Data: the large real crawl's files are the *history* (an earlier crawl, deduplicated and indexed by the
pipeline's own steps). At scale k the *new* crawl is k-1 perturbed copies of every file: 15% lightly
edited (5 words replaced: near duplicates of their original in the history and of each other, in other
shards of the crawl), the rest heavily (every 4th word replaced: no 5-gram survives, new files of the
same sizes and vocabulary). So near duplicates cross shards and crawls, and the work grows with k.

Per scale, the new crawl's signatures are computed once (a per-record stage, reported apart); then the
near_dup_clusters stage runs on it against the history, each configuration in a fresh process
(benchmarks/stages.py, exactly as the asset runs it) with thread pools pinned to one thread:
in-process, and its candidate join fanned out on a local Dask cluster of 1, 2 and 4 worker processes.
CPU seconds are the process's and its reaped children's (the workers'), from wait4; peak RSS per worker
is sampled. Every configuration's clusters are compared with the in-process ones (content digest).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from seedcoder_assets.core.parquet_io import PartWriter, iter_batches  # noqa: E402
from seedcoder_assets.core.schemas import FILE_SCHEMA  # noqa: E402

PINNED = {"RAYON_NUM_THREADS": "1", "POLARS_MAX_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
          "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "BENCH_DUCKDB_THREADS": "1", "PYTHONHASHSEED": "0"}
LIGHT_SHARE = 0.15


def stage(name: str, home: Path, crawl: str, prior: list[str], env: dict | None = None) -> dict:
    """One declared stage in a fresh process: its figures, wall and CPU seconds (with reaped children)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(HERE / "stages.py"), name, "--home", str(home), "--crawl", crawl,
                             "--prior", *prior], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, **PINNED, **(env or {})})
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status:
        raise RuntimeError(f"{name} on {crawl} failed ({status})")
    figures = json.loads(out.strip().splitlines()[-1])
    return {"wall_s": time.perf_counter() - t0, "cpu_s": usage.ru_utime + usage.ru_stime, **figures}


def perturbed(text: str, rng: random.Random, light: bool) -> str:
    words = text.split(" ")
    if light:
        for pos in rng.sample(range(len(words)), min(5, len(words))):
            words[pos] = f"edit{rng.randrange(10**6)}"
    else:
        words[::4] = [f"tok{rng.randrange(10**6)}" for _ in range(len(words[::4]))]
    return " ".join(words)


def grow(files: str, dest: Path, copies: int, light_share: float) -> int:
    """`copies` perturbed copies of every file as one partition; returns its content bytes."""
    if (dest / "_SUCCESS").exists():
        return int((dest / "_BYTES").read_text())
    rng = random.Random(copies)
    total = 0
    with PartWriter(str(dest), FILE_SCHEMA) as out:
        for c in range(1, copies + 1):
            for batch in iter_batches(files, batch_rows=1024):
                rows = batch.to_pylist()
                for r in rows:
                    r["content"] = perturbed(r["content"], rng, rng.random() < light_share)
                    r["id"] = f"{r['id']}~copy{c}"
                    r["crawl"] = "new"
                    total += len(r["content"].encode())
                out.write_rows(rows)
    (dest / "_BYTES").write_text(str(total))
    return total


def link(lake: Path, key: tuple[str, str], crawl: str, src: Path) -> None:
    target = lake.joinpath(*key, f"crawl={crawl}")
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        os.symlink(src.resolve(), target)


def digest(part: Path) -> str:
    """Content digest of a cluster partition: every member's cluster, survivor, similarity and earlier crawl."""
    cols = ["id", "cluster", "survivor", "similarity", "prior_crawl"]
    t = pq.read_table(part, columns=cols).sort_by([("id", "ascending")])
    values = [pc.cast(t[c], pa.string()).fill_null("-").to_pylist() for c in cols]
    return hashlib.sha256("\x00".join(v for row in zip(*values) for v in row).encode()).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", required=True, help="an exact_deduped_files partition (the history's files)")
    ap.add_argument("--repos", required=True, help="its crawl_repos partition")
    ap.add_argument("--work", default="/tmp/bench_distributed_dedup")
    ap.add_argument("--scales", type=int, nargs="+", default=[4, 16])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--light-per-original", type=float, default=None,
                    help="hold duplicate density constant: this many light copies per original at every scale "
                         "(the light share becomes it / (k-1)); default: 15%% of the copies are light")
    ap.add_argument("--out", default=None, help="also write the JSON results here")
    a = ap.parse_args()
    work = Path(a.work)
    results = []
    for k in a.scales:
        light_share = LIGHT_SHARE if a.light_per_original is None else a.light_per_original / (k - 1)
        home = work / (f"x{k}" if a.light_per_original is None else f"x{k}-light{a.light_per_original:g}")
        lake = home / "lake"
        link(lake, ("dedup", "exact_deduped_files"), "history", Path(a.files))
        link(lake, ("ingest", "crawl_repos"), "history", Path(a.repos))
        link(lake, ("ingest", "crawl_repos"), "new", Path(a.repos))
        t0 = time.perf_counter()
        new_bytes = grow(a.files, lake / "dedup" / "exact_deduped_files" / "crawl=new", k - 1, light_share)
        prepare_s = time.perf_counter() - t0
        if not (lake / "dedup" / "near_deduped_files" / "crawl=history" / "_SUCCESS").exists():
            for name in ("minhash_signatures", "near_dup_clusters", "near_deduped_files"):  # the history's index
                stage(name, home, "history", [])
        sig = stage("minhash_signatures", home, "new", [])
        clusters = lake / "dedup" / "near_dup_clusters" / "crawl=new"
        reference = None
        for workers in [0, *a.workers]:
            env = {"BENCH_DASK": json.dumps({"workers": workers, "memory_limit": "5GiB"})} if workers else {}
            r = stage("near_dup_clusters", home, "new", ["history"], env)
            d = digest(clusters)
            reference = reference or d
            row = {"scale": k, "light_copies_per_original": light_share * (k - 1), "engine": f"dask x{workers}" if workers else "in-process", "files": r["rows_in"],
                   "gb": new_bytes / 1e9, "wall_s": r["wall_s"], "cpu_s": r["cpu_s"],
                   "cpu_s_per_gb": r["cpu_s"] / (new_bytes / 1e9), "driver_peak_rss_mb": r["peak_rss_mb"],
                   "worker_peak_rss_mb": max(r.get("worker_peak_rss_mb", []), default=0),
                   "worker_cpu_s_sampled": r.get("worker_cpu_s_sampled"), "same_clusters": d == reference,
                   "cluster_rows": r["rows_out"], "prior_matches": r["prior_crawl_matches"],
                   "candidate_pairs": r["candidate_pairs"], **{f"phase_{k}": v for k, v in r["seconds"].items()}, "signatures_cpu_s": sig["cpu_s"], "prepare_s": prepare_s}
            results.append(row)
            print(json.dumps(row), flush=True)
            if not row["same_clusters"]:
                raise SystemExit(f"{row['engine']} at {k}x gave other clusters than the in-process path")
        shutil.rmtree(home / "duckdb_tmp", ignore_errors=True)
    if a.out:
        Path(a.out).write_text(json.dumps(results, indent=1))
    print("\n| scale | light copies per original | new crawl GB | files | engine | wall s | CPU s | CPU s per GB | candidates s (Dask: with all "
          "exact checks) | exact checks of earlier-crawl matches in the step s | clustering in the step s "
          "| step peak RSS MB | peak RSS per worker MB | same clusters |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['scale']}x | {r['light_copies_per_original']:.2f} | {r['gb']:.2f} | {r['files']:,} | {r['engine']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} "
              f"| {r['cpu_s_per_gb']:.1f} | {r['phase_candidates_s']:.1f} | {r['phase_prior_exact_check_s']:.1f} "
              f"| {r['phase_clustering_s']:.1f} | {r['driver_peak_rss_mb']:.0f} | {r['worker_peak_rss_mb'] or '–'} "
              f"| {'yes' if r['same_clusters'] else 'NO'} |")


if __name__ == "__main__":
    main()
