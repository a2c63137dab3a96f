from pathlib import Path

import pyarrow as pa
import pytest

from seedcoder_assets.core.parquet_io import PartWriter, is_complete, iter_batches, read_table, slices_by_bytes


def test_slices_are_bounded_by_content_bytes() -> None:
    t = pa.table({"content": ["a" * 10, "b" * 10, "c" * 25, "d" * 5, "e" * 5]})
    assert [s.num_rows for s in slices_by_bytes(t, 20)] == [2, 1, 2]  # a row over the cap stands alone


def test_partition_overwrite_and_bounded_batches(tmp_path: Path) -> None:
    uri = str(tmp_path / "p")
    schema = pa.schema([("id", pa.string()), ("content", pa.large_string())])
    with PartWriter(uri, schema) as w:
        w.write_rows([{"id": str(i), "content": "x" * 1000} for i in range(100)])
    assert is_complete(uri)
    assert max(b.num_rows for b in iter_batches(uri, batch_rows=64, max_bytes=10_000)) == 10
    with PartWriter(uri, schema) as w:  # a re-run replaces the partition in full
        w.write_rows([{"id": "only", "content": "y"}])
    assert read_table(uri).column("id").to_pylist() == ["only"]


def test_reading_an_unfinished_partition_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    with pytest.raises(FileNotFoundError, match="materialize its upstream"):
        list(iter_batches(str(tmp_path / "p")))
