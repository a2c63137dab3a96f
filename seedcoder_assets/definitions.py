"""The code location: everything under defs/ is autoloaded; the executor is picked by one env var."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    loaded = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
    if os.environ.get("SEEDCODER_EXECUTOR", "multiprocess") == "in_process":
        executor = dg.in_process_executor
    else:
        executor = dg.multiprocess_executor.configured({"max_concurrent": int(os.environ.get("SEEDCODER_MAX_CONCURRENT", "2"))})
    return dg.Definitions.merge(loaded, dg.Definitions(executor=executor))
