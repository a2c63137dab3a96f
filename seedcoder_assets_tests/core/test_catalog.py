"""The catalog reads only finished partitions and survives any folder name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa

from seedcoder_assets.core import paths
from seedcoder_assets.core.catalog import catalog
from seedcoder_assets.core.parquet_io import SUCCESS_MARKER, PartWriter
from seedcoder_assets.core.stats import LineageWriter

SCHEMA = pa.schema([("id", pa.string()), ("n", pa.int64())])


def _partition(lake: Path, key: list[str], crawl: str, rows: int) -> str:
    uri = paths.partition_uri(str(lake), key, crawl)
    with PartWriter(uri, SCHEMA) as out:
        out.write_rows([{"id": f"{crawl}-{i}", "n": i} for i in range(rows)])
    return uri


def test_only_partitions_with_success_markers_are_read(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    _partition(lake, ["dedup", "files"], "c1", 3)
    half = _partition(lake, ["dedup", "files"], "c2", 5)
    Path(half, SUCCESS_MARKER).unlink()  # a partition being rewritten, or left by a killed run
    lw = LineageWriter(str(lake), "exact_dedup", "c1", "r")
    lw.kept("c1-0")
    lw.close()
    lw = LineageWriter(str(lake), "exact_dedup", "c2", "r")
    lw.kept("c2-0")
    lw.close()
    Path(paths.lineage_uri(str(lake), "exact_dedup", "c2"), SUCCESS_MARKER).unlink()
    conn = catalog.open_catalog(str(tmp_path / "cat.duckdb"), str(lake))
    assert conn.execute("SELECT count(*), max(crawl) FROM dedup_files").fetchone() == (3, "c1")
    assert conn.execute("SELECT count(*) FROM lineage").fetchone()[0] == 1


def test_odd_folder_names_become_quoted_views(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    _partition(lake, ["web", "it's-odd"], "c1", 2)
    _partition(lake, ["web", 'with "quotes"'], "c1", 1)
    conn = catalog.open_catalog(str(tmp_path / "cat.duckdb"), str(lake))
    assert conn.execute("""SELECT count(*) FROM "web_it's-odd" """).fetchone()[0] == 2
    assert conn.execute('SELECT count(*) FROM "web_with ""quotes"""').fetchone()[0] == 1


def test_register_crawl_refuses_names_the_sensor_refuses(tmp_path: Path) -> None:
    env = {"DAGSTER_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    for bad in ("../../etc", "a/b", "x..y", ".hidden"):
        out = subprocess.run([sys.executable, "-m", "seedcoder_assets.cli", "register-crawl", bad], env=env,
                             capture_output=True, text=True)
        assert out.returncode != 0 and "not a valid partition key" in out.stderr, (bad, out.stderr)


def test_a_merge_keeps_its_parents_for_why_and_the_chain_check(tmp_path: Path, monkeypatch) -> None:
    """Many files into one document (long-context style): the stage's lineage names the output each file
    went into, `why` walks from the document back to every file's ingest row, the chain check counts the
    merge's outputs as the next stage's inputs, and the stage's own check reconciles against the output."""
    import numpy as np
    import pyarrow.compute as pc

    from seedcoder_assets.core import pipeline
    from seedcoder_assets.core.checks import lineage_reconciles
    from seedcoder_assets.core.parquet_io import iter_batches
    from seedcoder_assets.core.runner import Verdicts, run_stage
    from seedcoder_assets.core.schemas import FILE_SCHEMA

    lake = str(tmp_path / "lake")
    files = paths.partition_uri(lake, ["t", "files"], "c1")
    ingest = LineageWriter(lake, "raw_repo_files", "c1", "r")
    rows = [{"id": f"f{i}", "crawl": "c1", "repo": f"r{i % 2}", "path": f"p{i}.py", "language": "Python",
             "size": 1, "sha256": str(i), "content": f"x{i}"} for i in range(6)]
    for r in rows:
        ingest.kept(r["id"], 1, detail=f"{r['repo']}/{r['path']}")
    ingest.close()
    with PartWriter(files, FILE_SCHEMA) as out:
        out.write_rows(rows)

    def merge_by_repo(batch: pa.RecordBatch) -> Verdicts:
        docs = batch.to_pylist()
        by_repo: dict[str, list[dict]] = {}
        for d in docs:
            by_repo.setdefault(d["repo"], []).append(d)
        merged = [{**group[0], "id": f"doc:{repo}", "path": "", "content": "\n".join(d["content"] for d in group),
                   "size": len(group)} for repo, group in by_repo.items()]
        return Verdicts(np.ones(len(docs), bool), [None] * len(docs), output_id=[f"doc:{d['repo']}" for d in docs],
                        output=pa.Table.from_pylist(merged, schema=FILE_SCHEMA))

    docs = paths.partition_uri(lake, ["t", "docs"], "c1")
    run_stage(iter_batches(files), docs, LineageWriter(lake, "docs", "c1", "r"), merge_by_repo)
    assert lineage_reconciles(paths.lineage_uri(lake, "docs", "c1"), docs, files).passed
    after = LineageWriter(lake, "after", "c1", "r")
    for doc in ("doc:r0", "doc:r1"):
        after.kept(doc, 1)
    after.close()

    monkeypatch.setattr(pipeline, "STAGES", [
        *pipeline.STAGES,
        pipeline.Stage(("t", "docs"), "toy_job", lineage=True, lineage_input=pipeline.RAW_REPO_FILES),
        pipeline.Stage(("t", "after"), "toy_job", lineage=True, lineage_input=("t", "docs"))])
    conn = catalog.open_catalog(str(tmp_path / "cat.duckdb"), lake)
    assert catalog.chain_violations(conn) == []
    trail = catalog.why(conn, "doc:r0")
    assert {r["id"] for r in trail if r["stage"] == "raw_repo_files"} == {"f0", "f2", "f4"}
    assert {r["output_id"] for r in trail if r["stage"] == "docs"} == {"doc:r0"}
    # A merge that lost a parent is caught by the stage's own check, measured on the partitions.
    lin = paths.lineage_uri(lake, "docs", "c1")
    table = pa.concat_tables(pa.Table.from_batches([b]) for b in iter_batches(lin))
    with PartWriter(lin, table.schema) as out:
        out.write_table(table.filter(pc.not_equal(table["id"], "f4")))
    assert not lineage_reconciles(lin, docs, files).passed


def test_a_lake_written_before_the_rename_reads_under_the_new_stage_names(tmp_path: Path) -> None:
    lake = str(tmp_path / "lake")
    for stage, crawl, ids in (("exact_dedup", "c1", ["a"]), ("exact_dedup", "c2", ["old"]),
                              ("exact_deduped_files", "c2", ["new"])):
        writer = LineageWriter(lake, stage, crawl, "r")
        for i in ids:
            writer.kept(i)
        writer.close()
    conn = catalog.open_catalog(str(tmp_path / "cat.duckdb"), lake)
    rows = conn.execute("SELECT crawl, stage, id FROM lineage ORDER BY crawl").fetchall()
    assert rows == [("c1", "exact_deduped_files", "a"), ("c2", "exact_deduped_files", "new")]
