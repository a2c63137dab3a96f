#!/usr/bin/env bash
# All benchmarks, in order, on the large real crawl; tables go to benchmarks/out/*.md (one run per table).
set -euo pipefail
mkdir -p "$(dirname "$0")/out"
cd "$(dirname "$0")/.."
PY=.venv/bin/python
bash benchmarks/setup_envs.sh
.venv/bin/pip install -q -e '.[bench]'   # datasketch, the near-dedup peer
OUT=benchmarks/out
W=$OUT/work
$PY -c "from pathlib import Path; from seedcoder_assets.sample_crawl import build_crawl; build_crawl(Path('$W/landing/full'), 'large')"
$PY benchmarks/bench_github_branch.py --crawl "$W/landing/full" --work "$W/branch" | tee $OUT/github_branch.md
L=$W/branch/full/lake
$PY benchmarks/bench_near_dedup.py --files "$L/dedup/exact_deduped_files/crawl=full" \
    --repos "$L/ingest/crawl_repos/crawl=full" --work "$W/near" --scales 1 4 | tee $OUT/near_dedup.md
$PY benchmarks/bench_syntax.py --files "$L/filters/code_files/crawl=full" --per-language 3000 | tee $OUT/syntax.md
$PY benchmarks/bench_incremental.py --crawl "$W/landing/full" --work "$W/incremental" | tee $OUT/incremental.md
$PY benchmarks/bench_quality.py --files "$L/filters/syntax_checked_files/crawl=full" --work "$W/quality" | tee $OUT/quality.md
$PY benchmarks/bench_oracle_clients.py --files "$W/quality/files" | tee $OUT/oracle_clients.md
$PY benchmarks/bench_operations.py | tee $OUT/operations.md
$PY benchmarks/bench_distributed_dedup.py --files "$L/dedup/exact_deduped_files/crawl=full" \
    --repos "$L/ingest/crawl_repos/crawl=full" --work "$W/distributed" --scales 4 16 | tee $OUT/distributed_dedup.md
benchmarks/.venv-ray/bin/python benchmarks/bench_engines.py --sigs "$W/distributed/x4/lake/dedup/minhash_signatures/crawl=new" \
    | tee $OUT/engines.md
$PY benchmarks/bench_dagster_partitions.py --counts 1000 10000 --daemon-seconds 180 | tee $OUT/dagster_partitions.md
$PY benchmarks/bench_dagster_partitions.py --counts 1000 --shards 10 --daemon-seconds 120 | tee $OUT/dagster_shard_partitions.md
$PY -c "from pathlib import Path; from seedcoder_assets.sample_web import build_dump; build_dump(Path('$W/web/large'), 'large')"
$PY benchmarks/bench_web.py --dump "$W/web/large" --work "$W/web-work" --out $OUT/web.json | tee $OUT/web.md
$PY benchmarks/bench_web_recall.py --dump "$W/web/large" --pages "$W/web-work/out/pages" --out $OUT/web_recall.json \
    | tee $OUT/web_recall.md
$PY benchmarks/bench_features.py --files "$L/dedup/near_deduped_files/crawl=full" | tee $OUT/features.md
$PY benchmarks/bench_hq.py --files 20000 --out $OUT/hq.json | tee $OUT/hq.md
$PY benchmarks/bench_notebooks.py --work "$W/notebooks" | tee $OUT/notebooks.md
$PY benchmarks/bench_hq.py --lake "$W/branch/full/lake" --crawl full --out $OUT/hq_large.json | tee $OUT/hq_large.md
$PY benchmarks/bench_long_context.py --files "$L/dedup/repo_level_files/crawl=full" --every 4 | tee $OUT/long_context.md
$PY benchmarks/bench_decontam.py --files "$L/filters/syntax_checked_files/crawl=full" --work "$W/decontam" \
    --out $OUT/decontam.json | tee $OUT/decontam.md
$PY benchmarks/bench_training.py --files "$L/filters/syntax_checked_files/crawl=full" --work "$W/training" \
    | tee $OUT/training.md
