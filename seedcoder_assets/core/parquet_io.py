"""Streaming Parquet parts: bounded-memory writers and batch readers over local or S3 URIs."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from seedcoder_assets.core.object_store import resolve
from seedcoder_assets.core.paths import shard_folder

SUCCESS_MARKER = "_SUCCESS"
SHARDS_MARKER = "_SHARDS"  # in a crawl folder of shards: the shard keys it must hold
MAX_GROUP_BYTES = 64 << 20  # a row group (and so a read) never holds more content than this
MAX_BATCH_BYTES = 8 << 20  # a batch handed to a stage never holds more content than this
BULK_COLUMNS = frozenset({"content", "raw", "signature", "shingle_set"})  # large per-row values


def slices_by_bytes(batch: pa.RecordBatch | pa.Table, max_bytes: int, column: str = "content"):
    """Consecutive slices of `batch` whose `column` holds at most `max_bytes` (one row may exceed it).

    Row counts alone do not bound memory: 1,024 files of 1 MB are a gigabyte.
    """
    if column not in batch.schema.names or batch.num_rows <= 1:
        yield batch
        return
    sizes = pc.binary_length(batch.column(column)).fill_null(0).to_numpy(zero_copy_only=False)
    ends = np.cumsum(sizes)
    start = 0
    while start < batch.num_rows:
        base = ends[start - 1] if start else 0
        stop = int(np.searchsorted(ends, base + max_bytes, side="right"))
        stop = max(stop, start + 1)
        yield batch.slice(start, stop - start)
        start = stop


class PartWriter:
    """Writes rows of one schema as `part-NNNNN.parquet` files, rolling every `rows_per_part`.

    Opening it deletes whatever the partition held, so a re-run overwrites in full; `close()`
    writes a `_SUCCESS` marker so readers and skip-logic can tell a finished partition.
    """

    def __init__(self, uri: str, schema: pa.Schema, rows_per_part: int = 200_000,
                 rows_per_group: int | None = None) -> None:
        self.uri, self.schema, self.rows_per_part = uri, schema, rows_per_part
        self.rows_per_group = rows_per_group  # small row groups: key-range reads of a sorted column skip the rest
        self.fs, self.path = resolve(uri)
        clear_partition(uri)
        self.fs.create_dir(self.path, recursive=True)
        self._writer: pq.ParquetWriter | None = None
        self._part = 0
        self._rows_in_part = 0
        self.rows = 0

    def _open(self) -> pq.ParquetWriter:
        name = f"{self.path}/part-{self._part:05d}.parquet"
        # File contents are never dictionary-encoded (almost all distinct) nor given min/max statistics
        # (megabytes of text per row group that no reader filters on): both cost time and buy nothing.
        small = [n for n in self.schema.names if n not in BULK_COLUMNS]
        return pq.ParquetWriter(name, self.schema, filesystem=self.fs, compression="zstd",
                                use_dictionary=small, write_statistics=small)

    def write_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            self.write_table(pa.Table.from_pylist(list(rows), schema=self.schema))

    def write_table(self, table: pa.Table | pa.RecordBatch) -> None:
        if table.num_rows == 0:
            return
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        table = table.select(self.schema.names).cast(self.schema)
        if self._writer is None:
            self._writer = self._open()
        for piece in slices_by_bytes(table, MAX_GROUP_BYTES):
            self._writer.write_table(piece, row_group_size=self.rows_per_group)
        self.rows += table.num_rows
        self._rows_in_part += table.num_rows
        if self._rows_in_part >= self.rows_per_part:
            self._writer.close()
            self._writer, self._rows_in_part = None, 0
            self._part += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        elif self.rows == 0:  # an empty partition is still a readable, typed partition
            pq.write_table(self.schema.empty_table(), f"{self.path}/part-00000.parquet", filesystem=self.fs)
        with self.fs.open_output_stream(f"{self.path}/{SUCCESS_MARKER}") as out:
            out.write(str(self.rows).encode())

    def __enter__(self) -> PartWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        elif self._writer is not None:
            self._writer.close()


def clear_partition(uri: str) -> None:
    """Remove a partition folder if it exists (backfills and re-execution overwrite in full)."""
    fs, path = resolve(uri)
    if fs.get_file_info(path).type != pafs.FileType.NotFound:
        fs.delete_dir(path)


def is_complete(uri: str) -> bool:
    """A finished partition: its `_SUCCESS`, or, for a crawl folder of shards, every shard's (the number of
    shards is in `_SHARDS`, written by each shard's writer before its data)."""
    fs, path = resolve(uri)
    if fs.get_file_info(f"{path}/{SUCCESS_MARKER}").type == pafs.FileType.File:
        return True
    shards = expected_shards(uri)
    return shards is not None and all(
        i.type == pafs.FileType.File
        for i in fs.get_file_info([f"{path}/{shard_folder(s)}/{SUCCESS_MARKER}" for s in shards]))


def expected_shards(uri: str) -> list[str] | None:
    """The shard keys a crawl folder of shards must hold (None: not a folder of shards)."""
    fs, path = resolve(uri)
    if fs.get_file_info(f"{path}/{SHARDS_MARKER}").type != pafs.FileType.File:
        return None
    with fs.open_input_stream(f"{path}/{SHARDS_MARKER}") as f:
        return f.read().decode().split()


def mark_shards(crawl_uri: str, shards: Sequence[str]) -> None:
    """Say which shards make up a crawl folder (every shard's writer says the same: a re-write is harmless)."""
    fs, path = resolve(crawl_uri)
    fs.create_dir(path, recursive=True)
    # A crawl written whole before (its parts and `_SUCCESS` at the top) is not read with the shards: its
    # top-level files go (each shard removes the same ones; no shard's folder is touched).
    stale = [i.path for i in fs.get_file_info(pafs.FileSelector(path))
             if i.type == pafs.FileType.File and i.base_name != SHARDS_MARKER]
    for f in stale:
        try:
            fs.delete_file(f)
        except FileNotFoundError:  # another shard removed it first
            pass
    with fs.open_output_stream(f"{path}/{SHARDS_MARKER}") as out:
        out.write(" ".join(shards).encode())


def dataset(uri: str) -> ds.Dataset:
    """Every Parquet file under `uri` (a crawl folder of shards included: Arrow reads subfolders)."""
    fs, path = resolve(uri)
    return ds.dataset(path, format="parquet", filesystem=fs, exclude_invalid_files=True)


def part_paths(uri: str) -> list[str]:
    """The Parquet parts of a finished partition, in name order."""
    if not is_complete(uri):
        raise FileNotFoundError(f"partition {uri} is missing or incomplete: materialize its upstream first")
    fs, path = resolve(uri)
    shards = expected_shards(uri) if fs.get_file_info(f"{path}/{SUCCESS_MARKER}").type != pafs.FileType.File else None
    folders = [f"{path}/{shard_folder(s)}" for s in shards] if shards else [path]
    return [p for folder in folders
            for p in sorted(i.path for i in fs.get_file_info(pafs.FileSelector(folder)) if i.path.endswith(".parquet"))]


def shard_pairs(src_uri: str, dst_uri: str) -> list[tuple[str, str]]:
    """(input, output) folders of a stage that keeps its input's shards: one pair per shard when `src_uri` is
    a crawl folder of shards (the output is cleared and marked with the same shards), else the two
    folders themselves."""
    fs, path = resolve(src_uri)
    whole = fs.get_file_info(f"{path}/{SUCCESS_MARKER}").type == pafs.FileType.File
    shards = None if whole else expected_shards(src_uri)
    if not shards:
        return [(src_uri, dst_uri)]
    clear_partition(dst_uri)
    mark_shards(dst_uri, shards)
    src, dst = src_uri.rstrip("/"), dst_uri.rstrip("/")
    return [(f"{src}/{shard_folder(s)}", f"{dst}/{shard_folder(s)}") for s in shards]


def iter_batches(
    uri: str, columns: Sequence[str] | None = None, batch_rows: int = 2048, max_bytes: int = MAX_BATCH_BYTES
) -> Iterator[pa.RecordBatch]:
    """Record batches of a partition: at most `batch_rows` rows and `max_bytes` of content each.

    Reads one row group at a time with no readahead: peak memory is one row group plus one
    batch, whatever the partition size (a dataset scanner prefetches many batches of content).
    """
    fs, _ = resolve(uri)
    for part in part_paths(uri):
        with fs.open_input_file(part) as handle:
            pf = pq.ParquetFile(handle, pre_buffer=False)  # pre-buffering holds whole column chunks
            for batch in pf.iter_batches(batch_size=batch_rows, columns=list(columns) if columns else None,
                                         use_threads=False):
                yield from slices_by_bytes(batch, max_bytes)


def read_rows(uri: str, ids: Sequence[str] | pa.Array, columns: Sequence[str], key: str = "id") -> pa.Table:
    """The rows of a partition whose `key` is in `ids`, reading `columns` only of the row groups that
    hold one of them (the key column is read first, on its own)."""
    wanted = pa.array(ids, pa.string()) if not isinstance(ids, pa.Array) else ids
    cols = list(dict.fromkeys([key, *columns]))
    fs, _ = resolve(uri)
    pieces = []
    for part in part_paths(uri):
        with fs.open_input_file(part) as handle:
            pf = pq.ParquetFile(handle, pre_buffer=False)
            for rg in range(pf.num_row_groups):
                mask = pc.is_in(pf.read_row_group(rg, columns=[key]).column(key), value_set=wanted)
                if pc.any(mask).as_py():
                    pieces.append(pf.read_row_group(rg, columns=cols).filter(mask))
    return pa.concat_tables(pieces) if pieces else pa.table({c: pa.array([], pa.string()) for c in cols})


def duckdb_source(uri: str, union_by_name: bool = False) -> str:
    """A DuckDB `read_parquet(...)` over a finished partition; DuckDB streams its row groups itself.
    `union_by_name`: parts written by older code may lack newer columns (read as NULL)."""
    parts = part_paths(uri)
    prefix = "s3://" if uri.startswith("s3://") else ""
    listed = ", ".join("'" + (prefix + p).replace("'", "''") + "'" for p in parts)
    return f"read_parquet([{listed}]{', union_by_name = true' if union_by_name else ''})"


def read_table(uri: str, columns: Sequence[str] | None = None) -> pa.Table:
    """Whole partition as a table: only for small, column-pruned reads (ids, hashes, stats)."""
    if not is_complete(uri):
        raise FileNotFoundError(f"partition {uri} is missing or incomplete: materialize its upstream first")
    return dataset(uri).to_table(columns=list(columns) if columns else None)


def sample_rows(uri: str, columns: Sequence[str], k: int, seed: int = 0) -> list[dict[str, Any]]:
    """A seeded uniform sample of `k` rows, by reservoir sampling over the batches (bounded memory)."""
    rng = random.Random(seed)
    reservoir: list[dict[str, Any]] = []
    seen = 0
    for batch in iter_batches(uri, columns, batch_rows=4096):
        for row in batch.to_pylist():
            seen += 1
            if len(reservoir) < k:
                reservoir.append(row)
            else:
                j = rng.randrange(seen)
                if j < k:
                    reservoir[j] = row
    return reservoir
