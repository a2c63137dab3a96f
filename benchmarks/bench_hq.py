"""The high-quality loop (3 rounds) with hard negatives and with random negatives only, side by side, on real
code: the Python files of the packages installed in this virtualenv (one repository per package folder).

    python benchmarks/bench_hq.py [--files 20000] [--out results.json]
    python benchmarks/bench_hq.py --lake <a lake> --crawl <its crawl> [--seeds 500]   # e.g. the large crawl's

With `--lake`, the files are a crawl's syntax-checked files (every language) and the features the syntax
stage wrote beside them (a lake of bench_github_branch.py has none: the syntax stage runs on its
near-deduplicated files first, untimed); the score is the same heuristic.

Setup, not timed: the files, the syntax stage with features (comment ratio, docstrings, imports), and a
quality score per file. No LLM is reachable here and the learned scorer needs one's labels, so the score is
the fake oracle's deterministic heuristic (comments, definitions, literal-heavy data -> 0): an input to the
loop, the same for both runs. Each loop runs in its own process with thread pools pinned to one thread
(DuckDB included); its CPU seconds and peak RSS come from the kernel.

The paper's claim: hard negatives keep the model from scoring everything high. What is compared: how many
files each round recalls, the share of them at or above the quality floor, the share of held-out negatives
the model recalls, and how fast new positives dry up.
"""

from __future__ import annotations

import os

os.environ.update({"OMP_NUM_THREADS": "1", "RAYON_NUM_THREADS": "1", "POLARS_MAX_THREADS": "1",
                   "OPENBLAS_NUM_THREADS": "1"})

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import sysconfig  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build(home: Path, limit: int) -> tuple[str, str, str]:
    from seedcoder_assets.core.filters.syntax import SyntaxParams, filter_syntax
    from seedcoder_assets.core.parquet_io import PartWriter
    from seedcoder_assets.core.quality.corpus import SCORE_SCHEMA
    from seedcoder_assets.core.schemas import FILE_SCHEMA
    from seedcoder_assets.core.stats import LineageWriter
    from seedcoder_assets.testing.fake_oracle import heuristic_rating

    site = Path(sysconfig.get_paths()["purelib"])
    paths = sorted(p for p in site.rglob("*.py") if ".dist-info" not in str(p) and p.stat().st_size < 200_000)
    paths = sorted(paths, key=lambda p: hashlib.blake2b(str(p).encode(), digest_size=8).digest())[:limit]
    rows, scores = [], []
    for path in paths:
        text = path.read_text(errors="replace")
        rel = path.relative_to(site)
        parts = rel.parts
        repo = "/".join(parts[:2]) if len(parts) > 2 else parts[0]
        file_id = hashlib.sha1(str(rel).encode()).hexdigest()[:16]
        rows.append({"id": file_id, "crawl": "site", "repo": repo, "path": str(rel), "language": "Python",
                     "size": len(text), "sha256": hashlib.sha256(text.encode()).hexdigest(), "content": text})
        scores.append({"id": file_id, "sha256": rows[-1]["sha256"], "language": "Python", "size": len(text),
                       "score": float(heuristic_rating(text)), "scorer_version": "heuristic"})
    with PartWriter(str(home / "src"), FILE_SCHEMA) as out:
        out.write_rows(rows)
    with PartWriter(str(home / "scores"), SCORE_SCHEMA) as out:
        out.write_rows(scores)
    filter_syntax(str(home / "src"), str(home / "files"), LineageWriter(str(home), "syntax_checked_files", "site", "b"),
                  SyntaxParams(), str(home / "features"))
    return str(home / "scores"), str(home / "files"), str(home / "features")


def from_lake(home: Path, lake: Path, crawl: str) -> tuple[str, str, str]:
    """Heuristic scores for a crawl's syntax-checked files; files and features are read where they are."""
    from seedcoder_assets.core import paths
    from seedcoder_assets.core.parquet_io import PartWriter, is_complete, iter_batches
    from seedcoder_assets.core.quality.corpus import SCORE_SCHEMA
    from seedcoder_assets.testing.fake_oracle import heuristic_rating

    files = paths.partition_uri(str(lake), ["filters", "syntax_checked_files"], crawl)
    features = paths.partition_uri(str(lake), ["filters", "file_features"], crawl)
    if not is_complete(files) or not is_complete(features):  # a lake of the GitHub branch only: run the stage
        from seedcoder_assets.core.filters.syntax import SyntaxParams, filter_syntax
        from seedcoder_assets.core.stats import LineageWriter

        files, features = str(home / "files"), str(home / "features")
        filter_syntax(paths.partition_uri(str(lake), ["dedup", "near_deduped_files"], crawl), files,
                      LineageWriter(str(home), "syntax_checked_files", crawl, "b"), SyntaxParams(), features)
    with PartWriter(str(home / "scores"), SCORE_SCHEMA) as out:
        for batch in iter_batches(files, ["id", "sha256", "language", "size", "content"], batch_rows=2048):
            out.write_rows([r | {"score": float(heuristic_rating(r.pop("content"))), "scorer_version": "heuristic"}
                            for r in batch.to_pylist()])
    return str(home / "scores"), files, features


def loop(home: Path, hard: bool, seeds: int, bucket: int | None) -> dict:
    from seedcoder_assets.core.hq.rounds import DEFAULT_SOURCES, MODEL_FILE, HQParams, candidates_view, run_round
    from seedcoder_assets.core.object_store import duckdb_connect

    crawl = tuple(json.loads((home / "inputs.json").read_text()))
    # The defaults, with seed sizes for a crawl of this size (the paper's 100K seeds come from billions of files).
    sources = tuple(s.model_copy(update={"seed_size": seeds, "max_per_repo": 25}) for s in DEFAULT_SOURCES)
    params = HQParams(sources=sources, hard_negatives=hard, bucket=bucket)
    con = duckdb_connect()
    con.execute("SET threads TO 1")
    candidates_view(con, [crawl])
    candidates = con.execute("SELECT count(*) FROM candidates").fetchone()[0]
    t0, w0 = time.process_time(), time.perf_counter()
    state, rounds = None, []
    for number in (1, 2, 3):
        out = home / f"{'hard' if hard else 'random'}-r{number}"
        state, metrics = run_round(con, [(crawl[1], crawl[0])], params, number, state, out)
        rounds.append(metrics | {"model_mb": (out / MODEL_FILE).stat().st_size / 1e6})
    return {"candidates": candidates, "rounds": rounds, "cpu_s": time.process_time() - t0,
            "wall_s": time.perf_counter() - w0,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=20_000)
    ap.add_argument("--lake", type=Path, help="a lake with a crawl's syntax-checked files and features")
    ap.add_argument("--crawl", default="full", help="the crawl partition of --lake")
    ap.add_argument("--seeds", type=int, default=500, help="seeds per source")
    ap.add_argument("--bucket", type=int, help="fastText's n-gram hash buckets (default: sized to the training file)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--loop", choices=["hard", "random"], help=argparse.SUPPRESS)
    ap.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.loop:
        print(json.dumps(loop(a.home, a.loop == "hard", a.seeds, a.bucket)))
        return
    home = Path(tempfile.mkdtemp(prefix="bench-hq-"))
    inputs = from_lake(home, a.lake, a.crawl) if a.lake else build(home, a.files)
    (home / "inputs.json").write_text(json.dumps(inputs))
    results = {}
    for kind in ("hard", "random"):
        out = subprocess.run([sys.executable, __file__, "--loop", kind, "--home", str(home), "--seeds", str(a.seeds)]
                             + (["--bucket", str(a.bucket)] if a.bucket else []), capture_output=True, text=True,
                             check=True)
        results[kind] = json.loads(out.stdout.strip().splitlines()[-1])
    n = results["hard"]["candidates"]
    print(f"{n} scored files from {f'crawl {a.crawl} of {a.lake}' if a.lake else 'the installed packages'}\n")
    print("| negatives | round | seeds | hard negatives | recalled | at or above floor | new positives | held-out seeds "
          "recalled | held-out negatives recalled | overlap with previous |")
    print("|---|---|---|---|---|---|---|---|---|---|")

    def f(v):
        return "n/a" if v is None else f"{v:.2f}"

    for kind, r in results.items():
        for m in r["rounds"]:
            print(f"| {kind} | {m['round']} | {m['seeds']} | {m['hard_negatives']} | {m['recalled']} | "
                  f"{f(m['recalled_above_floor_share'])} | {m['new_positives']} | {f(m['recall'])} | "
                  f"{f(m['negatives_recalled'])} | {f(m['overlap_with_previous'])} |")
    from seedcoder_assets.core.hq.rounds import HQParams

    epochs = HQParams().epoch
    print("\n| negatives | whole loop CPU s | wall s | peak RSS (MB) | fastText training (example-epochs per CPU-s) | "
          "recall pass (files per CPU-s) |")
    print("|---|---|---|---|---|---|")
    for kind, r in results.items():
        train = sum(m["train_examples"] * epochs for m in r["rounds"]) / max(sum(m["train_cpu_s"] for m in r["rounds"]), 1e-9)
        recall = 3 * n / max(sum(m["recall_cpu_s"] for m in r["rounds"]), 1e-9)
        print(f"| {kind} | {r['cpu_s']:.1f} | {r['wall_s']:.1f} | {r['peak_rss_mb']:.0f} | {train:,.0f} | {recall:,.0f} |")
    sizes = [m["model_mb"] for r in results.values() for m in r["rounds"]]
    print(f"\nfastText models {min(sizes):.0f}-{max(sizes):.0f} MB (n-gram buckets "
          f"{'set to ' + format(a.bucket, ',') if a.bucket else 'sized to each training file'})")
    if a.out:
        a.out.write_text(json.dumps(results, indent=2))
    shutil.rmtree(home)


if __name__ == "__main__":
    main()
