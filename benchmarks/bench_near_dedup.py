"""Near dedup on a whole real crawl, three ways, judged against an independent truth.

    python benchmarks/bench_near_dedup.py --files EXACT_DEDUPED_PARTITION --repos CRAWL_REPOS_PARTITION
        [--work DIR] [--scales 1 2 4] [--no-datasketch]

Methods, each in processes of its own with every thread pool pinned to one thread (RAYON, POLARS,
OMP/BLAS, NUMBA, DuckDB), each reading the same Parquet partition and writing its kept files as Parquet
inside its timer:
- ours: the pipeline's three steps (minhash_signatures, near_dup_clusters, near_deduped_files, which also
  writes the crawl's index entries), each in its own process; and the same without the exact check;
- datatrove 0.10.1: its four MinHash stages (ParquetReader of id and text -> signatures -> buckets ->
  clusters -> filter -> ParquetWriter) in one process, with the same 5-grams and 128 hashes in 32 bands
  of 4, and with its own default (14 bands of 8, for a pipeline that verifies nothing);
- datasketch 2.0: MinHashLSH(0.7, 128) streaming: query each file, drop it on a hit (its survivor: the
  kept hit with the highest estimate), else insert.
CPU seconds are the processes' user + system time (interpreter start and imports included, for all).

Truth (benchmarks/near_dedup_truth.py, no code shared with the pipeline): all pairs with exact word
5-gram Jaccard >= 0.7, words by Python's `\\w+`, found by an exact prefix-filter similarity join.
- recall: share of true pairs of which the method did not keep both files;
- precision: share of removed files whose exact Jaccard with the file kept in their place is >= 0.7.

Scales: 1x is the partition; kx adds k-1 perturbed copies of every file (a line of random words
appended), so near duplicates multiply and cross every cluster; peak RSS and CPU-s per GB show how
the cost grows with the data.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import near_dedup_truth as truth_mod  # noqa: E402

from seedcoder_assets.core.parquet_io import PartWriter, iter_batches  # noqa: E402
from seedcoder_assets.core.schemas import FILE_SCHEMA  # noqa: E402

PINNED = {"RAYON_NUM_THREADS": "1", "POLARS_MAX_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
          "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "BENCH_DUCKDB_THREADS": "1", "PYTHONHASHSEED": "0"}
CRAWL = "bench"


def measure(cmd: list[str], env: dict[str, str] | None = None) -> dict:
    """Wall seconds, CPU seconds (user + system) and peak RSS of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env={**os.environ, **PINNED, **(env or {})}, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status:
        raise RuntimeError(f"{cmd} failed with status {status}")
    # Peak RSS is the child's own VmHWM, printed by it: ru_maxrss starts from the parent's RSS at fork.
    return {"wall_s": time.perf_counter() - t0, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_mb": json.loads(out.strip().splitlines()[-1])["peak_rss_mb"], "stdout": out}


def scaled(files: str, dest: Path, k: int) -> Path:
    """The partition plus k-1 copies of every file with a line of random words appended."""
    if k == 1:
        return Path(files)
    if (dest / "_SUCCESS").exists():
        return dest
    rng = random.Random(k)
    words = [f"w{i}" for i in range(5000)]
    with PartWriter(str(dest), FILE_SCHEMA) as out:
        for batch in iter_batches(files, batch_rows=1024):
            out.write_table(batch)
            for c in range(1, k):
                rows = batch.to_pylist()
                for r in rows:
                    r["content"] += "\n# " + " ".join(rng.choices(words, k=12)) + "\n"
                    r["id"] = f"{r['id']}-m{c}"
                    r["repo"] = f"{r['repo']}-mirror{c}"
                out.write_rows(rows)
    return dest


def run_ours(files: Path, repos: str, work: Path, minhash: dict | None = None) -> tuple[dict, dict[str, bool], dict]:
    """The three steps in their own processes; returns figures, kept per id, survivor per removed id."""
    shutil.rmtree(work, ignore_errors=True)
    lake = work / "lake"
    for key, src in ((("dedup", "exact_deduped_files"), files), (("ingest", "crawl_repos"), Path(repos))):
        (lake.joinpath(*key)).mkdir(parents=True)
        os.symlink(src.resolve(), lake.joinpath(*key, f"crawl={CRAWL}"))
    env = {"BENCH_MINHASH": json.dumps(minhash or {})}
    steps = {}
    for stage in ("minhash_signatures", "near_dup_clusters", "near_deduped_files"):
        steps[stage] = measure([sys.executable, str(HERE / "stages.py"), stage, "--home", str(work), "--crawl", CRAWL],
                               env)
        steps[stage]["figures"] = json.loads(steps[stage].pop("stdout").strip().splitlines()[-1])
    kept_ids = set(pq.read_table(lake / "dedup" / "near_deduped_files" / f"crawl={CRAWL}", columns=["id"])["id"]
                   .to_pylist())
    all_ids = pq.read_table(files, columns=["id"])["id"].to_pylist()
    clusters = pq.read_table(lake / "dedup" / "near_dup_clusters" / f"crawl={CRAWL}", columns=["id", "survivor"])
    survivor = {i: s for i, s in zip(clusters["id"].to_pylist(), clusters["survivor"].to_pylist()) if i != s}
    total = {"wall_s": sum(s["wall_s"] for s in steps.values()), "cpu_s": sum(s["cpu_s"] for s in steps.values()),
             "peak_rss_mb": max(s["peak_rss_mb"] for s in steps.values()),
             "steps": {k: {m: round(v[m], 2) for m in ("wall_s", "cpu_s", "peak_rss_mb")} for k, v in steps.items()},
             "clusters": {k: v for k, v in steps["near_dup_clusters"]["figures"].items()
                          if "pair" in k or "round" in k or "read" in k}}
    shutil.rmtree(work, ignore_errors=True)
    return total, {i: i in kept_ids for i in all_ids}, survivor


def run_datatrove(files: Path, work: Path, layout: tuple[int, int] = (32, 4)) -> tuple[dict, dict[str, bool], dict]:
    shutil.rmtree(work, ignore_errors=True)
    python = HERE / ".venv-datatrove" / "bin" / "python"
    fig = measure([str(python), str(HERE / "near_dedup_datatrove.py"), str(files), str(work),
                   "--buckets", str(layout[0]), "--hashes", str(layout[1])])
    fig.pop("stdout")
    kept, cluster = {}, {}
    for line in (work / "assign.jsonl").open():
        d = json.loads(line)
        kept[d["id"]], cluster[d["id"]] = d["kept"], d["cluster"]
    keeper = {c: i for i, c in cluster.items() if kept[i] and c != -1}
    survivor = {i: keeper.get(c) for i, c in cluster.items() if not kept[i]}
    shutil.rmtree(work, ignore_errors=True)
    return fig, kept, survivor


DATASKETCH = """
import json, re, sys
import pyarrow as pa, pyarrow.parquet as pq
from datasketch import MinHash, MinHashLSH
src, dst = sys.argv[1], sys.argv[2]
lsh, kept, out, stored = MinHashLSH(threshold=0.7, num_perm=128), [], {}, {}
for f in sorted(__import__("pathlib").Path(src).glob("*.parquet")):
    for batch in pq.ParquetFile(f).iter_batches(batch_size=1024):
        t = pa.Table.from_batches([batch])
        mask = []
        for id_, text in zip(t["id"].to_pylist(), t["content"].to_pylist()):
            w = re.findall(r"\\w+", text)
            grams = {" ".join(w[i:i + 5]).encode() for i in range(len(w) - 4)} or {" ".join(w).encode()}
            m = MinHash(num_perm=128)
            m.update_batch(list(grams))
            hits = lsh.query(m)
            if hits:  # the survivor is the kept file it resembles most
                out[id_] = max(sorted(hits), key=lambda h: m.jaccard(stored[h]))
            else:
                lsh.insert(id_, m)
                stored[id_] = m
            mask.append(not hits)
        kept.append(t.filter(pa.array(mask)))
pq.write_table(pa.concat_tables(kept), dst + ".parquet")
json.dump(out, open(dst + ".json", "w"))
hwm = next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM:"))
print(json.dumps({"peak_rss_mb": hwm / 1024}))
"""


def run_datasketch(files: Path, work: Path) -> tuple[dict, dict[str, bool], dict]:
    work.mkdir(parents=True, exist_ok=True)
    fig = measure([sys.executable, "-c", DATASKETCH, str(files), str(work / "ds")])
    fig.pop("stdout")
    survivor = json.loads((work / "ds.json").read_text())
    all_ids = pq.read_table(files, columns=["id"])["id"].to_pylist()
    return fig, {i: i not in survivor for i in all_ids}, survivor


def score(truth: dict, index: dict[str, int], kept: dict[str, bool], survivor: dict) -> dict:
    ids = truth["ids"]
    pairs = truth["pairs"]
    both = np.array([kept[ids[a]] and kept[ids[b]] for a, b in pairs.tolist()], bool)
    removed = [i for i, k in kept.items() if not k]
    good = sum(1 for r in removed if survivor.get(r) in index and
               truth_mod.jaccard_of(truth, index, r, survivor[r]) >= truth_mod.THRESHOLD)
    return {"removed": len(removed), "precision": good / len(removed) if removed else 1.0,
            "recall": float(1 - both.mean()) if len(both) else 1.0, "true_pairs": int(len(pairs))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", required=True)
    ap.add_argument("--repos", required=True)
    ap.add_argument("--work", type=Path, default=HERE / "out" / "near_dedup")
    ap.add_argument("--scales", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--no-datasketch", action="store_true")
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    t = truth_mod.load(Path(subprocess.run([sys.executable, str(HERE / "near_dedup_truth.py"), a.files,
                                            str(a.work / "truth")], check=True, capture_output=True, text=True,
                                           env={**os.environ, "PYTHONHASHSEED": "0"}).stdout.strip()))
    index = {i: k for k, i in enumerate(t["ids"].tolist())}
    # Our figures use numba's on-disk cache of compiled kernels (as a built image has it); a cold start
    # compiles them first, once per process and machine.
    warm_up = [sys.executable, "-c", "from seedcoder_assets.core.dedup import minhash; minhash.warm_up(); "
               "print('{\"peak_rss_mb\": 0}')"]
    cold = measure(warm_up, {"NUMBA_CACHE_DIR": str(a.work / "numba_cold")})["cpu_s"]
    shutil.rmtree(a.work / "numba_cold", ignore_errors=True)
    warm = measure(warm_up)["cpu_s"]
    rows = []
    for k in a.scales:
        files = scaled(a.files, a.work / f"input_{k}x", k)
        mb = sum(pc.sum(pc.binary_length(b.column("content"))).as_py() for b in iter_batches(str(files), ["content"])) / 1e6
        methods = {"ours": lambda f=files: run_ours(f, a.repos, a.work / "ours"),
                   "ours, no exact check": lambda f=files: run_ours(f, a.repos, a.work / "ours", {"exact_margin": 0.0}),
                   "datatrove": lambda f=files: run_datatrove(f, a.work / "datatrove")}
        if k == 1:  # datatrove's own default layout, tuned for a pipeline without a verification step
            methods["datatrove, its default 14x8"] = lambda f=files: run_datatrove(f, a.work / "datatrove", (14, 8))
        if k == 1 and not a.no_datasketch:
            methods["datasketch"] = lambda f=files: run_datasketch(f, a.work / "datasketch")
        for name, fn in methods.items():
            if k > 1 and name == "ours, no exact check":
                continue
            fig, kept, survivor = fn()
            row = {"method": name, "scale": f"{k}x", "files": len(kept), "mb": round(mb), **fig}
            if k == 1:
                row.update(score(t, index, kept, survivor))
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    (a.work / "results.json").write_text(json.dumps(rows, indent=1))
    base = {r["scale"]: r["cpu_s"] for r in rows if r["method"] == "datatrove"}
    print(f"{int(t['pairs'].shape[0])} true pairs (exact word 5-gram Jaccard >= 0.7) among {len(t['ids'])} files\n")
    print("| method | scale | files | MB | wall s | CPU s | MB per CPU-s | datatrove CPU-s / ours | peak RSS MB "
          "| removed | precision | recall |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = base.get(r["scale"], float("nan")) / r["cpu_s"]
        q = (f"{r['removed']} | {r['precision']:.3f} | {r['recall']:.3f}" if "precision" in r else "– | – | –")
        print(f"| {r['method']} | {r['scale']} | {r['files']} | {r['mb']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | "
              f"{r['mb'] / r['cpu_s']:.1f} | {ratio:.1f} | {r['peak_rss_mb']:.0f} | {q} |")
    print(f"\nnumba kernels, a process that loads them: {warm:.2f} CPU-s from the cache, {cold:.2f} CPU-s compiling "
          "them cold")
    print("\nour steps (wall s, CPU s, peak RSS MB):")
    for r in rows:
        if "steps" in r:
            print(f"- {r['method']} {r['scale']}: " + ", ".join(
                f"{s} {v['wall_s']}/{v['cpu_s']}/{v['peak_rss_mb']:.0f}" for s, v in r["steps"].items())
                  + f"; {r['clusters']}")


if __name__ == "__main__":
    main()
