"""Basic filter: keep files whose extension or name maps to one of the 89 code languages."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from seedcoder_assets.core.parquet_io import iter_batches
from seedcoder_assets.core.runner import Verdicts, run_stage
from seedcoder_assets.core.stats import LineageWriter, StageStats


def decide_code_files(batch: pa.RecordBatch) -> Verdicts:
    """Kept: files with a language (lineage detail: the language). Dropped: `non_code` (detail: the path)."""
    is_code = pc.is_valid(batch.column("language"))
    return Verdicts(is_code.to_numpy(zero_copy_only=False), pc.if_else(is_code, pa.scalar(None, pa.string()), "non_code"),
                    detail=pc.if_else(is_code, batch.column("language"), batch.column("path")))


def filter_code_files(src_uri: str, dst_uri: str, lineage: LineageWriter) -> StageStats:
    """Kept: files with a language. Dropped: `non_code` (README, LICENSE, .txt, .cfg, data...)."""
    return run_stage(iter_batches(src_uri, batch_rows=1024), dst_uri, lineage, decide_code_files)
