"""The asset checks on a whole real crawl: their verdicts, what they measured, and what they cost.

    python benchmarks/bench_checks.py --lake LAKE_ROOT --crawl NAME

LAKE_ROOT holds a crawl run through the GitHub branch (e.g. bench_github_branch.py's work/full/lake).
Each check runs as the asset runs it, on the partitions the stages wrote; CPU seconds on one thread.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from seedcoder_assets.core import checks, paths  # noqa: E402
from seedcoder_assets.core.checks import record_id_sql  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lake", required=True)
    ap.add_argument("--crawl", required=True)
    a = ap.parse_args()

    def u(*key: str) -> str:
        return paths.partition_uri(a.lake, key, a.crawl)

    def lin(stage: str) -> str:
        return paths.lineage_uri(a.lake, stage, a.crawl)

    runs = {
        "lineage_reconciles (ingest)": lambda: checks.lineage_reconciles(lin("ingest"), u("ingest", "raw_repo_files")),
        "lineage_reconciles (language)": lambda: checks.lineage_reconciles(
            lin("language"), u("filters", "code_files"), u("ingest", "raw_repo_files")),
        "lineage_reconciles (repo_dedup)": lambda: checks.lineage_reconciles(
            lin("repo_dedup"), u("dedup", "deduped_repos"), u("ingest", "crawl_repos"), input_ids_sql=record_id_sql(),
            output_ids_sql=record_id_sql(), output_filter_sql="decision = 'kept'"),
        "lineage_reconciles (exact_dedup)": lambda: checks.lineage_reconciles(
            lin("exact_dedup"), u("dedup", "exact_deduped_files"), u("filters", "code_files")),
        "lineage_reconciles (near_dedup)": lambda: checks.lineage_reconciles(
            lin("near_dedup"), u("dedup", "near_deduped_files"), u("dedup", "exact_deduped_files")),
        "lineage_reconciles (syntax)": lambda: checks.lineage_reconciles(
            lin("syntax"), u("filters", "syntax_checked_files"), u("dedup", "near_deduped_files")),
        "only_code_languages": lambda: checks.only_code_languages(u("filters", "code_files")),
        "no_duplicate_content": lambda: checks.no_duplicate_content(u("dedup", "exact_deduped_files")),
        "no_duplicate_repositories": lambda: checks.no_duplicate_repositories(u("dedup", "deduped_repos"),
                                                                              u("ingest", "raw_repo_files")),
        "near_duplicates_left_within_bound": lambda: checks.near_duplicates_left(u("dedup", "near_deduped_files")),
        "syntax_errors_left_within_bound": lambda: checks.syntax_errors_left(u("filters", "syntax_checked_files")),
    }
    print("| check | passed | CPU s | what it measured |\n|---|---|---|---|")
    out = {}
    for name, fn in runs.items():
        t0 = time.process_time()
        outcome = fn()
        cpu = time.process_time() - t0
        shown = {k: v for k, v in outcome.metadata.items() if k != "examples"}
        out[name] = {"passed": outcome.passed, "cpu_s": cpu, **outcome.metadata}
        print(f"| {name} | {outcome.passed} | {cpu:.1f} | {json.dumps(shown)} |")
    print(json.dumps(out), file=sys.stderr)


if __name__ == "__main__":
    main()
