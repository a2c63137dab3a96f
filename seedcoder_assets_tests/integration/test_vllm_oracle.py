"""The real oracle path: a vLLM server (CPU build, its own virtualenv) started here on loopback,
serving a tiny Llama built here, labelling real files through the real client, then the whole
quality branch (scorer, scores, corpora) in Dagster.

Runs with `pytest -m integration`; `.ci/run` sets up the vLLM environment and runs it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import dagster as dg
import httpx
import polars as pl
import pytest

from seedcoder_assets.core.parquet_io import iter_batches
from seedcoder_assets.core.quality.scorer import build_tiny_llama
from seedcoder_assets.definitions import defs
from seedcoder_assets.resources.catalog import CatalogResource
from seedcoder_assets.resources.oracle import OracleResource
from seedcoder_assets.resources.storage import StorageResource
from seedcoder_assets.testing.branch import run_github_branch

pytestmark = pytest.mark.integration

VLLM_PYTHON = os.environ.get("SEEDCODER_VLLM_PYTHON", str(Path(".venv-vllm/bin/python").absolute()))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def crawl_env(tmp_path_factory: pytest.TempPathFactory, small_crawl: Path):
    home = tmp_path_factory.mktemp("vhome")
    shutil.copytree(small_crawl, home / "landing" / "c1")
    storage = StorageResource(lake_root=str(home / "lake"), landing_root=str(home / "landing"),
                              local_dir=str(home / "local"), model_root=str(home / "models"))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("crawl", ["c1"])
    base = {"storage": storage, "catalog_db": CatalogResource(database=str(home / "catalog.duckdb"))}
    assert run_github_branch(defs(), instance, "c1", resources=base).success

    def texts():
        for batch in iter_batches(f"{home}/lake/filters/syntax_checked_files/crawl=c1", ["content"]):
            yield from batch.column("content").to_pylist()

    model = build_tiny_llama(texts(), home / "tiny-oracle", hidden_size=256, max_positions=8192)
    return home, base, instance, model


@pytest.fixture(scope="module")
def vllm_server(crawl_env):
    if not Path(VLLM_PYTHON).exists():
        pytest.skip(f"no vLLM environment at {VLLM_PYTHON}: run deploy/setup_vllm_cpu.sh")
    home, _, _, model = crawl_env
    port = _free_port()
    log = open(home / "vllm.log", "w")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": "nobind"}
    proc = subprocess.Popen(
        [VLLM_PYTHON, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model), "--served-model-name",
         "tiny", "--host", "127.0.0.1", "--port", str(port), "--max-model-len", "8192", "--dtype", "bfloat16",
         "--enforce-eager", "--max-num-seqs", "16"],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.time() + 420
        while time.time() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"vLLM exited with {proc.returncode}: {(home / 'vllm.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(2)
        else:
            pytest.fail(f"vLLM did not come up: {(home / 'vllm.log').read_text()[-3000:]}")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def test_vllm_labels_real_files_and_the_quality_branch_runs(crawl_env, vllm_server) -> None:
    home, base, instance, _ = crawl_env
    # A random tiny model cannot write an explanation that ends in a rating, so the server is
    # constrained to the rating alone (structured_outputs.regex); a real oracle gets explanation=True.
    oracle = OracleResource(base_url=vllm_server, model="tiny", max_tokens=24, explanation=False, max_concurrency=8,
                            timeout_s=120)
    resources = {**base, "oracle": oracle}

    def run(job: str, crawl: str | None = "c1", config: dict | None = None) -> dg.ExecuteInProcessResult:
        return defs().resolve_job_def(job).execute_in_process(resources=resources, instance=instance,
                                                              partition_key=crawl, run_config=config or {})

    sample = {"quotas": {"Python": 80, "C": 12, "Markdown": 12, "JavaScript": 8}, "scale": 1.0, "seed": 0}
    labels_config = {"ops": {"quality__oracle_labels": {"config": {"max_content_chars": 6000}}}}
    assert run("label_sample_job", config={"ops": {"quality__oracle_label_sample": {"config": sample}}}).success
    result = run("oracle_labels_job", crawl="c1|000", config=labels_config)  # the crawl's one shard
    labels = pl.read_parquet(f"{home}/lake/quality/oracle_labels/crawl=c1/**/*.parquet")
    sampled = pl.read_parquet(f"{home}/lake/quality/oracle_label_sample/crawl=c1/**/*.parquet").height
    assert labels.height == sampled >= 100  # some languages have fewer files than their quota
    # The regex keeps replies in the rating format; one cut by max_tokens is a recorded parse failure.
    ok = labels.filter(pl.col("status") == "ok")
    assert ok.height >= 0.95 * labels.height and ok["rating"].is_between(0, 10).all()
    assert labels["raw"].str.starts_with("Rating: [[").all()
    failed = labels.filter(pl.col("status") != "ok")
    assert (failed["status"] == "parse_failure").all() and failed["rating"].null_count() == failed.height
    assert labels["truncated"].any()  # real files longer than the budget were cut, and that was recorded
    md = {e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
          for e in result.get_asset_materialization_events()}["quality/oracle_labels"]
    assert md["asked"].value == sampled and md["requests_per_s"].value > 0

    again = run("oracle_labels_job", crawl="c1|000", config=labels_config)  # all cached: vLLM is not asked again
    md2 = {e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata
           for e in again.get_asset_materialization_events()}["quality/oracle_labels"]
    assert md2["asked"].value == 0 and md2["cached"].value == sampled

    backbone = build_tiny_llama(["def f(x):\n    return x\n"] * 50, home / "tiny-backbone")
    # The random oracle's ratings are noise, so the bound only guards the mechanics here.
    scorer_config = {"ops": {"quality__quality_scorer": {"config": {
        "backbone": str(backbone), "learning_rate": 1e-3, "max_tokens": 128, "max_mae": 10.0}}}}
    assert run("scorer_job", crawl=None, config=scorer_config).success
    assert run_github_branch(defs(), instance, "c1", jobs=("scoring_job", "corpus_job"), resources=resources).success
    scores = pl.read_parquet(f"{home}/lake/quality/file_quality_scores/crawl=c1/**/*.parquet")
    files = pl.read_parquet(f"{home}/lake/filters/syntax_checked_files/crawl=c1/**/*.parquet")
    assert scores.height == files.height and scores["score"].is_between(0, 10).all()


@pytest.mark.gpu
def test_gpu_vllm_server_with_explanations() -> None:
    """On a GPU machine: point SEEDCODER_ORACLE_URL/SEEDCODER_ORACLE_MODEL at a real vLLM server with an
    instruction-tuned model; replies then carry an explanation before the rating."""
    url, model = os.environ.get("SEEDCODER_ORACLE_URL"), os.environ.get("SEEDCODER_ORACLE_MODEL")
    if not url or not model:
        pytest.skip("set SEEDCODER_ORACLE_URL and SEEDCODER_ORACLE_MODEL to a GPU vLLM server")
    from seedcoder_assets.core.quality.oracle import label
    from seedcoder_assets.core.quality.prompt import render_prompt

    settings = OracleResource(base_url=url, model=model, explanation=True).settings()
    code = Path(__file__).read_text()
    replies = {}
    label(settings, [("self", render_prompt("Python", code, 20_000).text)], lambda k, r: replies.__setitem__(k, r))
    assert replies["self"].status == "ok" and len(replies["self"].raw) > 40
