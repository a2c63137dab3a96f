"""Per-stage accounting: rows and bytes in/out, drop reasons, time; and the lineage rows behind it."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seedcoder_assets.core import paths
from seedcoder_assets.core.parquet_io import PartWriter
from seedcoder_assets.core.schemas import DROPPED, KEPT, LINEAGE_SCHEMA

if TYPE_CHECKING:
    from seedcoder_assets.core.runner import Verdicts


@dataclass
class StageStats:
    """What a stage did to one partition. `balanced` is the invariant kept + dropped == in."""

    stage: str
    rows_in: int = 0
    rows_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    drops: Counter[str] = field(default_factory=Counter)
    languages: Counter[str] = field(default_factory=Counter)  # kept rows per language, where records have one
    extra: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    seconds: float = 0.0

    @property
    def rows_dropped(self) -> int:
        return sum(self.drops.values())

    @property
    def balanced(self) -> bool:
        return self.rows_out + self.rows_dropped == self.rows_in

    def finish(self) -> StageStats:
        self.seconds = time.perf_counter() - self.started
        return self

    def as_metadata(self) -> dict[str, Any]:
        mb = self.bytes_in / 1e6
        return {
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "rows_dropped": self.rows_dropped,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "drop_reasons": dict(sorted(self.drops.items())),
            "seconds": round(self.seconds, 3),
            "mb_per_s": round(mb / self.seconds, 3) if self.seconds > 0 else None,
            "lineage_balanced": self.balanced,
            **self.extra,
        }


class LineageWriter:
    """Writes one lineage row per record for a stage and keeps the stage's counts with it."""

    def __init__(self, root: str, stage: str, crawl: str, run_id: str, source: str = "github",
                 shard: str | None = None) -> None:
        self.crawl, self.stage, self.run_id, self.source = crawl, stage, run_id, source
        self.stats = StageStats(stage)
        self._writer = PartWriter(paths.lineage_uri(root, stage, crawl, shard), LINEAGE_SCHEMA)
        self._rows: list[dict[str, Any]] = []
        self._tables: list[pa.Table] = []
        self._buffered = 0

    def kept(self, id_: str, nbytes: int = 0, **fields: Any) -> None:
        self.stats.rows_in += 1
        self.stats.rows_out += 1
        self.stats.bytes_in += nbytes
        self.stats.bytes_out += nbytes
        self._add(id_, KEPT, None, fields)

    def dropped(self, id_: str, reason: str, nbytes: int = 0, **fields: Any) -> None:
        self.stats.rows_in += 1
        self.stats.bytes_in += nbytes
        self.stats.drops[reason] += 1
        self._add(id_, DROPPED, reason, fields)

    def _add(self, id_: str, decision: str, reason: str | None, fields: dict[str, Any]) -> None:
        self._rows.append(
            {"id": id_, "crawl": self.crawl, "stage": self.stage, "decision": decision, "reason": reason,
             "run_id": self.run_id, "source": self.source, **fields}
        )
        if len(self._rows) >= 8192:  # a fixed, small buffer: memory must not depend on partition size
            self.flush()

    def record_batch(self, batch: pa.RecordBatch, verdicts: Verdicts) -> np.ndarray:
        """One lineage row per row of `batch` (which carries `id` and `size`), as `verdicts` decided.
        Returns the validated keep mask (a bool per row)."""
        n = batch.num_rows
        keep = np.asarray(verdicts.keep)
        if keep.dtype != np.bool_ or keep.shape != (n,):
            raise ValueError(f"{self.stage}: the keep mask must be {n} booleans, not {keep.shape} of {keep.dtype}")
        if n == 0:
            return keep
        reason = _column(verdicts.reason, n, pa.string())
        if (pc.sum(pc.is_valid(reason)).as_py() or 0) != n - int(keep.sum()) or \
                pc.any(pc.and_(pa.array(keep), pc.is_valid(reason))).as_py():
            raise ValueError(f"{self.stage}: every dropped record needs a reason and no kept record may have one")
        sizes = batch.column("size").fill_null(0).to_numpy(zero_copy_only=False)
        s = self.stats
        s.rows_in += n
        s.rows_out += int(keep.sum())
        s.bytes_in += int(sizes.sum())
        s.bytes_out += int(sizes[keep].sum())
        if not keep.all():
            s.drops.update({v["values"]: v["counts"] for v in pc.value_counts(reason.drop_null()).to_pylist()})
        if "language" in batch.schema.names:
            kept_langs = batch.column("language").filter(pa.array(keep)).fill_null("(none)")
            s.languages.update({v["values"]: v["counts"] for v in pc.value_counts(kept_langs).to_pylist()})
        decision = pc.if_else(pa.array(keep), KEPT, DROPPED)
        self._tables.append(pa.table({
            "id": batch.column("id"), "crawl": _column(self.crawl, n, pa.string()),
            "stage": _column(self.stage, n, pa.string()),
            "decision": decision, "reason": reason,
            "cluster": _column(verdicts.cluster, n, pa.string()), "survivor": _column(verdicts.survivor, n, pa.string()),
            "detail": _column(verdicts.detail, n, pa.string()), "score": _column(verdicts.score, n, pa.float32()),
            "run_id": _column(self.run_id, n, pa.string()),
            "output_id": _column(verdicts.output_id, n, pa.string()),
            "source": _column(self.source, n, pa.string())}, schema=LINEAGE_SCHEMA))
        self._buffered += n
        if self._buffered >= 8192:
            self.flush()
        return keep

    def flush(self) -> None:
        self._writer.write_rows(self._rows)
        self._rows = []
        if self._tables:  # one write, so one row group per flush rather than one per batch
            self._writer.write_table(pa.concat_tables(self._tables))
        self._tables, self._buffered = [], 0

    def close(self) -> StageStats:
        self.flush()
        self._writer.close()
        return self.stats.finish()


def _column(values: Any, n: int, type_: pa.DataType) -> pa.Array:
    """A lineage column: None (all null), one value repeated, or one value per row."""
    if values is None or isinstance(values, (str, float, int)):
        return pa.repeat(pa.scalar(values, type_), n) if values is not None else pa.nulls(n, type_)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    array = values if isinstance(values, pa.Array) else pa.array(values, type_)
    if len(array) != n:
        raise ValueError(f"a lineage column of {len(array)} values for {n} records")
    return array.cast(type_)
