"""Token shards in Megatron-LM's indexed-dataset format, which Megatron (and NeMo, and GPT-NeoX) trainers read
as they are: `<name>.bin` is every document's token ids back to back (int32: vocabularies over 65,536 ids are
the norm), `<name>.idx` the index:

    b"MMIDIDX\\x00\\x00", version <Q 1, dtype code <B (4: int32),
    sequence count <Q, document count <Q (sequences + 1),
    sequence lengths int32[sequences], sequence byte offsets int64[sequences],
    document indices int64[sequences + 1] (0, 1, 2, ...: one sequence per document)

Next to them, `<name>.parquet` holds one row per document, in the same order: its position, the record it
came from (corpus, partition, id), its FIM cuts and token count, and its text, so that (shard, document)
leads back to the crawl (`seedcoder why --shard`). A shard is written under a temporary name and renamed
when complete; a reader never sees half of one.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HEADER: Final = b"MMIDIDX\x00\x00"
INT32_CODE: Final = 4

TEXT_SCHEMA: Final[pa.Schema] = pa.schema([
    ("doc", pa.int64()), ("corpus", pa.string()), ("partition", pa.string()), ("source_id", pa.string()),
    ("fim", pa.string()),  # spm | psm | null: not transformed
    ("fim_start", pa.int64()), ("fim_end", pa.int64()),  # the middle's character span in the source text (after
                                                          # escaping, where sentinels were escaped)
    ("escaped", pa.int32()),  # sentinel occurrences escaped in the source
    ("tokens", pa.int64()), ("text", pa.large_string()),
])


def write_idx(path: Path, lengths: np.ndarray) -> None:
    lengths = np.asarray(lengths, np.int32)
    pointers = np.zeros(len(lengths), np.int64)
    if len(lengths):
        pointers[1:] = np.cumsum(lengths[:-1], dtype=np.int64) * 4
    with path.open("wb") as fh:
        fh.write(HEADER + struct.pack("<Q", 1) + struct.pack("<B", INT32_CODE))
        fh.write(struct.pack("<Q", len(lengths)) + struct.pack("<Q", len(lengths) + 1))
        fh.write(lengths.tobytes())
        fh.write(pointers.tobytes())
        fh.write(np.arange(len(lengths) + 1, dtype=np.int64).tobytes())


class TokenWriter:
    """A shard's .bin/.idx: documents' ids appended as they come, lengths kept for the .idx, written at `close`."""

    def __init__(self, path_prefix: str) -> None:
        self._prefix = path_prefix
        self._bin = open(f"{path_prefix}.bin", "wb")  # noqa: SIM115 (closed in close())
        self.lengths: list[int] = []
        self.tokens = 0

    def write(self, ids: list[np.ndarray]) -> None:
        if ids:  # one write per batch: a write per document costs more than the copy
            self._bin.write(np.concatenate(ids).astype(np.int32, copy=False))
        lengths = [len(a) for a in ids]
        self.lengths += lengths
        self.tokens += sum(lengths)

    def close(self) -> None:
        self._bin.close()
        write_idx(Path(f"{self._prefix}.idx"), np.array(self.lengths, np.int32))

    def abort(self) -> None:
        self._bin.close()


class ShardWriter:
    """One shard: token ids to .bin/.idx, rows to .parquet, under a temporary name; `close` renames."""

    def __init__(self, prefix: Path) -> None:
        self.prefix = prefix
        prefix.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = prefix.with_name(f".{prefix.name}.tmp")
        self._ids = TokenWriter(str(self._tmp))
        self._text = pq.ParquetWriter(f"{self._tmp}.parquet", TEXT_SCHEMA, compression="zstd")

    @property
    def tokens(self) -> int:
        return self._ids.tokens

    def write(self, ids: list[np.ndarray], rows: dict[str, list]) -> None:
        """Documents' token ids (EOS included) and their text rows (without `doc` and `tokens`)."""
        start = len(self._ids.lengths)
        self._ids.write(ids)
        table = pa.table({"doc": pa.array(range(start, start + len(ids)), pa.int64()), **rows,
                          "tokens": pa.array(self._ids.lengths[start:], pa.int64())})
        self._text.write_table(table.select(TEXT_SCHEMA.names).cast(TEXT_SCHEMA))

    def close(self) -> dict[str, int | str]:
        self._ids.close()
        self._text.close()
        for ext in ("bin", "idx", "parquet"):
            os.replace(f"{self._tmp}.{ext}", f"{self.prefix}.{ext}")
        return {"name": self.prefix.name, "documents": len(self._ids.lengths), "tokens": self.tokens}

    def abort(self) -> None:
        self._ids.abort()
        self._text.close()
        for ext in ("bin", "idx", "parquet"):
            Path(f"{self._tmp}.{ext}").unlink(missing_ok=True)
