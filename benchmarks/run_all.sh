#!/usr/bin/env bash
# All benchmarks, in order, on the large real crawl; tables go to benchmarks/out/*.md.
set -euo pipefail
mkdir -p "$(dirname "$0")/out"
cd "$(dirname "$0")/.."
PY=.venv/bin/python
bash benchmarks/setup_envs.sh
$PY benchmarks/bench_github_branch.py "$@" | tee benchmarks/out/github_branch.md
W=benchmarks/out/work/full/lake
$PY benchmarks/bench_near_dedup.py --files "$W/dedup/exact_deduped_files/crawl=full" --n 20000 | tee benchmarks/out/near_dedup.md
$PY benchmarks/bench_syntax.py --files "$W/filters/code_files/crawl=full" --per-language 3000 | tee benchmarks/out/syntax.md
$PY benchmarks/bench_incremental.py --history benchmarks/out/work/full | tee benchmarks/out/incremental.md
$PY benchmarks/bench_quality.py --files "$W/filters/syntax_checked_files/crawl=full" | tee benchmarks/out/quality.md
$PY benchmarks/bench_oracle_clients.py --files benchmarks/out/work/quality/files | tee benchmarks/out/oracle_clients.md
$PY benchmarks/bench_operations.py | tee benchmarks/out/operations.md
