"""Basic filter: keep files whose extension or name maps to one of the 89 code languages."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from seedcoder_assets.core.parquet_io import PartWriter, iter_batches
from seedcoder_assets.core.schemas import FILE_SCHEMA
from seedcoder_assets.core.stats import LineageWriter, StageStats


def filter_code_files(src_uri: str, dst_uri: str, lineage: LineageWriter) -> StageStats:
    """Kept: files with a language. Dropped: `non_code` (README, LICENSE, .txt, .cfg, data...)."""
    with PartWriter(dst_uri, FILE_SCHEMA) as out:
        for batch in iter_batches(src_uri, batch_rows=1024):
            is_code = pc.is_valid(batch.column("language"))
            for id_, size, lang, path in zip(*(batch.column(c).to_pylist() for c in ("id", "size", "language", "path"))):
                if lang is None:
                    lineage.dropped(id_, "non_code", size, detail=path)
                else:
                    lineage.kept(id_, size, detail=lang)
            out.write_table(pa.Table.from_batches([batch]).filter(is_code))
    return lineage.close()
