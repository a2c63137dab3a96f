"""Kubernetes placement of steps, in one place: GPU steps get a GPU node, CPU-heavy steps their own pool.

The tags are `dagster-k8s/config` op tags: `k8s_job_executor` turns each step into a pod with
these resources; the multiprocess executor ignores them, so the same definitions run locally.
Node selectors and tolerations come from the environment so clusters differ only in values.
"""

from __future__ import annotations

from typing import Any

from seedcoder_assets import settings


def _node_pool(selector: str, toleration: str) -> dict[str, Any]:
    """A `KEY=VALUE` node selector and a `KEY:EFFECT` toleration as pod spec config."""
    spec: dict[str, Any] = {}
    if selector:
        key, _, value = selector.partition("=")
        spec["node_selector"] = {key: value}
    if toleration:
        key, _, effect = toleration.partition(":")
        spec["tolerations"] = [{"key": key, "operator": "Exists", "effect": effect or "NoSchedule"}]
    return spec


def gpu_step_tags(gpus: int = 1, cpu: str = "4", memory: str = "32Gi") -> dict[str, Any]:
    """Op tags for oracle labelling, scorer training and scorer inference."""
    s = settings.current()
    return {"dagster-k8s/config": {
        "container_config": {"resources": {
            "requests": {"cpu": cpu, "memory": memory, "nvidia.com/gpu": str(gpus)},
            "limits": {"memory": memory, "nvidia.com/gpu": str(gpus)},
        }},
        "pod_spec_config": _node_pool(s.gpu_node_selector, s.gpu_toleration),
    }}


def cpu_step_tags(cpu: str = "4", memory: str = "16Gi") -> dict[str, Any]:
    """Op tags for CPU-heavy steps (ingest, dedup, syntax, corpus assembly)."""
    s = settings.current()
    return {"dagster-k8s/config": {
        "container_config": {"resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory}}},
        "pod_spec_config": _node_pool(s.cpu_node_selector, s.cpu_toleration),
    }}
