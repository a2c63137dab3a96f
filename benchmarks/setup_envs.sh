#!/usr/bin/env bash
# Side environments for the comparison benchmarks (they conflict with the main pins):
# - .venv-datatrove: datatrove 0.10.1 for its MinHash pipeline and its WARC reader + Trafilatura extractor
#   (bench_web.py). xxhash 4.x refuses str input, which datatrove's shingle hashing passes, so xxhash is
#   pinned below 4; its Trafilatura wants trafilatura < 1.12, which needs lxml_html_clean with lxml 6; its
#   WARC reader imports cchardet and python-magic (libmagic1 from Debian).
# - .venv-tsl: tree-sitter-languages 1.10.2, which works only with tree-sitter 0.21.3.
# - .venv-ray: Ray 2.60 beside the dedup core's dependencies, to compare engines (bench_engines.py).
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv-datatrove/bin/python ] || python3 -m venv .venv-datatrove
.venv-datatrove/bin/pip install -q "datatrove[io]==0.10.1" "xxhash==3.5.0" "regex" "orjson" "tokenizers" "numpy" \
    "pyarrow==26.0.1" "trafilatura<1.12" "lxml_html_clean" "faust-cchardet" "python-magic" "warcio==1.8.1"
[ -x .venv-tsl/bin/python ] || python3 -m venv .venv-tsl
.venv-tsl/bin/pip install -q "tree-sitter==0.21.3" "tree-sitter-languages==1.10.2"
[ -x .venv-ray/bin/python ] || python3 -m venv .venv-ray
.venv-ray/bin/pip install -q "ray[data]==2.60.0" "dask==2026.8.0" "distributed==2026.8.0" "numba==0.68.1" \
    "rensa==0.5.0" "pydantic>=2.10" "duckdb==1.4.4" "pyarrow==26.0.1" "numpy==2.4.6" psutil
