"""The code location: everything under defs/ is autoloaded, the declared filter stages are built from
core/pipeline.py, and the executor is picked by one env var.

SEEDCODER_EXECUTOR = multiprocess (default: steps are local processes) | in_process | k8s (each step
its own Kubernetes pod, sized by its `dagster-k8s/config` op tags; see lib/k8s.py).
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from seedcoder_assets import settings
from seedcoder_assets.lib import dagster_compat
from seedcoder_assets.lib.stage_assets import filter_assets

dagster_compat.apply()


def executor_from_env() -> dg.ExecutorDefinition:
    s = settings.current()
    kind = s.executor
    if kind == "in_process":
        return dg.in_process_executor
    if kind == "k8s":
        from dagster_k8s import k8s_job_executor

        # Image, namespace, env and secrets come from the run launcher (Helm values); this caps the
        # pods one run may hold at once so a backfill cannot claim every GPU node.
        return k8s_job_executor.configured({"max_concurrent": s.max_concurrent})
    if kind != "multiprocess":
        raise ValueError(f"SEEDCODER_EXECUTOR={kind!r}: expected multiprocess, in_process or k8s")
    return dg.multiprocess_executor.configured({"max_concurrent": s.max_concurrent})


@dg.definitions
def defs() -> dg.Definitions:
    loaded = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
    # Declared filter stages are built here, when the location loads, from the declarations of that moment.
    return dg.Definitions.merge(loaded, dg.Definitions(assets=filter_assets(), executor=executor_from_env()))
