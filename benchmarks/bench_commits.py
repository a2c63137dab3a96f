"""The commits corpus on the five real histories (../shared/data/git), per repository: commits per CPU-second
from a landed repository to samples, split by stage; BM25 context against an index rebuilt per commit;
retrieval recall; drop reasons.

    python benchmarks/bench_commits.py [--git-dir ../shared/data/git] [--work DIR] [--out results.json]

Per repository (bundle unpacked once, before any timer), in one process with thread pools pinned to one
thread, every commit on HEAD goes through what `commit_samples` runs (core/commits/corpus.py), each stage
timed apart in CPU seconds (time.process_time) and wall seconds:
- extract: walking the history and building each commit's per-file patches (libgit2);
- filter: the commit filters;
- BM25: moving the snapshot index to the parent's tree and ranking it for the message;
- format: README, tree, retrieved files and target into the sample text.

Then the baselines, on the same kept commits, the same trees and the same queries:
- rebuild: what one index per commit does (SWE-bench builds one Lucene index per instance): read and
  tokenize every code file of the snapshot, build a bm25s index, rank;
- rebuild, tokens cached: the same with each blob tokenized once across the history (only the index is
  built per commit), to show how much of the gain is tokenization and how much the index.
Their top 5 must equal the moving index's (same files, same order; bm25s scores in float32, so a tie
within 1e-4 may swap): the agreement is reported and the benchmark fails below 100%.
"""

from __future__ import annotations

import os

PINNED = {"OMP_NUM_THREADS": "1", "RAYON_NUM_THREADS": "1", "POLARS_MAX_THREADS": "1", "NUMBA_NUM_THREADS": "1",
          "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
os.environ.update(PINNED)  # before numpy and friends start their pools

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from seedcoder_assets.core.commits.context import SnapshotIndex, rebuilt_top  # noqa: E402
from seedcoder_assets.core.commits.filters import CommitFilters, commit_rejection  # noqa: E402
from seedcoder_assets.core.commits.history import iter_commits, open_repository  # noqa: E402
from seedcoder_assets.core.commits.sample import SampleBudget, build_sample  # noqa: E402

BUNDLES = ["pallets+itsdangerous", "spf13+cobra", "tj+commander.js", "BurntSushi+walkdir", "google+snappy"]


class Clock:
    """CPU and wall seconds per stage."""

    def __init__(self) -> None:
        self.cpu: Counter[str] = Counter()
        self.wall: Counter[str] = Counter()

    def __call__(self, stage: str):
        clock = self

        class _Span:
            def __enter__(self):
                self.c, self.w = time.process_time(), time.perf_counter()

            def __exit__(self, *_):
                clock.cpu[stage] += time.process_time() - self.c
                clock.wall[stage] += time.perf_counter() - self.w

        return _Span()


class TimedIndex(SnapshotIndex):
    """The moving index, its ranking timed as BM25 (build_sample calls it)."""

    clock: Clock

    def top(self, query: str, k: int = 5):
        with self.clock("bm25"), self.clock("bm25_within_format"):
            return super().top(query, k)


def same_top(a: list[tuple[str, float]], b: list[tuple[str, float]]) -> bool:
    if [p for p, _ in a] == [p for p, _ in b]:
        return True
    # a tie within float32 precision may order two files differently
    return len(a) == len(b) and all(abs(x - y) <= 1e-4 * max(1.0, abs(y)) for (_, x), (_, y) in zip(a, b))


def run_repository(repo_dir: str) -> dict:
    repo = open_repository(repo_dir)
    clock = Clock()
    index = TimedIndex(repo)
    index.clock = clock
    filters, budget = CommitFilters(), SampleBudget()
    reasons: Counter[str] = Counter()
    kept = []  # (tree, message, top) for the baselines
    in_snapshot = retrieved = 0
    commits = iter_commits(repo)
    while True:
        with clock("extract"):
            commit = next(commits, None)
        if commit is None:
            break
        with clock("filter"):
            reason = commit_rejection(commit, filters)
        if reason is not None:
            reasons[reason] += 1
            continue
        raw = repo[commit.sha]
        tree = raw.parents[0].tree if raw.parents else None
        with clock("bm25"):
            index.move_to(tree)
        with clock("format"):  # includes the ranking, which TimedIndex books under bm25
            sample = build_sample(repo, commit, index, budget)
        if sample is None:
            reasons["sample_over_budget"] += 1
            continue
        reasons["kept"] += 1
        in_snapshot += sample.changed_in_snapshot
        retrieved += sample.changed_retrieved
        kept.append((tree, commit.message, SnapshotIndex.top(index, commit.message, budget.top_k)))  # untimed
    for book in (clock.cpu, clock.wall):  # format's span contains the ranking: book it once, under bm25
        book["format"] -= book.pop("bm25_within_format", 0.0)
    total_commits = sum(reasons.values())

    agree = 0
    t_cpu, t_wall = time.process_time(), time.perf_counter()
    for tree, message, top in kept:
        agree += same_top(top, rebuilt_top(repo, tree, message))
    rebuild = (time.process_time() - t_cpu, time.perf_counter() - t_wall)
    cache: dict = {}
    t_cpu, t_wall = time.process_time(), time.perf_counter()
    agree_cached = sum(same_top(top, rebuilt_top(repo, tree, message, token_cache=cache)) for tree, message, top in kept)
    rebuild_cached = (time.process_time() - t_cpu, time.perf_counter() - t_wall)
    return {"commits": total_commits, "kept": reasons["kept"], "reasons": dict(reasons),
            "cpu_s": dict(clock.cpu), "wall_s": dict(clock.wall), "documents_tokenized": index.tokenized,
            "snapshot_documents_at_head": index.size, "rebuild_cpu_s": rebuild[0], "rebuild_wall_s": rebuild[1],
            "rebuild_cached_cpu_s": rebuild_cached[0], "rebuild_cached_wall_s": rebuild_cached[1],
            "top5_agreement": agree / len(kept) if kept else None,
            "top5_agreement_cached": agree_cached / len(kept) if kept else None,
            "changed_in_snapshot": in_snapshot, "changed_retrieved": retrieved,
            "recall_at_5": retrieved / in_snapshot if in_snapshot else None}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--git-dir", default=str(HERE.parents[1] / "shared" / "data" / "git"))
    ap.add_argument("--work", default="/tmp/bench_commits")
    ap.add_argument("--out")
    a = ap.parse_args()
    import subprocess

    rows = {}
    for name in BUNDLES:
        dest = Path(a.work) / f"{name}.git"
        if not dest.exists():  # unpacked once, outside every timer
            subprocess.run(["git", "clone", "-q", "--bare", f"{a.git_dir}/{name}.bundle", str(dest)], check=True)
        rows[name] = run_repository(str(dest))
        print(json.dumps({name: rows[name]}), flush=True)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if a.out:
        Path(a.out).write_text(json.dumps({"repos": rows, "peak_rss_mb": peak_mb}, indent=1))

    stages = ("extract", "filter", "bm25", "format")
    print("\n| repository | commits | samples | " + " | ".join(f"{s} CPU s" for s in stages)
          + " | commits per CPU-s (all stages) | recall@5 of changed files | drop reasons |")
    print("|---|---|---|" + "---|" * len(stages) + "---|---|---|")
    total = Counter()
    for name, r in rows.items():
        cpu = sum(r["cpu_s"].get(s, 0) for s in stages)
        total.update({"commits": r["commits"], "kept": r["kept"], "cpu": cpu, "in": r["changed_in_snapshot"],
                      "ret": r["changed_retrieved"], **{s: r["cpu_s"].get(s, 0) for s in stages}})
        drops = ", ".join(f"{k} {v}" for k, v in sorted(r["reasons"].items(), key=lambda kv: -kv[1]) if k != "kept")
        print(f"| {name} | {r['commits']:,} | {r['kept']:,} | "
              + " | ".join(f"{r['cpu_s'].get(s, 0):.2f}" for s in stages)
              + f" | {r['commits'] / cpu:.0f} | {r['recall_at_5']:.2f} | {drops} |")
    print(f"| all | {total['commits']:,} | {total['kept']:,} | " + " | ".join(f"{total[s]:.2f}" for s in stages)
          + f" | {total['commits'] / total['cpu']:.0f} | {total['ret'] / total['in']:.2f} | |")
    print(f"\npeak RSS of the process: {peak_mb:.0f} MB")

    print("\n| repository | samples | documents at HEAD | moving index CPU s | rebuild per commit CPU s | speed-up "
          "| rebuild, tokens cached CPU s | speed-up | same top 5 |")
    print("|---|---|---|---|---|---|---|---|---|")
    sums = Counter()
    for name, r in rows.items():
        ours = r["cpu_s"].get("bm25", 0)
        sums.update({"ours": ours, "rebuild": r["rebuild_cpu_s"], "cached": r["rebuild_cached_cpu_s"]})
        print(f"| {name} | {r['kept']:,} | {r['snapshot_documents_at_head']} | {ours:.2f} | {r['rebuild_cpu_s']:.2f} "
              f"| {r['rebuild_cpu_s'] / ours:.1f}x | {r['rebuild_cached_cpu_s']:.2f} | {r['rebuild_cached_cpu_s'] / ours:.1f}x "
              f"| {r['top5_agreement']:.1%} / {r['top5_agreement_cached']:.1%} |")
    print(f"| all | {total['kept']:,} | | {sums['ours']:.2f} | {sums['rebuild']:.2f} | {sums['rebuild'] / sums['ours']:.1f}x "
          f"| {sums['cached']:.2f} | {sums['cached'] / sums['ours']:.1f}x | |")
    bad = [n for n, r in rows.items() if r["top5_agreement"] is not None and r["top5_agreement"] < 1]
    if bad:
        raise SystemExit(f"the moving index ranked differently from a rebuild on {bad}")


if __name__ == "__main__":
    main()
