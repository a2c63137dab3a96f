"""What the file features cost the syntax stage, and how often they agree with Python's own tools.

    python benchmarks/bench_features.py --files <a near_deduped_files partition> [--repeats 3]

The syntax stage runs on the same files with and without writing `filters/file_features` (the features
come from the trees it parses anyway, plus a parse of the languages whose verdict is not trusted), each in
this process with thread pools pinned, best of `--repeats` by CPU seconds. Agreement: every Python file
the stage kept is read again by `ast` (imports) and `tokenize` + `ast` (comment and docstring bytes).
"""

from __future__ import annotations

import os

os.environ.update({"OMP_NUM_THREADS": "1", "RAYON_NUM_THREADS": "1", "POLARS_MAX_THREADS": "1"})

import argparse  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seedcoder_assets.core.features.checks import python_features_agree  # noqa: E402
from seedcoder_assets.core.filters.syntax import SyntaxParams, filter_syntax  # noqa: E402
from seedcoder_assets.core.parquet_io import read_table  # noqa: E402
from seedcoder_assets.core.stats import LineageWriter  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", required=True, help="a partition of files (e.g. dedup/near_deduped_files/crawl=X)")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-features-"))
    best: dict[str, float] = {}
    for _ in range(a.repeats):
        for name, features in (("syntax only", None), ("syntax + features", str(work / "features"))):
            shutil.rmtree(work / "kept", ignore_errors=True)
            shutil.rmtree(work / "features", ignore_errors=True)
            t = time.process_time()
            stats = filter_syntax(a.files, str(work / "kept"), LineageWriter(str(work), "syntax_checked_files", "b",
                                                                             "r"), SyntaxParams(), features)
            best[name] = min(best.get(name, float("inf")), time.process_time() - t)
    mb = stats.bytes_in / 1e6
    rows = read_table(str(work / "features"), ["id"]).num_rows
    agree = python_features_agree(str(work / "kept"), str(work / "features"), sample=10**9)
    print(f"{stats.rows_in} files, {mb:.1f} MB in; {stats.rows_out} kept; {rows} feature rows\n")
    print(f"| run | CPU s (best of {a.repeats}) | MB per CPU-s |")
    print("|---|---|---|")
    for name, cpu in best.items():
        print(f"| {name} | {cpu:.2f} | {mb / cpu:.2f} |")
    print(f"\nFeatures add {best['syntax + features'] / best['syntax only'] - 1:.0%} to the stage's CPU time. "
          f"Python files read again by ast and tokenize: {agree.metadata['compared']}, agreeing on imports and "
          f"comment ratio (within 0.02): {agree.metadata['agreed_share']:.1%}. Peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB.")


if __name__ == "__main__":
    main()
