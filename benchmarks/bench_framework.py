"""Stage throughput before and after a change, in one run: the GitHub branch's stages of an earlier
revision and of this checkout, on the same crawl, alternately, each stage in its own process.

    python benchmarks/bench_framework.py --before REV --crawl LANDED_CRAWL_DIR --work DIR [--rounds 2]

The earlier revision is checked out with `git worktree` and run with its own package first on
PYTHONPATH; both get the same input, the same settings (pinned thread pools) and the same I/O inside the
timer. Reports CPU seconds per stage (the minimum over rounds; rounds alternate before/after so drift of
the machine hits both), MB per CPU-second, and whether both produced the same rows.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PINNED = {"POLARS_MAX_THREADS": "1", "RAYON_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
          "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "BENCH_DUCKDB_THREADS": "1"}


def stage_names(tree: Path) -> list[str]:
    """The stage names a tree's benchmarks/stages.py accepts (from its --help)."""
    out = subprocess.run([sys.executable, str(tree / "benchmarks" / "stages.py"), "--help"], capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(tree)}, cwd=tree, check=True).stdout
    return re.search(r"\{([^}]*)\}", out).group(1).split(",")


def run(tree: Path, stage: str, home: Path) -> dict:
    env = {**os.environ, **PINNED, "PYTHONPATH": str(tree)}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(tree / "benchmarks" / "stages.py"), stage, "--home", str(home),
                             "--crawl", "full"], stdout=subprocess.PIPE, text=True, env=env, cwd=tree)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise RuntimeError(f"{tree}: stage {stage} failed ({status})")
    figures = json.loads(out.strip().splitlines()[-1])
    return {"wall": time.perf_counter() - t0, "cpu": usage.ru_utime + usage.ru_stime, "mb": figures["bytes_in"] / 1e6,
            "rows": (figures["rows_in"], figures["rows_out"]), "rss": figures["peak_rss_mb"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True, help="git revision to compare against")
    ap.add_argument("--crawl", required=True, type=Path, help="a landed crawl folder (repos.jsonl + archives)")
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--stages", nargs="*", help="only these (their inputs must be there from a full run)")
    a = ap.parse_args()
    before_tree = a.work / "before-tree"
    if not before_tree.exists():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(before_tree), a.before], check=True)
    trees = {"before": before_tree, "after": REPO}
    homes = {}
    for name in trees:
        homes[name] = a.work / name
        (homes[name] / "landing").mkdir(parents=True, exist_ok=True)
        link = homes[name] / "landing" / "full"
        if not link.exists():
            link.symlink_to(a.crawl.resolve())
    sys.path.insert(0, str(REPO))
    from benchmarks.stages import STAGES
    from seedcoder_assets.core.catalog.catalog import LEGACY_STAGES

    # An earlier tree may call a stage by its old lineage name.
    old_name = {new: old for old, new in LEGACY_STAGES.items()}
    known = {name: set(stage_names(tree)) for name, tree in trees.items()}
    called = {(stage, name): stage if stage in known[name] else old_name[stage] for stage in STAGES for name in trees}

    stages = [s for s in STAGES if not a.stages or s in a.stages]
    best: dict[tuple[str, str], dict] = {}
    for r in range(a.rounds):
        for stage in stages:  # in pipeline order: each stage reads what the previous one wrote
            for name in (("before", "after") if r % 2 == 0 else ("after", "before")):
                got = run(trees[name], called[(stage, name)], homes[name])
                key = (stage, name)
                if key not in best or got["cpu"] < best[key]["cpu"]:
                    best[key] = got
                print(f"round {r} {stage} {name}: {got['cpu']:.2f} CPU s", file=sys.stderr, flush=True)
    print(f"before = {a.before} (git worktree), after = this checkout; best of {a.rounds} rounds, one thread each\n")
    print("| stage | MB in | before CPU s | after CPU s | after / before | MB per CPU-s after | same rows |")
    print("|---|---|---|---|---|---|---|")
    for stage in stages:
        b, f = best[(stage, "before")], best[(stage, "after")]
        same = "yes" if b["rows"] == f["rows"] else f"no: {b['rows']} vs {f['rows']}"
        print(f"| {stage} | {f['mb']:.0f} | {b['cpu']:.2f} | {f['cpu']:.2f} | {f['cpu'] / b['cpu']:.2f} "
              f"| {f['mb'] / f['cpu']:.1f} | {same} |")


if __name__ == "__main__":
    main()
