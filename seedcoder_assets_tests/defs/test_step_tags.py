"""GPU steps carry the Kubernetes GPU request; every other step does not."""

import json
from pathlib import Path

import dagster as dg
import yaml

from seedcoder_assets.definitions import defs
from seedcoder_assets.partitions import job_partition_keys

GPU_ASSETS = {"quality/oracle_labels", "quality/quality_scorer", "quality/file_quality_scores",
              "quality/repo_level_corpus", "quality/repo_quality"}


def test_gpu_steps_and_only_they_request_a_gpu() -> None:
    graph = defs().resolve_asset_graph()
    seen = set()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if not isinstance(node.assets_def, dg.AssetsDefinition) or not node.assets_def.is_executable:
            continue
        tags = node.assets_def.op.tags.get("dagster-k8s/config") or {}
        tags = json.loads(tags) if isinstance(tags, str) else tags  # op tags are stored as JSON strings
        limits = tags.get("container_config", {}).get("resources", {}).get("limits", {}) if tags else {}
        name = key.to_user_string()
        wants_gpu = "nvidia.com/gpu" in limits
        assert wants_gpu == (name in GPU_ASSETS), name
        if wants_gpu:
            assert tags["pod_spec_config"]["tolerations"][0]["key"] == "nvidia.com/gpu"
            seen.add(name)
    assert seen == GPU_ASSETS


KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u, namespace: seedcoder}}]
current-context: c
"""


def _step_pods(tmp_path) -> dict[str, dict]:
    """Each step's Kubernetes Job, built by dagster-k8s's own code exactly as `k8s_job_executor` does:
    run-launcher container context, merged with the step's `dagster-k8s/config` tags, then
    `construct_dagster_k8s_job`. Configured like deploy/helm/values.yaml; no cluster is contacted."""
    import kubernetes
    from dagster._core.execution.api import create_execution_plan
    from dagster._core.storage.dagster_run import DagsterRun
    from dagster_k8s import K8sRunLauncher
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import construct_dagster_k8s_job, get_k8s_job_name, get_user_defined_k8s_config

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    values = yaml.safe_load((Path(__file__).resolve().parents[2] / "deploy" / "helm" / "values.yaml").read_text())
    config = values["runLauncher"]["config"]["k8sRunLauncher"]
    launcher = K8sRunLauncher(
        service_account_name=values["global"]["serviceAccountName"], instance_config_map="dagster-instance",
        dagster_home="/opt/dagster/dagster_home", postgres_password_secret=values["global"]["postgresqlSecretName"],
        job_image="seedcoder-assets:test", job_namespace=config["jobNamespace"], load_incluster_config=False,
        kubeconfig_file=str(kubeconfig), env_secrets=[s["name"] for s in config["envSecrets"]])
    d = defs()
    pods = {}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("crawl", ["c1"])
        for job_name in ("github_shards_job", "github_files_job", "github_syntax_job", "label_sample_job",
                         "oracle_labels_job", "scorer_job", "scoring_job", "corpus_job", "catalog_job"):
            job = d.resolve_job_def(job_name)
            key = job_partition_keys(job_name, "c1")[0] if job.partitions_def else None
            plan = create_execution_plan(job, instance_ref=instance.get_ref(),
                                         tags={"dagster/partition": key} if key else None)
            for step in plan.steps:
                run = DagsterRun(job_name=job_name, run_id="run-1")
                context = K8sContainerContext.create_for_run(run, launcher, include_run_tags=False).merge(
                    K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(step.tags)))
                name = f"dagster-step-{get_k8s_job_name('run-1', step.key)}"
                job_obj = construct_dagster_k8s_job(
                    context.get_k8s_job_config(None, launcher), args=["dagster", "api", "execute_step"],
                    job_name=name, pod_name=name, component="step_worker",
                    user_defined_k8s_config=context.run_k8s_config, labels={"dagster/op": step.key})
                pods[step.key] = kubernetes.client.ApiClient().sanitize_for_serialization(job_obj)
    return pods


def test_step_pods_built_by_dagster_k8s_request_a_gpu_only_for_gpu_steps(tmp_path) -> None:
    import kubernetes_validate

    pods = _step_pods(tmp_path)
    gpu_steps = {"quality__oracle_labels", "quality__quality_scorer", "quality__file_quality_scores",
                 "repo_level_corpus"}
    assert gpu_steps <= set(pods) and "raw_repo_files" in pods and "catalog__lake_catalog" in pods
    for step, job in pods.items():
        kubernetes_validate.validate(job, "1.33", strict=True)  # a Job the API server accepts
        pod = job["spec"]["template"]["spec"]
        container = pod["containers"][0]
        limits = (container.get("resources") or {}).get("limits") or {}
        if step in gpu_steps:
            assert limits.get("nvidia.com/gpu") == "1", step
            assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}, step
            assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"], step
        else:
            assert "nvidia.com/gpu" not in limits, step
            assert "nvidia.com/gpu.present" not in (pod.get("nodeSelector") or {}), step
        assert container["image"] == "seedcoder-assets:test"
        assert {"secretRef": {"name": "seedcoder-s3"}} in container["envFrom"]
        assert any(e["name"] == "DAGSTER_HOME" for e in container["env"])
    for step in ("raw_repo_files", "dedup__minhash_signatures", "dedup__near_dup_clusters",
                 "filters__syntax_checked_files"):  # CPU-heavy steps get their own sizing
        resources = pods[step]["spec"]["template"]["spec"]["containers"][0]["resources"]
        assert resources["requests"]["cpu"] == "4" and "nvidia.com/gpu" not in resources["limits"], step


def test_one_environment_variable_chooses_the_executor(monkeypatch) -> None:
    from seedcoder_assets.definitions import executor_from_env

    for value, name in (("k8s", "k8s"), ("multiprocess", "multiprocess"),
                        ("in_process", "in_process")):
        monkeypatch.setenv("SEEDCODER_EXECUTOR", value)
        assert executor_from_env().name == name
