"""The high-quality loop on real code (the Python sources of installed wheels, one repository per package
folder), scored by the fake oracle's deterministic heuristic and featured by the syntax stage: seeds meet
their source's definition, negatives are never seeds, each round's new positives are recalled and above the
floor, and the next round grows from them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from seedcoder_assets.core.filters.syntax import SyntaxParams, filter_syntax
from seedcoder_assets.core.hq.rounds import HQParams, HQSource, RoundState, candidates_view, run_round
from seedcoder_assets.core.object_store import duckdb_connect
from seedcoder_assets.core.parquet_io import PartWriter, read_table
from seedcoder_assets.core.quality.corpus import SCORE_SCHEMA
from seedcoder_assets.core.schemas import FILE_SCHEMA
from seedcoder_assets.core.stats import LineageWriter
from seedcoder_assets.testing.fake_oracle import heuristic_rating


@pytest.fixture(scope="module")
def crawl(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str]:
    import dagster
    import numpy

    rows, scores = [], []
    for root in (Path(dagster.__file__).parent, Path(numpy.__file__).parent):
        for path in sorted(root.rglob("*.py"))[:700]:
            text = path.read_text(errors="replace")
            rel = str(path.relative_to(root))
            repo = f"{root.name}/{rel.split('/')[0]}" if "/" in rel else root.name
            file_id = hashlib.sha1(f"{root.name}/{rel}".encode()).hexdigest()[:16]
            rows.append({"id": file_id, "crawl": "t", "repo": repo, "path": rel, "language": "Python",
                         "size": len(text), "sha256": hashlib.sha256(text.encode()).hexdigest(), "content": text})
            scores.append({"id": file_id, "sha256": rows[-1]["sha256"], "language": "Python", "size": len(text),
                           "score": float(heuristic_rating(text)), "scorer_version": "heuristic"})
    home = tmp_path_factory.mktemp("hq")
    with PartWriter(str(home / "src"), FILE_SCHEMA) as out:
        out.write_rows(rows)
    with PartWriter(str(home / "scores"), SCORE_SCHEMA) as out:
        out.write_rows(scores)
    filter_syntax(str(home / "src"), str(home / "files"), LineageWriter(str(home), "syntax_checked_files", "t", "r"),
                  SyntaxParams(), str(home / "features"))
    return str(home / "scores"), str(home / "files"), str(home / "features")


PARAMS = HQParams(sources=(
    HQSource(name="tested", path_regex=r"test", min_score=5, min_comment_ratio=0.02, seed_size=60, max_per_repo=8),
    HQSource(name="documented", min_score=6, min_comment_ratio=0.05, require_docstring=True, seed_size=120,
             max_per_repo=15)), epoch=15)


def test_rounds_grow_from_recalled_positives_and_learn_from_hard_negatives(crawl, tmp_path: Path) -> None:
    scores_uri, files_uri, features_uri = crawl
    con = duckdb_connect()
    candidates_view(con, [crawl])
    state, metrics = None, []
    for number in (1, 2, 3):
        state, m = run_round(con, [(files_uri, scores_uri)], PARAMS, number, state, tmp_path / f"r{number}")
        metrics.append(m)
    r1 = RoundState.read(tmp_path / "r1")
    # Round 1's seeds meet their source's definition, read back from the scores and features partitions.
    score = dict(zip(*(read_table(scores_uri, ["id", "score"])[c].to_pylist() for c in ("id", "score"))))
    feats = {r["id"]: r for r in read_table(features_uri).to_pylist()}
    paths = dict(zip(*(read_table(files_uri, ["id", "path"])[c].to_pylist() for c in ("id", "path"))))
    for file_id, source in zip(*(r1.seeds[c].to_pylist() for c in ("id", "source"))):
        if source == "tested":
            assert "test" in paths[file_id].lower() and score[file_id] >= 5 and feats[file_id]["comment_ratio"] >= 0.02
        else:
            assert score[file_id] >= 6 and feats[file_id]["has_docstring"] and feats[file_id]["comment_ratio"] >= 0.05
    per_repo = pa.TableGroupBy(r1.seeds, ["repo", "source"]).aggregate([("id", "count")])
    assert max(per_repo["id_count"].to_pylist()) <= 15  # diversity cap
    assert metrics[0]["seeds_per_source"] == {"documented": 120, "tested": 60}
    assert len(set(r1.seeds["id"].to_pylist())) == r1.seeds.num_rows  # a file is one source's
    # Negatives are never seeds; round 1's hard ones are high scorers without comments or docstrings.
    for number in (1, 2, 3):
        s = RoundState.read(tmp_path / f"r{number}")
        assert not set(s.negatives["id"].to_pylist()) & set(s.seeds["id"].to_pylist())
    hard = r1.negatives.filter(pc.equal(r1.negatives["kind"], "hard_uncommented"))["id"].to_pylist()
    assert hard and all(score[i] >= 5 and not feats[i]["has_docstring"] and feats[i]["comment_ratio"] < 0.01
                        for i in hard)
    # Each round's new positives are recalled, above the floor, and join the next round's seeds; its
    # recalled-but-low files are the next round's hard negatives.
    for number in (1, 2):
        s, nxt = RoundState.read(tmp_path / f"r{number}"), RoundState.read(tmp_path / f"r{number + 1}")
        new = s.recalled.filter(pc.equal(s.recalled["kind"], "new_positive"))
        assert all(score[i] >= PARAMS.quality_floor for i in new["id"].to_pylist())
        assert set(new["id"].to_pylist()) <= set(nxt.seeds["id"].to_pylist())
        assert nxt.seeds.num_rows == s.seeds.num_rows + new.num_rows
        low = set(s.recalled.filter(pc.equal(s.recalled["kind"], "low_score"))["id"].to_pylist())
        assert set(nxt.negatives.filter(pc.equal(nxt.negatives["kind"], "hard_recalled_low"))["id"].to_pylist()) <= low
    assert metrics[0]["new_positives"] > 0 and metrics[1]["overlap_with_previous"] is not None
    assert metrics[0]["recall"] is not None and 0 <= metrics[0]["recall"] <= 1


def test_the_corpus_of_a_crawl_and_its_checks(crawl, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from seedcoder_assets.core.hq.corpus import (
        held_out_recall,
        mean_score_above_crawl,
        no_hard_negative,
        select_hq_files,
    )

    scores_uri, files_uri, _ = crawl
    con = duckdb_connect()
    candidates_view(con, [crawl])
    rounds, state = [], None
    for number in (1, 2):
        state, _ = run_round(con, [(files_uri, scores_uri)], PARAMS, number, state, tmp_path / f"r{number}")
        rounds.append(tmp_path / f"r{number}")
    stats = select_hq_files(files_uri, scores_uri, rounds, str(tmp_path / "hq"),
                            LineageWriter(str(tmp_path), "high_quality_files", "t", "r"), duckdb_connect())
    corpus = read_table(str(tmp_path / "hq"))
    files = read_table(files_uri, ["id"])
    assert stats.rows_in == files.num_rows and stats.rows_out == corpus.num_rows > 0
    assert set(stats.drops) <= {"hard_negative", "recalled_low_score", "not_selected"}
    last = RoundState.read(rounds[-1])
    new = last.recalled.filter(pc.equal(last.recalled["kind"], "new_positive"))
    expected = (set(last.seeds["id"].to_pylist()) | set(new["id"].to_pylist())) - set(
        pa.concat_tables([RoundState.read(r).negatives for r in rounds]).filter(
            pc.starts_with(pa.concat_tables([RoundState.read(r).negatives for r in rounds])["kind"], "hard"))["id"]
        .to_pylist())
    assert set(corpus["id"].to_pylist()) == expected
    assert set(corpus["hq_round"].to_pylist()) <= {0, 1, 2}
    assert no_hard_negative(str(tmp_path / "hq"), rounds).passed
    assert mean_score_above_crawl(str(tmp_path / "hq"), scores_uri).passed
    check = held_out_recall(rounds[0], [files_uri], PARAMS.max_chars, PARAMS.recall_threshold, 0.5)
    assert check.metadata["held_out_seeds"] > 0 and check.passed, check.metadata
    assert not held_out_recall(rounds[0], [files_uri], PARAMS.max_chars, 1.01, 0.5).passed  # recalls nothing
    # Fed bad output: a corpus holding a hard negative, and one of the lowest-scored files.
    hard_id = RoundState.read(rounds[0]).negatives.filter(
        pc.equal(RoundState.read(rounds[0]).negatives["kind"], "hard_uncommented"))["id"][0].as_py()
    low_ids = read_table(scores_uri).sort_by("score")["id"].to_pylist()[: corpus.num_rows * 3]
    for name, ids in (("bad-hard", [hard_id]), ("bad-low", low_ids)):
        (tmp_path / name).mkdir()
        pq.write_table(pa.table({"id": pa.array(ids, pa.string())}), tmp_path / name / "part-0.parquet")
        (tmp_path / name / "_SUCCESS").touch()
    assert not no_hard_negative(str(tmp_path / "bad-hard"), rounds).passed
    assert not mean_score_above_crawl(str(tmp_path / "bad-low"), scores_uri).passed


def test_a_round_is_a_new_version_when_a_score_or_a_source_changes(crawl, tmp_path: Path) -> None:
    from seedcoder_assets.core.hq.rounds import inputs_version

    scores_uri, files_uri, features_uri = crawl
    con = duckdb_connect()
    candidates_view(con, [crawl])
    first = inputs_version(con, PARAMS, 1, None)
    assert inputs_version(con, PARAMS, 1, None) == first and inputs_version(con, PARAMS, 2, first) != first
    assert inputs_version(con, PARAMS.model_copy(update={"quality_floor": 6.0}), 1, None) != first
    scores = read_table(scores_uri)
    changed = scores.set_column(scores.schema.get_field_index("score"), "score",
                                pa.array([s + (1.0 if i == 0 else 0.0) for i, s in enumerate(
                                    scores["score"].to_pylist())], pa.float32()))
    with PartWriter(str(tmp_path / "scores"), scores.schema) as out:
        out.write_table(changed)
    candidates_view(con, [(str(tmp_path / "scores"), files_uri, features_uri)])
    assert inputs_version(con, PARAMS, 1, None) != first  # one file's score moved
