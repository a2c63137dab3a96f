"""Every check passes on sound output and fails on output corrupted the way a buggy stage would."""

from __future__ import annotations

import json
import re
import sysconfig
from pathlib import Path

import pytest

from seedcoder_assets.core import checks
from seedcoder_assets.core.ingest.archives import file_id
from seedcoder_assets.core.parquet_io import PartWriter
from seedcoder_assets.core.schemas import FILE_SCHEMA, LINEAGE_SCHEMA, REPO_SCHEMA

STDLIB = Path(sysconfig.get_paths()["stdlib"])


def _texts(n: int, min_words: int = 200) -> list[tuple[str, str]]:
    """(path, text) of real Python modules of the standard library, distinct and not tiny."""
    out = []
    for p in sorted(STDLIB.glob("*.py")):
        text = p.read_text(errors="replace")
        if len(re.findall(r"\w+", text)) >= min_words:
            out.append((p.name, text))
        if len(out) == n:
            break
    return out


def _files(uri: str, rows: list[tuple[str, str]], lang: str | None = "Python", repo: str = "r",
           sha: dict[str, str] | None = None) -> list[str]:
    ids = [file_id("c", repo, p) for p, _ in rows]
    with PartWriter(uri, FILE_SCHEMA) as out:
        out.write_rows([{"id": i, "crawl": "c", "repo": repo, "path": p, "size": len(t),
                         "language": lang if lang is not None else None, "sha256": (sha or {}).get(p, i),
                         "content": t} for i, (p, t) in zip(ids, rows)])
    return ids


def _lineage(uri: str, fates: list[tuple[str, str]]) -> None:
    with PartWriter(uri, LINEAGE_SCHEMA) as out:
        out.write_rows([{"id": i, "crawl": "c", "stage": "s", "decision": d, "run_id": "r"} for i, d in fates])


def test_lineage_reconciles_with_the_partitions_not_with_the_writer(tmp_path: Path) -> None:
    rows = _texts(6)
    ids = _files(f"{tmp_path}/in", rows)
    _files(f"{tmp_path}/out", [rows[0], rows[2], rows[3]])
    sound = [(ids[0], "kept"), (ids[1], "dropped"), (ids[2], "kept"), (ids[3], "kept"), (ids[4], "dropped"),
             (ids[5], "dropped")]
    _lineage(f"{tmp_path}/lin", sound)
    ok = checks.lineage_reconciles(f"{tmp_path}/lin", f"{tmp_path}/out", f"{tmp_path}/in")
    assert ok.passed and ok.metadata["input_rows"] == 6 and ok.metadata["output_rows"] == 3
    corruptions = {
        "a record with two fates": sound + [(ids[1], "kept")],
        "an input record without a fate": sound[:-1],
        "a kept record missing from the output": [(ids[0], "kept"), (ids[1], "kept"), *sound[2:]],
        "a fate for a record that never came in": sound + [("ghost", "dropped")],
    }
    for what, fates in corruptions.items():
        _lineage(f"{tmp_path}/lin", fates)
        assert not checks.lineage_reconciles(f"{tmp_path}/lin", f"{tmp_path}/out", f"{tmp_path}/in").passed, what
    _lineage(f"{tmp_path}/lin", sound)
    _files(f"{tmp_path}/out", [rows[0], rows[2], rows[3], rows[5]])  # a dropped record written anyway
    assert not checks.lineage_reconciles(f"{tmp_path}/lin", f"{tmp_path}/out", f"{tmp_path}/in").passed


def test_no_duplicate_content_hashes_the_text_again(tmp_path: Path) -> None:
    rows = _texts(3)
    _files(f"{tmp_path}/ok", rows)
    assert checks.no_duplicate_content(f"{tmp_path}/ok").passed
    # The same text twice under two different `sha256` values (a stage trusting that column would pass it).
    _files(f"{tmp_path}/bad", [*rows, ("copy.py", rows[0][1])])
    outcome = checks.no_duplicate_content(f"{tmp_path}/bad")
    assert not outcome.passed and outcome.metadata == {"rows": 4, "distinct_contents": 3}


def test_no_duplicate_repositories_by_their_files(tmp_path: Path) -> None:
    rows = _texts(4)
    with PartWriter(f"{tmp_path}/files", FILE_SCHEMA) as out:
        for repo, part in (("a", rows[:2]), ("b", rows[:2]), ("c", rows[2:])):
            out.write_rows([{"id": file_id("c", repo, p), "crawl": "c", "repo": repo, "path": p, "size": len(t),
                             "language": "Python", "sha256": repo + p, "content": t} for p, t in part])

    def repos(kept: list[str]) -> str:
        uri = f"{tmp_path}/repos-{''.join(kept)}"
        schema = REPO_SCHEMA.append(FILE_SCHEMA.field("id")).append(LINEAGE_SCHEMA.field("decision"))
        with PartWriter(uri, schema) as out:
            out.write_rows([{"crawl": "c", "repo": r, "repo_sha256": r, "decision": "kept" if r in kept else "dropped"}
                            for r in "abc"])
        return uri

    assert checks.no_duplicate_repositories(repos(["a", "c"]), f"{tmp_path}/files").passed
    assert not checks.no_duplicate_repositories(repos(["a", "b", "c"]), f"{tmp_path}/files").passed


@pytest.mark.parametrize(("path", "language"), [("README.txt", "Python"), ("nb.ipynb", "Jupyter"),
                                                ("setup.cfg", None), ("x.js", "Python"), ("LICENSE", "Text"),
                                                ("data/table.csv", "Python")])
def test_only_code_languages_rederives_the_language_from_the_path(tmp_path: Path, path: str,
                                                                   language: str | None) -> None:
    rows = [(p, t) for p, t in _texts(3)]
    _files(f"{tmp_path}/ok", rows)
    assert checks.only_code_languages(f"{tmp_path}/ok").passed
    with PartWriter(f"{tmp_path}/bad", FILE_SCHEMA) as out:
        out.write_rows([{"id": str(i), "path": p, "language": "Python", "content": t} for i, (p, t) in enumerate(rows)]
                       + [{"id": "x", "path": path, "language": language, "content": "hello"}])
    assert not checks.only_code_languages(f"{tmp_path}/bad").passed


def test_syntax_errors_left_asks_pythons_own_compiler_and_json(tmp_path: Path) -> None:
    rows = _texts(60)
    _files(f"{tmp_path}/ok", rows)
    ok = checks.syntax_errors_left(f"{tmp_path}/ok")
    assert ok.passed and ok.metadata["Python"]["rejected"] == 0
    cut = [(f"cut_{p}", t[: len(t) // 2] + "\ndef (") for p, t in rows[:5]]  # truncated files that slipped through
    _files(f"{tmp_path}/bad", rows + cut)
    bad = checks.syntax_errors_left(f"{tmp_path}/bad")
    assert not bad.passed and bad.metadata["Python"]["rejected"] == 5
    docs = [(f"d{i}.json", json.dumps({"k": list(range(i))})) for i in range(50)]
    _files(f"{tmp_path}/json", docs + [("broken.json", '{"k": [1, 2')], lang="JSON")
    assert not checks.syntax_errors_left(f"{tmp_path}/json").passed


def _near_copy(text: str) -> str:
    return re.sub(r"\bself\b|\breturn\b|\bimport\b", "NEARCOPY", text, count=2)


def test_near_duplicates_left_finds_copies_by_name_and_by_another_lsh(tmp_path: Path) -> None:
    rows = _texts(150)
    _files(f"{tmp_path}/ok", rows)
    ok = checks.near_duplicates_left(f"{tmp_path}/ok", max_share=0.0)
    assert ok.passed and ok.metadata["kept_files"] == 150 and ok.metadata["pairs_left"] == 0
    # Near copies that kept their file name (another version of the module) ...
    same_name = [(f"v2/{p}", _near_copy(t)) for p, t in rows[:4]]
    _files(f"{tmp_path}/named", rows + same_name)
    named = checks.near_duplicates_left(f"{tmp_path}/named", max_share=0.02)
    assert not named.passed and named.metadata["pairs_left"] == 4
    # ... and near copies under other names, anywhere in the partition: the second LSH covers every
    # file, and its most similar candidates are checked first, so a small budget still finds them.
    renamed = [(f"renamed_{i}.py", _near_copy(t)) for i, (_, t) in enumerate(rows[-4:])]
    _files(f"{tmp_path}/renamed", rows + renamed)
    found = checks.near_duplicates_left(f"{tmp_path}/renamed", max_share=0.02, max_pairs=20)
    assert not found.passed and found.metadata["pairs_left"] == 4 and found.metadata["pairs_checked"] <= 20


def test_files_without_words_are_not_near_duplicates(tmp_path: Path) -> None:
    _files(f"{tmp_path}/empty", [("a/x.json", "{}"), ("b/x.json", "{ }"), ("c/x.json", "[]")])
    assert checks.near_duplicates_left(f"{tmp_path}/empty", max_share=0.0).passed


def test_scores_respect_threshold_joins_the_scores_partition(tmp_path: Path) -> None:
    import pyarrow as pa

    rows = _texts(4)
    ids = _files(f"{tmp_path}/in", rows)
    with PartWriter(f"{tmp_path}/scores", pa.schema([("id", pa.string()), ("score", pa.float32())])) as out:
        out.write_rows([{"id": i, "score": s} for i, s in zip(ids, [2.0, 6.0, 7.5, 4.9])])
    _files(f"{tmp_path}/ok", [rows[1], rows[2]])
    assert checks.scores_respect_threshold(f"{tmp_path}/ok", f"{tmp_path}/scores", f"{tmp_path}/in", 5.0).passed
    _files(f"{tmp_path}/low", [rows[1], rows[2], rows[3]])  # 4.9 kept
    assert not checks.scores_respect_threshold(f"{tmp_path}/low", f"{tmp_path}/scores", f"{tmp_path}/in", 5.0).passed
    _files(f"{tmp_path}/short", [rows[1]])  # 7.5 missing
    assert not checks.scores_respect_threshold(f"{tmp_path}/short", f"{tmp_path}/scores", f"{tmp_path}/in", 5.0).passed


def test_a_scorer_must_beat_predicting_the_mean() -> None:
    # The case the old check passed: MAE 2.0 under a bound of 2.0, while predicting the mean scores 2.14.
    assert not checks.scorer_within_bounds(2.0, 2.14, max_mae=2.0, min_gain=0.25).passed
    assert not checks.scorer_within_bounds(2.5, 3.5, max_mae=2.0, min_gain=0.25).passed  # over the bound
    assert checks.scorer_within_bounds(1.4, 2.14, max_mae=2.0, min_gain=0.25).passed


def test_only_code_languages_catches_a_language_map_that_claims_text(tmp_path: Path, monkeypatch) -> None:
    """A bug in the language map itself (say, `.txt` taken for Python) passes the path re-derivation,
    which uses the same map; the check's own list of non-code files catches it."""
    monkeypatch.setattr(checks, "language_of", lambda path: "Python")
    with PartWriter(f"{tmp_path}/bad", FILE_SCHEMA) as out:
        out.write_rows([{"id": "1", "path": "src/a.py", "language": "Python", "content": "x = 1\n"},
                        {"id": "2", "path": "docs/notes.txt", "language": "Python", "content": "notes"}])
    outcome = checks.only_code_languages(f"{tmp_path}/bad")
    assert not outcome.passed and outcome.metadata["known_non_code_files"] == 1
