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


def same_top(a: list[tuple[str, float]], b: list[tuple[str, float]], k: int = 5, tol: float = 1e-4) -> bool:
    """The same top k, given the top k + 1 of each. bm25s scores in float32, so files tied within `tol` may
    come in another order (or, tied at the k-th place, another of the tied files may be cut): a differing
    position must be such a tie in both lists (the k + 1-th counts), and the scores must agree."""
    if len(a[:k]) != len(b[:k]) or any(abs(x - y) > tol * max(1.0, abs(y)) for (_, x), (_, y) in zip(a[:k], b[:k])):
        return False

    def tied(ranking: list[tuple[str, float]], i: int) -> bool:
        return any(j != i and abs(ranking[j][1] - ranking[i][1]) <= tol * max(1.0, abs(ranking[i][1]))
                   for j in range(len(ranking)))

    differ = [i for i, ((p, _), (q, _)) in enumerate(zip(a[:k], b[:k])) if p != q]
    return all(tied(a, i) and tied(b, i) for i in differ)


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
        kept.append((tree, commit.message, SnapshotIndex.top(index, commit.message, budget.top_k + 1)))  # untimed
    for book in (clock.cpu, clock.wall):  # format's span contains the ranking: book it once, under bm25
        book["format"] -= book.pop("bm25_within_format", 0.0)
    total_commits = sum(reasons.values())

    agree = 0
    t_cpu, t_wall = time.process_time(), time.perf_counter()
    for tree, message, top in kept:
        agree += same_top(top, rebuilt_top(repo, tree, message, k=6))
    rebuild = (time.process_time() - t_cpu, time.perf_counter() - t_wall)
    cache: dict = {}
    t_cpu, t_wall = time.process_time(), time.perf_counter()
    agree_cached = sum(same_top(top, rebuilt_top(repo, tree, message, k=6, token_cache=cache))
                       for tree, message, top in kept)
    rebuild_cached = (time.process_time() - t_cpu, time.perf_counter() - t_wall)
    return {"commits": total_commits, "kept": reasons["kept"], "reasons": dict(reasons),
            "cpu_s": dict(clock.cpu), "wall_s": dict(clock.wall), "documents_tokenized": index.tokenized,
            "snapshot_documents_at_head": index.size, "rebuild_cpu_s": rebuild[0], "rebuild_wall_s": rebuild[1],
            "rebuild_cached_cpu_s": rebuild_cached[0], "rebuild_cached_wall_s": rebuild_cached[1],
            "top5_agreement": agree / len(kept) if kept else None,
            "top5_agreement_cached": agree_cached / len(kept) if kept else None,
            "changed_in_snapshot": in_snapshot, "changed_retrieved": retrieved,
            "recall_at_5": retrieved / in_snapshot if in_snapshot else None}


def stage_end_to_end(bundle: Path, name: str, work: Path) -> dict:
    """The two per-shard stages as the asset runs them, on a crawl of this one repository: the bundle cloned,
    the selection's history walk, the earlier-crawls lookup, every sample written to Parquet and every commit
    to the lineage. CPU of this process and of its children (git)."""
    import shutil
    import tempfile

    from seedcoder_assets.core.commits.corpus import extract_samples, select_repos
    from seedcoder_assets.core.commits.select import RepoSelection
    from seedcoder_assets.core.object_store import duckdb_connect
    from seedcoder_assets.core.stats import LineageWriter

    root = work / "stage" / name
    shutil.rmtree(root, ignore_errors=True)
    crawl = root / "landing" / "c"
    crawl.mkdir(parents=True)
    (crawl / bundle.name).symlink_to(bundle.resolve())
    (crawl / "git_repos.jsonl").write_text(json.dumps({"name": name, "git": bundle.name, "stars": 10**5,
                                                       "forks": 10**4}) + "\n")
    lake = str(root / "lake")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu, wall = time.process_time(), time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        select_repos("c", str(crawl), f"{lake}/repos/crawl=c", LineageWriter(lake, "commit_repos", "c", "b", "commits"),
                     RepoSelection(min_commits=0, min_days=0), tmp)
        stats = extract_samples("c", str(crawl), f"{lake}/repos/crawl=c", f"{lake}/samples/crawl=c",
                                LineageWriter(lake, "commit_samples", "c", "b", "commits"), CommitFilters(),
                                SampleBudget(), [], duckdb_connect(), tmp)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    children = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {"stage_cpu_s": time.process_time() - cpu + children, "stage_wall_s": time.perf_counter() - wall,
            "stage_samples": stats.rows_out, "stage_commits": stats.rows_in}


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
        rows[name].update(stage_end_to_end(Path(a.git_dir) / f"{name}.bundle", name.replace("+", "/"), Path(a.work)))
        print(json.dumps({name: rows[name]}), flush=True)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if a.out:
        Path(a.out).write_text(json.dumps({"repos": rows, "peak_rss_mb": peak_mb}, indent=1))

    stages = ("extract", "filter", "bm25", "format")
    print("\n| repository | commits | samples | " + " | ".join(f"{s} CPU s" for s in stages)
          + " | commits per CPU-s (these stages) | the two stages end to end CPU s | commits per CPU-s end to end "
            "| recall@5 of changed files | drop reasons |")
    print("|---|---|---|" + "---|" * len(stages) + "---|---|---|---|---|")
    total = Counter()
    for name, r in rows.items():
        cpu = sum(r["cpu_s"].get(s, 0) for s in stages)
        total.update({"commits": r["commits"], "kept": r["kept"], "cpu": cpu, "in": r["changed_in_snapshot"],
                      "stage": r["stage_cpu_s"],
                      "ret": r["changed_retrieved"], **{s: r["cpu_s"].get(s, 0) for s in stages}})
        drops = ", ".join(f"{k} {v}" for k, v in sorted(r["reasons"].items(), key=lambda kv: -kv[1]) if k != "kept")
        print(f"| {name} | {r['commits']:,} | {r['kept']:,} | "
              + " | ".join(f"{r['cpu_s'].get(s, 0):.2f}" for s in stages)
              + f" | {r['commits'] / cpu:.0f} | {r['stage_cpu_s']:.2f} | {r['commits'] / r['stage_cpu_s']:.0f} "
                f"| {r['recall_at_5']:.2f} | {drops} |")
    print(f"| all | {total['commits']:,} | {total['kept']:,} | " + " | ".join(f"{total[s]:.2f}" for s in stages)
          + f" | {total['commits'] / total['cpu']:.0f} | {total['stage']:.2f} | {total['commits'] / total['stage']:.0f} "
            f"| {total['ret'] / total['in']:.2f} | |")
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
