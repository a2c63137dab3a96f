"""The one keep/drop/write loop: a stage decides, the runner streams, writes and accounts.

A per-record stage is a function from a record batch to `Verdicts` (kept or dropped with a reason,
and optionally the rows to write instead of the kept input rows: a transform). The runner reads the
batches, writes the output partition and exactly one lineage row per input record, and counts rows,
bytes, drop reasons and the languages kept. Filters only decide; none of them writes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from seedcoder_assets.core.parquet_io import PartWriter
from seedcoder_assets.core.schemas import FILE_SCHEMA
from seedcoder_assets.core.stats import LineageWriter, StageStats


@dataclass(frozen=True)
class Verdicts:
    """A stage's decision on every row of one batch, in row order.

    `reason` is None exactly where `keep` is true. `detail`, `survivor`, `cluster` and `score` go to
    the lineage rows as they are (None, one value for every row, or one per row). `output`, when
    given, is written instead of the kept input rows (a transform or a merge decides what it writes);
    `output_id` then names, per kept input row, the output record it went into (several input rows of a
    merge share one).
    """

    keep: np.ndarray
    reason: Sequence[str | None] | pa.Array
    detail: Sequence[str | None] | pa.Array | str | None = None
    survivor: Sequence[str | None] | pa.Array | str | None = None
    cluster: Sequence[str | None] | pa.Array | str | None = None
    score: Sequence[float | None] | pa.Array | float | None = None
    output_id: Sequence[str | None] | pa.Array | None = None  # a merge's or a new record's id, per input row
    output: pa.RecordBatch | pa.Table | None = None

    @staticmethod
    def from_reasons(reasons: Sequence[str | None], **lineage) -> Verdicts:
        """Kept where the reason is None."""
        return Verdicts(np.fromiter((r is None for r in reasons), bool, len(reasons)), reasons, **lineage)


Decide = Callable[[pa.RecordBatch], Verdicts]


def run_stage(batches: Iterable[pa.RecordBatch], dst_uri: str, lineage: LineageWriter, decide: Decide,
              schema: pa.Schema = FILE_SCHEMA, close: bool = True) -> StageStats:
    """Decide every batch, write what it keeps to `dst_uri` and one lineage row per input record.

    The input batches must carry `id` and `size` (the record's bytes); a `language` column is counted
    for the rows kept. A verdict that does not cover its batch, or a kept row with a reason, is a bug
    in the stage and fails it before anything inconsistent is written.
    """
    with PartWriter(dst_uri, schema) as out:
        for batch in batches:
            verdicts = decide(batch)
            keep = lineage.record_batch(batch, verdicts)
            out.write_table(verdicts.output if verdicts.output is not None else batch.filter(pa.array(keep)))
    # close=False: the stage has more to do (index its survivors, aggregate) before its lineage is final
    # and its time is taken; it closes the writer itself.
    return lineage.close() if close else lineage.stats

