"""A new stage is one core function plus one declaration: a toy filter over syntax_checked_files with its
own check appears in the code location, its job, the catalog's chain check, `seedcoder why` and the
backfill plan, with no other edit (the declaration is added to core/pipeline.py's list here)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from seedcoder_assets.core import pipeline
from seedcoder_assets.core.catalog import catalog
from seedcoder_assets.core.checks import CheckOutcome
from seedcoder_assets.core.parquet_io import iter_batches
from seedcoder_assets.core.runner import Verdicts
from seedcoder_assets.definitions import defs
from seedcoder_assets.lib.backfill import crawl_states, plan_backfill
from seedcoder_assets.resources.storage import StorageResource
from seedcoder_assets.testing.branch import run_github_branch
from seedcoder_assets_tests.defs.test_automation import _one_repo_crawl

TOY = ("filters", "toy_files")
MIN_LINES = 100


def few_lines_dropped(batch: pa.RecordBatch) -> Verdicts:
    """The toy stage's whole logic: files of fewer than MIN_LINES lines go, as `too_few_lines`."""
    few = pc.less(pc.count_substring(batch.column("content"), "\n"), MIN_LINES - 1)
    return Verdicts(pc.invert(few).to_numpy(zero_copy_only=False),
                    pc.if_else(few, "too_few_lines", pa.scalar(None, pa.string())))


def no_short_files_left(output_uri: str, _input_uri: str) -> CheckOutcome:
    """Measured apart from the stage: Python's own line splitting over every kept file."""
    short = sum(len(t.splitlines()) < MIN_LINES for b in iter_batches(output_uri, ["content"])
                for t in b.column("content").to_pylist())
    return CheckOutcome(short == 0, {"short_files_left": short})


TOY_STAGE = pipeline.FilterStage(  # per shard, after the syntax check (a per-record filter runs where its input is)
    TOY, pipeline.SYNTAX, reads=(pipeline.SYNTAX_CHECKED_FILES,), lineage=True, sharded=True,
    lineage_input=pipeline.SYNTAX_CHECKED_FILES,
    decide=lambda: few_lines_dropped,
    checks=(pipeline.OutputCheck("no_short_files_left", no_short_files_left, "by Python's splitlines"),))


@pytest.fixture
def env(tmp_path: Path, small_crawl: Path):
    _one_repo_crawl(small_crawl, tmp_path / "landing" / "c1")
    storage = StorageResource(lake_root=str(tmp_path / "lake"), landing_root=str(tmp_path / "landing"),
                              local_dir=str(tmp_path / "local"))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("crawl", ["c1"])
        yield tmp_path, storage, instance


def _github_branch(storage: StorageResource, instance: dg.DagsterInstance):
    return run_github_branch(defs(), instance, "c1", resources={"storage": storage})


def test_a_declared_filter_stage_joins_the_pipeline_everywhere(env, monkeypatch: pytest.MonkeyPatch) -> None:
    home, storage, instance = env
    assert _github_branch(storage, instance).success  # the branch as it is today
    states, _ = crawl_states(instance, ["c1"])
    # Nothing of the GitHub branch is left; the label sample (which needs no oracle) comes next.
    branch_done = [("label_sample_job", "c1", "no label sample yet")]
    assert plan_backfill(states, False, None) == branch_done

    monkeypatch.setattr(pipeline, "STAGES", [*pipeline.STAGES, TOY_STAGE])  # the one declaration

    d = defs()  # the code location as the UI loads it
    node = d.resolve_asset_graph().get(dg.AssetKey(list(TOY)))
    assert node.parent_keys == {dg.AssetKey(list(pipeline.SYNTAX_CHECKED_FILES))}
    assert "filters__toy_files" in d.resolve_job_def("github_syntax_job").graph.node_names()
    assert {c.name for c in node.check_keys} == {"lineage_reconciles", "no_short_files_left"}
    states, _ = crawl_states(instance, ["c1"])
    assert plan_backfill(states, False, None) == [("github_syntax_job", "c1", "no filters/toy_files yet")]

    result = _github_branch(storage, instance)
    assert result.success
    checks = {(e.asset_key.to_user_string(), e.check_name): e.passed for e in result.get_asset_check_evaluations()}
    assert checks[("filters/toy_files", "no_short_files_left")] and checks[("filters/toy_files", "lineage_reconciles")]
    meta = next(e.step_materialization_data.materialization.metadata for e in result.get_asset_materialization_events()
                if e.asset_key == dg.AssetKey(list(TOY)))
    assert meta["drop_reasons"].value.get("too_few_lines", 0) > 0 and "image/png" in meta["languages"].value
    states, _ = crawl_states(instance, ["c1"])
    assert plan_backfill(states, False, None) == branch_done

    conn = catalog.open_catalog(str(home / "catalog.duckdb"), storage.lake_root)
    assert catalog.chain_violations(conn) == []
    stages = [r["stage"] for r in catalog.balance(conn)]
    assert stages[-2:] == ["syntax_checked_files", "toy_files"]
    dropped = conn.execute("SELECT id FROM lineage WHERE stage = 'toy_files' AND decision = 'dropped' LIMIT 1").fetchone()[0]
    assert [r["stage"] for r in catalog.why(conn, dropped)][-2:] == ["syntax_checked_files", "toy_files"]


def test_the_chain_check_catches_a_declared_stage_that_lost_records(env, monkeypatch: pytest.MonkeyPatch) -> None:
    home, storage, instance = env
    monkeypatch.setattr(pipeline, "STAGES", [*pipeline.STAGES, TOY_STAGE])
    assert _github_branch(storage, instance).success
    lineage = Path(storage.lineage_uri("toy_files", "c1", "000"))  # the crawl's one shard
    part = next(lineage.glob("*.parquet"))
    conn = duckdb.connect()
    conn.execute(f"COPY (SELECT * FROM read_parquet('{part}') LIMIT 5) TO '{part}' (FORMAT parquet)")
    problems = catalog.chain_violations(catalog.open_catalog(str(home / "catalog.duckdb"), storage.lake_root))
    assert problems and "c1/toy_files" in problems[0]


def test_a_stage_of_another_source_gets_its_partitions_lineage_and_index(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from seedcoder_assets.core.stage_run import StageRun
    from seedcoder_assets.lib.stage_assets import asset_kwargs
    from seedcoder_assets.partitions import WEB_DUMP_PARTITIONS_NAME

    pages = pipeline.Stage(("web", "toy_pages"), "web_job", lineage=True, source="web")
    monkeypatch.setattr(pipeline, "STAGES", [*pipeline.STAGES, pages])
    assert asset_kwargs(pages.asset)["partitions_def"].name == WEB_DUMP_PARTITIONS_NAME
    run = StageRun(str(tmp_path / "lake"), "CC-MAIN-2024-10", "r", source="web")
    writer = run.lineage("toy_pages")
    writer.kept("page-1", 10)
    writer.close()
    conn = catalog.open_catalog(str(tmp_path / "catalog.duckdb"), str(tmp_path / "lake"))
    assert conn.execute("SELECT source, crawl FROM lineage").fetchall() == [("web", "CC-MAIN-2024-10")]
    github = StageRun(str(tmp_path / "lake"), "CC-MAIN-2024-10", "r")
    assert run.index().root != github.index().root  # a crawl and a dump of the same name never share an index


@pytest.mark.parametrize(("bad", "says"), [
    (pipeline.Stage(("filters", "code_files"), "x"), "written by more than one stage"),
    (pipeline.Stage(("other", "code_files"), "x", lineage=True), "declared twice"),
    (pipeline.Stage(("t", "a"), "x", reads=(("t", "nowhere"),)), "which no stage writes"),
    (pipeline.Stage(("t", "b"), "x", lineage=True, lineage_input=pipeline.MINHASH_SIGNATURES), "lineage_input"),
    (pipeline.FilterStage(("t", "c"), "x", reads=(pipeline.CODE_FILES,)), "needs decide"),
])
def test_a_declaration_that_cannot_be_wired_stops_the_location(bad, says, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "STAGES", [*pipeline.STAGES, bad])
    with pytest.raises(ValueError, match=says):
        pipeline.check_declarations()
