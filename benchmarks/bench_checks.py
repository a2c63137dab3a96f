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

from seedcoder_assets.core import checks, paths, pipeline  # noqa: E402
from seedcoder_assets.core.checks import record_id_sql  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lake", required=True)
    ap.add_argument("--crawl", required=True)
    a = ap.parse_args()

    def u(key: pipeline.Key) -> str:
        return paths.partition_uri(a.lake, key, a.crawl)

    def lin(key: pipeline.Key) -> str:
        return paths.lineage_uri(a.lake, pipeline.stage(key).lineage_stage, a.crawl)

    P = pipeline
    runs = {
        f"lineage_reconciles ({k[-1]})": (lambda k=k, i=i, sql=sql: checks.lineage_reconciles(lin(k), u(k), u(i), **sql))
        for k, i, sql in (
            (P.CODE_FILES, P.RAW_REPO_FILES, {}),
            (P.DEDUPED_REPOS, P.CRAWL_REPOS, {"input_ids_sql": record_id_sql(), "output_ids_sql": record_id_sql(),
                                              "output_filter_sql": "decision = 'kept'"}),
            (P.EXACT_DEDUPED_FILES, P.CODE_FILES, {}),
            (P.NEAR_DEDUPED_FILES, P.EXACT_DEDUPED_FILES, {}),
            (P.SYNTAX_CHECKED_FILES, P.NEAR_DEDUPED_FILES, {}))
    }
    runs = {"lineage_reconciles (raw_repo_files)": lambda: checks.lineage_reconciles(lin(P.RAW_REPO_FILES),
                                                                                      u(P.RAW_REPO_FILES)), **runs}
    runs.update({
        "only_code_languages": lambda: checks.only_code_languages(u(P.CODE_FILES)),
        "no_duplicate_content": lambda: checks.no_duplicate_content(u(P.EXACT_DEDUPED_FILES)),
        "no_duplicate_repositories": lambda: checks.no_duplicate_repositories(u(P.DEDUPED_REPOS), u(P.RAW_REPO_FILES)),
        "near_duplicates_left_within_bound": lambda: checks.near_duplicates_left(u(P.NEAR_DEDUPED_FILES)),
        "syntax_errors_left_within_bound": lambda: checks.syntax_errors_left(u(P.SYNTAX_CHECKED_FILES)),
    })
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
