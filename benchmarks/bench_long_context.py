"""The long-context corpus on a real crawl: what building import graphs, ordering and cutting repositories
costs per core, the peak memory of the largest repository, and how well Python imports resolve.

    python benchmarks/bench_long_context.py --files <a repo_level_files partition> [--budget 32768]

Every repository of the partition is read (one at a time, as the stage reads them), then, each timed on its
own in this process with thread pools pinned to one thread: the import graph (tree-sitter parse and query,
resolution), the order (topological, cycles) with the cut to the budget, and the token counts (the
all-MiniLM-L6-v2 tokenizer the scorer ships, unless --tokenizer). The largest repository runs again alone in
a child process, whose peak RSS the kernel reports.

Python import resolution is measured against a resolver that is not ours: Python's own `ast` reads each
file's imports and Python's import rules (core/longctx/checks.py `python_targets`: a script's folder, then
the roots of the repository's top-level packages) find the files they load. Edge precision and recall of our
graph (tree-sitter, nearest match) against it, over every Python file that `ast` parses.
"""

from __future__ import annotations

import os

os.environ.update({"OMP_NUM_THREADS": "1", "RAYON_NUM_THREADS": "1", "RAYON_RS_NUM_CPUS": "1",
                   "POLARS_MAX_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"})

import argparse  # noqa: E402
import ast  # noqa: E402
import json  # noqa: E402
import posixpath  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seedcoder_assets.core.longctx.checks import python_roots, python_targets  # noqa: E402
from seedcoder_assets.core.longctx.corpus import repo_graph, token_counter  # noqa: E402
from seedcoder_assets.core.longctx.graph import RepoFile  # noqa: E402
from seedcoder_assets.core.longctx.order import FILE_TOKEN, file_part, header, repo_sequences  # noqa: E402
from seedcoder_assets.core.object_store import duckdb_connect  # noqa: E402
from seedcoder_assets.core.parquet_io import duckdb_source  # noqa: E402


def repositories(files: str, only: str | None = None, every: int = 1):
    con = duckdb_connect()
    con.execute("SET threads TO 1")
    where = "WHERE repo = ?" if only else (
        f"WHERE repo IN (SELECT repo FROM (SELECT DISTINCT repo FROM {duckdb_source(files)}) "
        f"QUALIFY (row_number() OVER (ORDER BY repo) - 1) % {int(every)} = 0)")
    result = con.execute(f"SELECT repo, id, path, language, content FROM {duckdb_source(files)} {where} "
                         "ORDER BY repo, path", [only] if only else [])
    current, rows = None, []
    while batch := result.fetchmany(2048):
        for repo, *row in batch:
            if repo != current and rows:
                yield current, rows
                rows = []
            current = repo
            rows.append(RepoFile(*row))
    if rows:
        yield current, rows


def accuracy(files: list[RepoFile], graph) -> tuple[int, int, int, int]:
    """(edges both find, ours only, theirs only, Python files compared) for one repository."""
    paths = [f.path for f in files]
    py = [p for p in paths if p.endswith(".py")]
    layout = set(py)
    roots = python_roots(py)
    packages = {posixpath.dirname(p) for p in py if p.endswith("/__init__.py")}
    both = ours_only = theirs_only = compared = 0
    for i, f in enumerate(files):
        if f.language != "Python" or not f.path.endswith(".py"):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tree = ast.parse(f.content)
        except (SyntaxError, ValueError):
            continue
        compared += 1
        theirs = set(python_targets(f.path, tree, layout, roots, packages))
        ours = {paths[d] for d in graph.deps[i] if paths[d].endswith(".py")}
        both += len(ours & theirs)
        ours_only += len(ours - theirs)
        theirs_only += len(theirs - ours)
    return both, ours_only, theirs_only, compared


def run(files: str, budget: int, tokenizer: str, only: str | None = None, every: int = 1) -> dict:
    count = token_counter(tokenizer)
    totals = {"repos": 0, "files": 0, "mb": 0.0, "graph_cpu": 0.0, "order_cpu": 0.0, "token_cpu": 0.0,
              "sequences": 0, "alone": 0, "breaks": 0, "both": 0, "ours_only": 0, "theirs_only": 0, "compared": 0,
              "largest": ("", 0.0)}
    for repo, rows in repositories(files, only, every):
        mb = sum(len(f.content.encode("utf-8", "replace")) for f in rows) / 1e6
        t0 = time.process_time()
        graph = repo_graph(rows)
        t1 = time.process_time()
        # Token counts apart from the order and the cut: the stage counts the same parts in one batch.
        tokens = count([*(file_part(f.path, f.content, FILE_TOKEN) for f in rows), header(repo)])
        t2 = time.process_time()
        sequences, alone = repo_sequences(graph, repo, lambda _texts, counted=tokens: counted, budget)
        t3 = time.process_time()
        both, ours_only, theirs_only, compared = accuracy(rows, graph)
        totals["repos"] += 1
        totals["files"] += len(rows)
        totals["mb"] += mb
        totals["graph_cpu"] += t1 - t0
        totals["token_cpu"] += t2 - t1
        totals["order_cpu"] += t3 - t2
        totals["sequences"] += len(sequences)
        totals["alone"] += len(alone)
        totals["breaks"] += sum(len(s.breaks) for s in sequences)
        for k, v in (("both", both), ("ours_only", ours_only), ("theirs_only", theirs_only), ("compared", compared)):
            totals[k] += v
        if mb > totals["largest"][1]:
            totals["largest"] = (repo, mb)
    totals["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return totals


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", required=True, help="a repository-level files partition (dedup/repo_level_files)")
    ap.add_argument("--budget", type=int, default=32_768)
    ap.add_argument("--tokenizer", default="", help="a local Hugging Face tokenizer (default: all-MiniLM-L6-v2's)")
    ap.add_argument("--every", type=int, default=1, help="every n-th repository by name (a quicker sample)")
    ap.add_argument("--only", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.only:
        print(json.dumps(run(a.files, a.budget, a.tokenizer, a.only)))
        return
    t = run(a.files, a.budget, a.tokenizer, every=a.every)
    repo, mb = t["largest"]
    alone = json.loads(subprocess.run([sys.executable, __file__, "--files", a.files, "--budget", str(a.budget),
                                       "--tokenizer", a.tokenizer, "--only", repo], capture_output=True, text=True,
                                      check=True).stdout.strip().splitlines()[-1])
    print(f"{t['repos']} repositories, {t['files']:,} files, {t['mb']:.0f} MB; budget {a.budget} tokens: "
          f"{t['sequences']:,} sequences, {t['alone']} files over the budget alone, {t['breaks']} cycle breaks\n")
    print("| step | CPU s | repositories per CPU-s | MB per CPU-s |")
    print("|---|---|---|---|")
    for name, key in (("import graph (parse, query, resolve)", "graph_cpu"), ("order and cut", "order_cpu"),
                      ("token counts", "token_cpu")):
        print(f"| {name} | {t[key]:.1f} | {t['repos'] / t[key]:.1f} | {t['mb'] / t[key]:.2f} |")
    print(f"\nThe largest repository, {repo} ({mb:.0f} MB), alone in a process: peak RSS "
          f"{alone['peak_rss_mb']:.0f} MB (graph {alone['graph_cpu']:.1f} CPU s, order and cut "
          f"{alone['order_cpu']:.1f}, tokens {alone['token_cpu']:.1f}). The whole crawl in one process: peak RSS "
          f"{t['peak_rss_mb']:.0f} MB.")
    both, ours_only, theirs_only = t["both"], t["ours_only"], t["theirs_only"]
    print(f"\nPython imports against ast + Python's import rules, {t['compared']:,} files: {both:,} edges both find, "
          f"{ours_only:,} only ours, {theirs_only:,} only theirs; precision {both / max(both + ours_only, 1):.3f}, "
          f"recall {both / max(both + theirs_only, 1):.3f}.")


if __name__ == "__main__":
    main()
