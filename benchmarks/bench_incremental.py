"""Cost of adding a crawl: the small crawl deduplicated against no history vs the large crawl's index.

    python benchmarks/bench_incremental.py --history benchmarks/out/work/full [--small DIR]

`--history` is a benchmark home whose index holds the large crawl (bench_github_branch.py leaves one).
The small crawl runs every dedup stage twice, in fresh copies: once with an empty index, once with the
large crawl registered before it. With B-tree probes the second run costs about the same.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.stages import run  # noqa: E402
from seedcoder_assets.sample_crawl import build_crawl  # noqa: E402

STAGES = ["ingest", "language", "repo_dedup", "exact_dedup", "minhash_signatures", "near_dup_clusters", "near_dedup"]


def timed(home: Path, prior: list[str]) -> dict[str, float]:
    return {s: run(s, str(home), "small", prior)["seconds"] for s in STAGES}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--history", type=Path, required=True)
    ap.add_argument("--small", type=Path)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        small = a.small or build_crawl(Path(tmp) / "src", "small")
        empty, loaded = Path(tmp) / "empty", Path(tmp) / "loaded"
        for home in (empty, loaded):
            shutil.copytree(small, home / "landing" / "small")
        (loaded / "index").mkdir()
        shutil.copy(a.history / "index" / "dedup.sqlite", loaded / "index" / "dedup.sqlite")
        history_mb = (loaded / "index" / "dedup.sqlite").stat().st_size / 1e6
        cold = timed(empty, [])
        warm = timed(loaded, ["full"])
    print(f"| stage | no history (s) | after the large crawl, index {history_mb:.0f} MB (s) |\n|---|---|---|")
    for s in STAGES:
        print(f"| {s} | {cold[s]:.2f} | {warm[s]:.2f} |")
    print(json.dumps({"cold": cold, "warm": warm, "index_mb": history_mb}))


if __name__ == "__main__":
    main()
