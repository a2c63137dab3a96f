"""deploy/: every Kubernetes manifest validates offline, and the pieces agree with each other and the code."""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
K8S_VERSION = "1.33"


def _rendered() -> list[dict]:
    """`kubectl kustomize deploy/k8s` (kubectl is on the machine image); the listed files without it."""
    if shutil.which("kubectl"):
        out = subprocess.run(["kubectl", "kustomize", str(DEPLOY / "k8s")], check=True, capture_output=True,
                             text=True).stdout
        return [d for d in yaml.safe_load_all(out) if d]
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    return [d for f in kustomization["resources"] for d in yaml.safe_load_all((DEPLOY / "k8s" / f).read_text()) if d]


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict]:
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in _rendered()}


@pytest.fixture(scope="module")
def values() -> dict:
    return yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())


def _env(values: dict) -> dict[str, str]:
    deployment = values["dagster-user-deployments"]["deployments"][0]
    return {e["name"]: e["value"] for e in deployment["env"]}


def test_every_manifest_validates_against_the_kubernetes_schema(manifests: dict[str, dict]) -> None:
    assert set(manifests) == {"Namespace/seedcoder", "PersistentVolumeClaim/oracle-models",
                              "Deployment/vllm-oracle", "Service/vllm-oracle", "DaskCluster/seedcoder-dask"}
    for doc in manifests.values():
        assert doc["kind"] == "Namespace" or doc["metadata"]["namespace"] == "seedcoder"
        if doc["kind"] != "DaskCluster":  # a custom resource: its pod and service specs are validated below
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_dask_cluster_runs_the_code_location_image_where_the_code_looks_for_it(manifests: dict[str, dict],
                                                                                    values: dict) -> None:
    spec = manifests["DaskCluster/seedcoder-dask"]["spec"]
    meta = {"name": "x", "namespace": "seedcoder"}
    for part in ("worker", "scheduler"):
        kubernetes_validate.validate({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec[part]["spec"]},
                                     K8S_VERSION, strict=True)
    kubernetes_validate.validate({"apiVersion": "v1", "kind": "Service", "metadata": meta,
                                  "spec": spec["scheduler"]["service"]}, K8S_VERSION, strict=True)
    image = values["dagster-user-deployments"]["deployments"][0]["image"]
    for part in ("worker", "scheduler"):
        assert spec[part]["spec"]["containers"][0]["image"] == f"{image['repository']}:{image['tag']}"
    env = _env(values)
    port = next(p["port"] for p in spec["scheduler"]["service"]["ports"] if p["name"] == "tcp-comm")
    assert env["SEEDCODER_DEDUP_ENGINE"] == "dask"
    assert env["SEEDCODER_DASK_ADDRESS"] == f"tcp://seedcoder-dask-scheduler.seedcoder.svc.cluster.local:{port}"
    worker_env = {e["name"]: e["value"] for e in spec["worker"]["spec"]["containers"][0]["env"]}
    storage = {k: v for k, v in env.items() if k.startswith(("SEEDCODER_LAKE", "SEEDCODER_INDEX", "SEEDCODER_S3", "AWS_"))}
    assert {"SEEDCODER_LAKE_ROOT", "AWS_REGION"} <= set(storage)
    assert {k: worker_env.get(k) for k in storage} == storage  # the workers read the lake the steps write


def test_a_broken_manifest_is_caught() -> None:
    bad = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
           "spec": {"replicas": "one", "selector": {}, "template": {}}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


def test_oracle_server_has_a_gpu_a_health_probe_and_local_weights(manifests: dict[str, dict], values: dict) -> None:
    pod = manifests["Deployment/vllm-oracle"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert {"name": "models", "mountPath": "/models", "readOnly": True} in container["volumeMounts"]
    claim = next(v for v in pod["volumes"] if v["name"] == "models")["persistentVolumeClaim"]["claimName"]
    assert f"PersistentVolumeClaim/{claim}" in manifests
    args = dict(a.removeprefix("--").split("=", 1) for a in container["args"])
    # The Service selects the pods and the code location's URL and model name point at it.
    service = manifests["Service/vllm-oracle"]
    labels = manifests["Deployment/vllm-oracle"]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    env = _env(values)
    port = service["spec"]["ports"][0]["port"]
    assert env["SEEDCODER_ORACLE_URL"] == f"http://vllm-oracle.seedcoder.svc.cluster.local:{port}/v1"
    assert env["SEEDCODER_ORACLE_MODEL"] == args["served-model-name"] and int(args["port"]) == port


def test_helm_values_configure_the_code_location_as_the_code_reads_it(values: dict) -> None:
    deployment = values["dagster-user-deployments"]["deployments"][0]
    module = deployment["dagsterApiGrpcArgs"][deployment["dagsterApiGrpcArgs"].index("-m") + 1]
    assert callable(importlib.import_module(module).defs)
    env = _env(values)
    source = "\n".join(p.read_text() for p in (DEPLOY.parent / "seedcoder_assets").rglob("*.py"))
    read = set(re.findall(r"SEEDCODER_[A-Z_]+[A-Z]", source)) | {
        f"SEEDCODER_{pool}_{what}" for pool in ("GPU", "CPU") for what in ("NODE_SELECTOR", "TOLERATION")}
    assert {k for k in env if k.startswith("SEEDCODER_")} <= read, "values set a variable no code reads"
    assert env["SEEDCODER_EXECUTOR"] == "k8s"
    for root in ("SEEDCODER_LAKE_ROOT", "SEEDCODER_LANDING_ROOT", "SEEDCODER_MODEL_ROOT", "SEEDCODER_INDEX_ROOT"):
        assert env[root].startswith("s3://"), root  # pods are throw-away: nothing durable on their disks
    # Secrets by reference only, the same ones for the code server and for run/step pods.
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert launcher["envSecrets"] == deployment["envSecrets"]
    assert values["generatePostgresqlPasswordSecret"] is False and "postgresqlPassword" not in values["postgresql"]
    assert values["global"]["postgresqlSecretName"]
    assert not re.search(r"(?i)(secret_access_key|password)\s*:\s*\S", (DEPLOY / "helm" / "values.yaml").read_text()
                         .replace("postgresqlSecretName", ""))
    logs = values["computeLogManager"]
    assert logs["type"] == "S3ComputeLogManager"
    assert env["SEEDCODER_LAKE_ROOT"].startswith(f"s3://{logs['config']['s3ComputeLogManager']['bucket']}/")


def test_the_image_serves_the_same_module(values: dict) -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    args = values["dagster-user-deployments"]["deployments"][0]["dagsterApiGrpcArgs"]
    assert f'"{args[-1]}"' in dockerfile and "pip install" in dockerfile
    port = values["dagster-user-deployments"]["deployments"][0]["port"]
    assert f"EXPOSE {port}" in dockerfile


def test_local_instance_has_the_concurrency_pools_the_assets_use() -> None:
    instance = yaml.safe_load((DEPLOY.parent / "dagster.yaml").read_text())
    assert instance["concurrency"]["pools"]["default_limit"] == 1
    from seedcoder_assets.definitions import defs

    graph = defs().resolve_asset_graph()
    pools = {graph.get(k).assets_def.op.pool for k in graph.get_all_asset_keys()
             if graph.get(k).assets_def.is_executable} - {None}
    assert pools == {"duckdb", "oracle"}
