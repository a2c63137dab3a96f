"""Near dedup, three ways, same real input: ours (vectorised shingles + rensa MinHash + verified star
clusters), datasketch MinHashLSH, and datatrove's 4-stage MinHash pipeline.

    python benchmarks/bench_near_dedup.py --files LAKE_PARTITION [--n 20000]

LAKE_PARTITION is a partition of files (e.g. dedup/exact_deduped_files of the large crawl, as
bench_github_branch.py leaves it). Each method runs in its own process (throughput per core,
peak RSS). Quality is measured against exact Jaccard of word 5-gram sets:
- true pairs: pairs with exact Jaccard >= 0.7, found among all pairs of a very-high-recall LSH
  (256 permutations, 128 bands x 2 rows) whose estimate is >= 0.5, plus every pair any method declared;
- recall: share of true pairs of which the method did not keep both files;
- precision: share of removed files whose exact Jaccard with the file kept in their place is >= 0.7;
- cluster precision: share of same-cluster pairs with exact Jaccard >= 0.7 (chaining shows here).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from seedcoder_assets.core.dedup import minhash  # noqa: E402
from seedcoder_assets.core.parquet_io import sample_rows  # noqa: E402

THRESHOLD = 0.7
SWEEP = [(128, 16, 8), (128, 64, 2), (64, 16, 4), (256, 64, 4)]


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.open()]


# -- the three methods (each runs in a child process: `--method NAME`) ---------------------------
def run_ours(docs: list[dict], files_uri: str | None = None, overrides: dict | None = None) -> list[dict]:
    import pyarrow as pa

    from seedcoder_assets.core.dedup.exact import connect
    from seedcoder_assets.core.dedup.index import DedupIndex
    from seedcoder_assets.core.dedup.near import near_clusters
    from seedcoder_assets.core.dedup.survivor import SurvivorRule

    p = minhash.MinHashParams(**(overrides or {}))
    docs = sorted(docs, key=lambda d: d["id"])
    ids = [d["id"] for d in docs]
    parts = [minhash.signatures([d["text"] for d in docs[i:i + 1024]], p) for i in range(0, len(docs), 1024)]
    sigs = np.concatenate([s for s, _ in parts])
    counts = np.concatenate([c for _, c in parts])
    meta = pa.table({"id": ids, "repo": ids, "path": ids, "stars": [None] * len(ids), "pushed_at": [None] * len(ids)},
                    schema=pa.schema([("id", pa.string()), ("repo", pa.string()), ("path", pa.string()),
                                      ("stars", pa.int64()), ("pushed_at", pa.string())]))
    with tempfile.TemporaryDirectory() as tmp, DedupIndex(f"{tmp}/i.sqlite") as index:
        table, _ = near_clusters("file", "bench", ids, sigs, counts, meta, p, SurvivorRule.lexical, index, [],
                                 connect(), files_uri=files_uri)
    surv = {r["id"]: r["survivor"] for r in table.to_pylist()}
    return [{"id": i, "cluster": surv.get(i, i), "kept": surv.get(i, i) == i} for i in ids]


def run_datasketch(docs: list[dict]) -> list[dict]:
    import re

    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=128)
    out = []
    for d in docs:  # the usual streaming use: query, drop on a hit, else insert
        w = re.findall(r"\w+", d["text"])
        grams = {" ".join(w[i:i + 5]).encode() for i in range(len(w) - 4)} or {" ".join(w).encode()}
        m = MinHash(num_perm=128)
        m.update_batch(list(grams))
        hits = lsh.query(m)
        if hits:
            out.append({"id": d["id"], "cluster": min(hits), "kept": False})
        else:
            lsh.insert(d["id"], m)
            out.append({"id": d["id"], "cluster": d["id"], "kept": True})
    return out


def child(method: str, inp: Path, out: Path, overrides: dict | None = None) -> None:
    docs = load(inp)
    files_uri = None
    if method == "ours":  # as in the pipeline, the files are a Parquet partition read for exact checks
        from seedcoder_assets.core.parquet_io import PartWriter
        from seedcoder_assets.core.schemas import FILE_SCHEMA

        files_uri = str(out.parent / "ours_files")
        with PartWriter(files_uri, FILE_SCHEMA) as w:
            w.write_rows([{"id": d["id"], "content": d["text"]} for d in docs])
    t0 = time.perf_counter()
    assign = run_ours(docs, files_uri, overrides) if method == "ours" else run_datasketch(docs)
    seconds = time.perf_counter() - t0
    out.write_text("\n".join(json.dumps(a) for a in assign) + "\n")
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """This process's own high-water RSS (VmHWM is reset at exec; ru_maxrss is inherited from the parent)."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(cmd: list[str]) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, "POLARS_MAX_THREADS": "1",
                                                                         "OMP_NUM_THREADS": "1"})
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status:
        raise RuntimeError(f"{cmd} failed")
    return {"wall_s": time.perf_counter() - t0, "cpu_s": usage.ru_utime + usage.ru_stime,
            **json.loads(out.strip().splitlines()[-1])}


# -- ground truth and scores ------------------------------------------------------------------------
def shingle_sets(docs: list[dict]) -> dict[str, np.ndarray]:
    out = {}
    for i in range(0, len(docs), 1024):
        chunk = docs[i:i + 1024]
        flat, off = minhash.shingle_hashes([d["text"] for d in chunk], 5, 42)
        for j, d in enumerate(chunk):
            out[d["id"]] = np.unique(flat[off[j]:off[j + 1]])
    return out


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) == 0 and len(b) == 0:
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


def true_pairs(docs: list[dict], sets: dict[str, np.ndarray], extra: set[tuple[str, str]]) -> set[tuple[str, str]]:
    p = minhash.MinHashParams(num_perm=256, bands=128, rows=2, seed=7)
    ids = [d["id"] for d in docs]
    sigs = np.concatenate([minhash.signatures([d["text"] for d in docs[i:i + 1024]], p)[0]
                           for i in range(0, len(docs), 1024)])
    cand = minhash.candidate_pairs(minhash.band_keys(sigs, p), np.ones(len(ids), bool), 10**12)
    est = minhash.similarity(sigs[cand[:, 0]], sigs[cand[:, 1]])
    pairs = {tuple(sorted((ids[a], ids[b]))) for a, b in cand[est >= 0.5]} | extra
    return {pr for pr in pairs if jaccard(sets[pr[0]], sets[pr[1]]) >= THRESHOLD}


def score(assign: list[dict], truth: set[tuple[str, str]], sets: dict[str, np.ndarray]) -> dict:
    kept = {a["id"] for a in assign if a["kept"]}
    by_cluster: dict = {}
    for a in assign:  # datatrove marks files outside any cluster with -1
        by_cluster.setdefault(a["id"] if a["cluster"] in (-1, None) else a["cluster"], []).append(a["id"])
    survivor = {}
    for members in by_cluster.values():
        k = [m for m in members if m in kept]
        for m in members:
            if m not in kept:
                survivor[m] = k[0] if k else None
    ds_hit = {a["id"]: a["cluster"] for a in assign if not a["kept"]}  # datasketch: the doc it matched
    removed = [a["id"] for a in assign if not a["kept"]]
    good = sum(1 for r in removed if (s := survivor.get(r) or ds_hit.get(r)) in sets and jaccard(sets[r], sets[s]) >= THRESHOLD)
    rng = random.Random(0)
    cluster_pairs = [(m[i], m[j]) for m in by_cluster.values() if len(m) > 1
                     for i in range(len(m)) for j in range(i + 1, len(m))]
    sample = rng.sample(cluster_pairs, min(20000, len(cluster_pairs)))
    cp = sum(jaccard(sets[a], sets[b]) >= THRESHOLD for a, b in sample) / len(sample) if sample else 1.0
    recall = sum(not (a in kept and b in kept) for a, b in truth) / len(truth) if truth else 1.0
    return {"removed": len(removed), "precision": good / len(removed) if removed else 1.0,
            "cluster_pair_precision": cp, "recall": recall}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=str)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--out", type=Path, default=HERE / "out" / "near_dedup")
    ap.add_argument("--method")
    ap.add_argument("--input", type=Path)
    ap.add_argument("--assign", type=Path)
    ap.add_argument("--params", default="{}", help="MinHashParams overrides for --method ours (JSON)")
    a = ap.parse_args()
    if a.method:
        return child(a.method, a.input, a.assign, json.loads(a.params))
    a.out.mkdir(parents=True, exist_ok=True)
    rows = sample_rows(a.files, ["id", "content"], a.n, seed=1)
    docs = [{"id": r["id"], "text": r["content"]} for r in rows]
    inp = a.out / "input.jsonl"
    inp.write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    mb = sum(len(d["text"].encode()) for d in docs) / 1e6
    results, assigns = {}, {}
    runs = {"ours": ("ours", {}), "datasketch": ("datasketch", {})}
    for perm, bands, rows in SWEEP:  # the defaults' neighbours, to justify them
        runs[f"ours {perm} perm, {bands}x{rows}"] = ("ours", {"num_perm": perm, "bands": bands, "rows": rows})
    runs["ours, no exact check"] = ("ours", {"exact_margin": 0.0})
    for name, (method, overrides) in runs.items():
        dest = a.out / f"{name.replace(' ', '_').replace(',', '')}.jsonl"
        results[name] = measure([sys.executable, __file__, "--method", method, "--input", str(inp),
                                 "--assign", str(dest), "--params", json.dumps(overrides)])
        assigns[name] = load(dest)
    dt_python = HERE / ".venv-datatrove" / "bin" / "python"
    if dt_python.exists():
        work = a.out / "datatrove"
        subprocess.run(["rm", "-rf", str(work)], check=True)
        results["datatrove"] = measure([str(dt_python), str(HERE / "near_dedup_datatrove.py"), str(inp), str(work)])
        assigns["datatrove"] = load(work / "assign.jsonl")
    sets = shingle_sets(docs)
    declared = set()
    for assign in assigns.values():
        kept = {x["id"] for x in assign if x["kept"]}
        for x in assign:
            if not x["kept"] and x["cluster"] in sets:
                declared.add(tuple(sorted((x["id"], x["cluster"]))))
            elif not x["kept"]:
                k = [y["id"] for y in assign if y["cluster"] == x["cluster"] and y["id"] in kept][:1]
                declared |= {tuple(sorted((x["id"], k[0])))} if k else set()
    truth = true_pairs(docs, sets, declared)
    print(f"\n{len(docs)} files, {mb:.1f} MB, {len(truth)} true pairs (exact 5-gram Jaccard >= {THRESHOLD})\n")
    print("| method | dedup s | MB/s per core | peak RSS MB | removed | precision | cluster-pair precision | recall |")
    print("|---|---|---|---|---|---|---|---|")
    table = {}
    for m, r in results.items():
        s = score(assigns[m], truth, sets)
        table[m] = {**r, **s, "mb": mb, "true_pairs": len(truth)}
        print(f"| {m} | {r['seconds']:.1f} | {mb / r['seconds']:.2f} | {r['peak_rss_mb']:.0f} | {s['removed']} | "
              f"{s['precision']:.3f} | {s['cluster_pair_precision']:.3f} | {s['recall']:.3f} |")
    (a.out / "results.json").write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
