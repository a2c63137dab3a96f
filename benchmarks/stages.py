"""Run one GitHub-branch stage on one crawl, as the assets do, so a benchmark can time it alone.

    python benchmarks/stages.py STAGE --home DIR --crawl NAME [--prior CRAWL ...]

Prints the stage's figures as one JSON line. Same core calls and URIs as the Dagster assets.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from seedcoder_assets.core import paths, pipeline
from seedcoder_assets.core.dedup.exact import connect, exact_dedup
from seedcoder_assets.core.dedup.index import DedupIndex
from seedcoder_assets.core.dedup.minhash import MinHashParams
from seedcoder_assets.core.dedup.near import apply_near_dedup, compute_signatures, file_near_clusters
from seedcoder_assets.core.dedup.repos import dedup_repos, repo_level_files
from seedcoder_assets.core.dedup.survivor import SurvivorRule
from seedcoder_assets.core.filters.syntax import SyntaxParams, filter_syntax
from seedcoder_assets.core.ingest.archives import ExtractParams
from seedcoder_assets.core.ingest.crawl import CrawlIngest
from seedcoder_assets.core.parquet_io import iter_batches
from seedcoder_assets.core.runner import run_stage
from seedcoder_assets.core.stats import LineageWriter

# The GitHub branch's stages in pipeline order, by lineage stage name (or asset name where none).
DECLARED = {s.lineage or s.name: s for s in pipeline.STAGES if s.job == pipeline.GITHUB}
STAGES = list(DECLARED)


def run(stage: str, home: str, crawl: str, prior: list[str]) -> dict:
    lake = f"{home}/lake"

    def u(key: pipeline.Key) -> str:
        return paths.partition_uri(lake, key, crawl)

    def lw(name: str) -> LineageWriter:
        return LineageWriter(lake, name, crawl, "bench")

    # Benchmarks may override the MinHash parameters (JSON) and pin DuckDB to one thread.
    p, rule = MinHashParams(**json.loads(os.environ.get("BENCH_MINHASH", "{}"))), SurvivorRule.stars_newest_lexical
    index, conn = DedupIndex(f"{lake}/_index"), connect("1GB", f"{home}/duckdb_tmp")
    if os.environ.get("BENCH_DUCKDB_THREADS"):
        conn.execute(f"SET threads TO {int(os.environ['BENCH_DUCKDB_THREADS'])}")
    raw, repos, code = u(pipeline.RAW_REPO_FILES), u(pipeline.CRAWL_REPOS), u(pipeline.CODE_FILES)
    exact, sigs, clusters = u(pipeline.EXACT_DEDUPED_FILES), u(pipeline.MINHASH_SIGNATURES), u(pipeline.NEAR_DUP_CLUSTERS)
    near, repos_deduped = u(pipeline.NEAR_DEDUPED_FILES), u(pipeline.DEDUPED_REPOS)
    calls = {
        "ingest": lambda: CrawlIngest(crawl, paths.crawl_uri(f"{home}/landing", crawl), raw, repos, lw("ingest"),
                                      ExtractParams()).run(),
        "repo_dedup": lambda: dedup_repos(code, repos, repos_deduped, lw("repo_dedup"), p, rule, index, prior, conn),
        "repo_level": lambda: repo_level_files(code, repos_deduped, u(pipeline.REPO_LEVEL_FILES), lw("repo_level")),
        "exact_dedup": lambda: exact_dedup(code, repos, exact, lw("exact_dedup"), index, prior, rule, conn),
        "minhash_signatures": lambda: compute_signatures(exact, sigs, p),
        "near_dup_clusters": lambda: file_near_clusters(
            sigs, exact, repos, clusters, crawl, p, rule, index, prior, conn,
            prior_files=lambda c: paths.partition_uri(lake, pipeline.EXACT_DEDUPED_FILES, c)),
        "near_dedup": lambda: apply_near_dedup(exact, clusters, sigs, near, lw("near_dedup"), p, index),
        "syntax": lambda: filter_syntax(near, u(pipeline.SYNTAX_CHECKED_FILES), lw("syntax"), SyntaxParams()),
    }
    declared = DECLARED[stage]
    if isinstance(declared, pipeline.FilterStage):  # every filter stage runs the same way: its decide, the runner
        calls[stage] = lambda: run_stage(iter_batches(u(declared.reads[0]), batch_rows=declared.batch_rows),
                                         u(declared.asset), lw(declared.lineage), declared.decide())
    stats = calls[stage]()
    return {"stage": stage, **stats.as_metadata()}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("stage", choices=STAGES)
    ap.add_argument("--home", required=True)
    ap.add_argument("--crawl", required=True)
    ap.add_argument("--prior", nargs="*", default=[])
    a = ap.parse_args()
    figures = run(a.stage, a.home, a.crawl, a.prior)
    figures["peak_rss_mb"] = next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM:")) / 1024
    print(json.dumps(figures, default=str))
    sys.stdout.flush()
