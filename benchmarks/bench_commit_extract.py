"""Reading a git history, three ways, on the five real histories (../shared/data/git): every commit
reachable from HEAD with, for each non-merge commit, the files it changed (renames detected) and their
unified patches.

    python benchmarks/bench_commit_extract.py [--git-dir ../shared/data/git] [--work DIR]

- ours: `core/commits/history.py` (pygit2 / libgit2), as the commits stages call it;
- git CLI: one `git log --topo-order --reverse -p -M` process, parsed for commits and file headers;
- dulwich (pure Python): its walker, `tree_changes` with its rename detector, `write_tree_diff`.

Each runs in its own process (CPU seconds of it and its children, thread pools pinned), after the bundle
was unpacked once. The truth for the counts is git's own `rev-list` (commits) and `diff-tree -r -M`
(files per commit), computed apart from all three.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

PINNED = {"OMP_NUM_THREADS": "1", "RAYON_NUM_THREADS": "1", "POLARS_MAX_THREADS": "1"}


def ours(repo_dir: str) -> dict:
    from seedcoder_assets.core.commits.history import iter_commits, open_repository

    commits = files = patch_bytes = 0
    for c in iter_commits(open_repository(repo_dir)):
        commits += 1
        files += len(c.files)
        patch_bytes += sum(len(f.patch) for f in c.files)
    return {"commits": commits, "file_changes": files, "patch_bytes": patch_bytes}


def git_cli(repo_dir: str) -> dict:
    proc = subprocess.Popen(["git", "-C", repo_dir, "log", "--topo-order", "--reverse", "-p", "-M",
                             "--format=%x00%H %P%n%an%x01%ae%x01%at%n%B"], stdout=subprocess.PIPE)
    commits = files = patch_bytes = 0
    for line in proc.stdout:
        if line.startswith(b"\x00"):
            commits += 1
        elif line.startswith(b"diff --git "):
            files += 1
        patch_bytes += len(line)
    proc.wait()
    return {"commits": commits, "file_changes": files, "patch_bytes": patch_bytes}


def dulwich_walk(repo_dir: str) -> dict:
    import io

    from dulwich.diff_tree import RenameDetector, tree_changes
    from dulwich.patch import write_object_diff
    from dulwich.repo import Repo

    repo = Repo(repo_dir)
    store = repo.object_store
    commits = files = patch_bytes = 0
    for entry in repo.get_walker(order="topo", reverse=True):
        c = entry.commit
        commits += 1
        if len(c.parents) > 1:  # merges: no diff, as the others
            continue
        parent_tree = store[c.parents[0]].tree if c.parents else None
        for change in tree_changes(store, parent_tree, c.tree, rename_detector=RenameDetector(store)):
            files += 1
            out = io.BytesIO()
            old = (change.old.path, change.old.mode, change.old.sha) if change.old else (None, None, None)
            new = (change.new.path, change.new.mode, change.new.sha) if change.new else (None, None, None)
            write_object_diff(out, store, old, new)
            patch_bytes += len(out.getvalue())
    return {"commits": commits, "file_changes": files, "patch_bytes": patch_bytes}


def truth(repo_dir: str) -> dict:
    commits = subprocess.run(["git", "-C", repo_dir, "rev-list", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.split()
    out = subprocess.run(["git", "-C", repo_dir, "log", "--no-merges", "-r", "-M", "--name-only", "--format=%x00"],
                         capture_output=True, check=True).stdout
    files = sum(1 for line in out.split(b"\n") if line and not line.startswith(b"\x00"))
    return {"commits": len(commits), "file_changes_non_merge": files}


METHODS = {"ours (pygit2)": ours, "git CLI": git_cli, "dulwich": dulwich_walk}


def measure(method: str, repo_dir: str) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--one", method, repo_dir], capture_output=True, text=True,
                          env={**os.environ, **PINNED})
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1][:200]}
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    return {**figures, "wall_s": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--git-dir", type=Path, default=HERE.parent.parent / "shared" / "data" / "git")
    ap.add_argument("--work", type=Path, default=HERE / "out" / "commit_extract")
    ap.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        method, repo_dir = a.one
        figures = METHODS[method](repo_dir)
        usage = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        figures["cpu_s"] = sum(u.ru_utime + u.ru_stime for u in usage)
        figures["peak_rss_mb"] = usage[0].ru_maxrss / 1024
        print(json.dumps(figures))
        return
    a.work.mkdir(parents=True, exist_ok=True)
    print("| history | method | commits | file changes | patch MB | CPU s | commits per CPU-s | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    totals: dict[str, list[float]] = {}
    for bundle in sorted(a.git_dir.glob("*.bundle")):
        repo_dir = a.work / (bundle.stem + ".git")
        if not (repo_dir / "HEAD").exists():
            subprocess.run(["git", "clone", "--quiet", "--bare", str(bundle), str(repo_dir)], check=True)
        t = truth(str(repo_dir))
        print(f"| {bundle.stem} | git rev-list / diff-tree (truth) | {t['commits']} | "
              f"{t['file_changes_non_merge']} (non-merge) | – | – | – | – |")
        for method in METHODS:
            f = measure(method, str(repo_dir))
            if "error" in f:
                print(f"| {bundle.stem} | {method} | failed: {f['error']} | | | | | |")
                continue
            rate = f["commits"] / f["cpu_s"] if f["cpu_s"] else float("nan")
            totals.setdefault(method, [0, 0])
            totals[method][0] += f["commits"]
            totals[method][1] += f["cpu_s"]
            print(f"| {bundle.stem} | {method} | {f['commits']} | {f['file_changes']} | {f['patch_bytes'] / 1e6:.1f} | "
                  f"{f['cpu_s']:.2f} | {rate:.0f} | {f['peak_rss_mb']:.0f} |", flush=True)
    print()
    for method, (n, cpu) in totals.items():
        print(f"- {method}: {n:.0f} commits in {cpu:.2f} CPU-s, {n / cpu:.0f} commits per CPU-s")


if __name__ == "__main__":
    main()
