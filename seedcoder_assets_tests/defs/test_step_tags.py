"""GPU steps carry the Kubernetes GPU request; every other step does not."""

import json

import dagster as dg

from seedcoder_assets.definitions import defs

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
