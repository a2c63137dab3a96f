"""Per-stage accounting: rows and bytes in/out, drop reasons, time; and the lineage rows behind it."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from seedcoder_assets.core import paths
from seedcoder_assets.core.parquet_io import PartWriter
from seedcoder_assets.core.schemas import DROPPED, KEPT, LINEAGE_SCHEMA


@dataclass
class StageStats:
    """What a stage did to one partition. `balanced` is the invariant kept + dropped == in."""

    stage: str
    rows_in: int = 0
    rows_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    drops: Counter[str] = field(default_factory=Counter)
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

    def __init__(self, root: str, stage: str, crawl: str, run_id: str) -> None:
        self.crawl, self.stage, self.run_id = crawl, stage, run_id
        self.stats = StageStats(stage)
        self._writer = PartWriter(paths.lineage_uri(root, stage, crawl), LINEAGE_SCHEMA)
        self._rows: list[dict[str, Any]] = []

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
             "run_id": self.run_id, **fields}
        )
        if len(self._rows) >= 8192:  # a fixed, small buffer: memory must not depend on partition size
            self.flush()

    def flush(self) -> None:
        self._writer.write_rows(self._rows)
        self._rows = []

    def close(self) -> StageStats:
        self.flush()
        self._writer.close()
        return self.stats.finish()
