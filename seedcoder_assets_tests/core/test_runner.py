"""The stage runner: one lineage row per input record, counts from the verdicts, and a stage bug fails the
partition instead of writing an inconsistent one. The lineage is judged by the independent check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from seedcoder_assets.core import paths
from seedcoder_assets.core.checks import lineage_reconciles
from seedcoder_assets.core.parquet_io import PartWriter, is_complete, iter_batches, read_table
from seedcoder_assets.core.runner import Verdicts, run_stage
from seedcoder_assets.core.schemas import FILE_SCHEMA
from seedcoder_assets.core.stats import LineageWriter


def _files(uri: str, n: int) -> None:
    langs = ["Python", None, "C", "Python"]
    with PartWriter(uri, FILE_SCHEMA) as out:
        out.write_rows([{"id": f"f{i}", "crawl": "c", "repo": f"r{i % 3}", "path": f"p{i}.x", "language": langs[i % 4],
                         "size": i, "sha256": str(i), "content": "x" * i} for i in range(n)])


def _short_files_dropped(batch: pa.RecordBatch) -> Verdicts:
    short = pc.less(batch.column("size"), 10)
    return Verdicts(pc.invert(short).to_numpy(zero_copy_only=False),
                    pc.if_else(short, "too_short", pa.scalar(None, pa.string())), detail=batch.column("path"))


def test_the_runner_writes_kept_rows_and_one_lineage_row_per_record(tmp_path: Path) -> None:
    src, dst, lake = str(tmp_path / "src"), str(tmp_path / "dst"), str(tmp_path / "lake")
    _files(src, 50)
    stats = run_stage(iter_batches(src, batch_rows=7), dst, LineageWriter(lake, "toy", "c", "r1"), _short_files_dropped)
    out = read_table(dst)
    assert sorted(out["id"].to_pylist()) == sorted(f"f{i}" for i in range(10, 50))
    assert (stats.rows_in, stats.rows_out, dict(stats.drops)) == (50, 40, {"too_short": 10})
    assert stats.bytes_in == sum(range(50)) and stats.bytes_out == sum(range(10, 50))
    assert stats.languages == {"Python": 20, "(none)": 10, "C": 10}
    lineage = read_table(paths.lineage_uri(lake, "toy", "c"))
    assert lineage.num_rows == 50 and len(set(lineage["id"].to_pylist())) == 50
    dropped = lineage.filter(pc.equal(lineage["decision"], "dropped"))
    assert set(dropped["reason"].to_pylist()) == {"too_short"} and dropped["detail"][0].as_py().startswith("p")
    assert lineage_reconciles(paths.lineage_uri(lake, "toy", "c"), dst, src).passed


def test_a_transform_writes_its_own_rows(tmp_path: Path) -> None:
    src, dst, lake = str(tmp_path / "src"), str(tmp_path / "dst"), str(tmp_path / "lake")
    _files(src, 20)

    def upper(batch: pa.RecordBatch) -> Verdicts:
        out = batch.set_column(batch.schema.get_field_index("content"), "content", pc.utf8_upper(batch["content"]))
        return Verdicts(np.ones(batch.num_rows, bool), [None] * batch.num_rows, score=1.5, output=out)

    run_stage(iter_batches(src), dst, LineageWriter(lake, "upper", "c", "r"), upper)
    assert set("".join(read_table(dst)["content"].to_pylist())) == {"X"}
    assert set(read_table(paths.lineage_uri(lake, "upper", "c"))["score"].to_pylist()) == {1.5}


@pytest.mark.parametrize("bad", [
    lambda b: Verdicts(np.ones(b.num_rows - 1, bool), [None] * (b.num_rows - 1)),  # a record without a verdict
    lambda b: Verdicts(np.ones(b.num_rows - 1, bool), [None] * b.num_rows),  # a keep mask one short
    lambda b: Verdicts(np.ones(b.num_rows, int), [None] * b.num_rows),  # a mask that is not booleans
    lambda b: Verdicts(np.zeros(b.num_rows, bool), [None] * b.num_rows),  # dropped without a reason
    lambda b: Verdicts(np.ones(b.num_rows, bool), ["why"] * b.num_rows),  # kept with a reason
    lambda b: Verdicts(np.ones(b.num_rows, bool), [None] * b.num_rows, detail=["d"]),  # a short lineage column
])
def test_a_stage_bug_fails_the_partition_and_leaves_it_unfinished(tmp_path: Path, bad) -> None:
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    _files(src, 20)
    with pytest.raises(ValueError):
        run_stage(iter_batches(src), dst, LineageWriter(str(tmp_path / "lake"), "bad", "c", "r"), bad)
    assert not is_complete(dst)


def test_an_empty_batch_writes_nothing_and_counts_nothing(tmp_path: Path) -> None:
    src, dst, lake = str(tmp_path / "src"), str(tmp_path / "dst"), str(tmp_path / "lake")
    _files(src, 3)
    empty = next(iter_batches(src)).slice(0, 0)
    stats = run_stage([empty], dst, LineageWriter(lake, "toy", "c", "r"), _short_files_dropped)
    assert (stats.rows_in, stats.rows_out, read_table(dst).num_rows) == (0, 0, 0)
