"""Jupyter notebooks from real sdists (jupytext's test notebooks in 25 kernels, nbformat's valid and invalid
ones): stored as code cells plus markdown in the kernel's language, every notebook kept or dropped with a
reason, and the script checked against the notebook's JSON read by Python's own json module."""

from __future__ import annotations

import io
import json
import tarfile
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from seedcoder_assets.core import checks
from seedcoder_assets.core.filters.syntax import SyntaxParams, check
from seedcoder_assets.core.ingest.archives import ExtractParams, to_row
from seedcoder_assets.core.ingest.notebooks import BAD_NOTEBOOK, EMPTY_NOTEBOOK, NOTEBOOK_LANGUAGE, OLD_NOTEBOOK
from seedcoder_assets.core.parquet_io import PartWriter
from seedcoder_assets.core.schemas import FILE_SCHEMA
from seedcoder_assets.sample_crawl import build_crawl
from seedcoder_assets_tests.core.test_ingest import _ingest

NOTEBOOK_REASONS = {BAD_NOTEBOOK, OLD_NOTEBOOK, NOTEBOOK_LANGUAGE, EMPTY_NOTEBOOK, "empty", "oversized"}


@pytest.fixture(scope="module")
def notebook_crawl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_crawl(tmp_path_factory.mktemp("nb") / "crawl", [("jupytext", ("1.16.4",)), ("nbformat", ("5.10.4",))])


def _raw_notebooks(crawl: Path) -> dict[tuple[str, str], bytes]:
    """(repository, path in it) -> the notebook's bytes, straight from the sdists."""
    out = {}
    for line in (crawl / "repos.jsonl").read_text().splitlines():
        entry = json.loads(line)
        with tarfile.open(crawl / entry["archive"]) as tar:
            for m in tar.getmembers():
                if m.isfile() and m.name.lower().endswith(".ipynb"):
                    out[(entry["name"], m.name.split("/", 1)[1])] = tar.extractfile(m).read()
    return out


def _lines_in_order(needles: list[set[str]], haystack: list[str]) -> bool:
    """Each needle (a set of the forms a line may take) matches a line after the previous needle's."""
    it = iter(haystack)
    return all(any(h in n for h in it) for n in needles)


def test_notebooks_become_scripts_of_their_kernel_language(notebook_crawl: Path, tmp_path: Path) -> None:
    stats, files, lineage = _ingest(notebook_crawl, tmp_path / "lake", ExtractParams())
    raw = _raw_notebooks(notebook_crawl)
    assert len(raw) > 80
    nbs = files.filter(pl.col("path").str.to_lowercase().str.ends_with(".ipynb"))
    dropped = lineage.filter((pl.col("decision") == "dropped") & pl.col("detail").str.ends_with(".ipynb"))
    # Every notebook of the archives is a row or a drop with a notebook reason: nothing vanishes.
    assert nbs.height + dropped.height == len(raw)
    reasons = Counter(dropped["reason"].to_list())
    assert set(reasons) <= NOTEBOOK_REASONS, reasons
    assert reasons[OLD_NOTEBOOK] >= 3 and reasons[NOTEBOOK_LANGUAGE] >= 5 and reasons[BAD_NOTEBOOK] >= 1
    # The kernels' languages, not a "Jupyter" language: jupytext ships notebooks for R, Julia, C++, Java, ...
    langs = Counter(nbs["language"].to_list())
    assert langs["Python"] >= 30 and {"R", "Julia", "C++", "Java", "Scala", "Rust", "Go", "MATLAB"} <= set(langs)

    python_checked = 0
    for row in nbs.iter_rows(named=True):
        script = row["content"]
        assert '"outputs"' not in script and '"cell_type"' not in script  # no JSON left
        assert row["size"] == len(script.encode())
        nb = json.loads(raw[(row["repo"], row["path"])])
        if row["language"] != "Python":
            continue
        lines = script.splitlines()
        for cell in nb["cells"]:
            source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            src = [x for x in source.splitlines() if x.strip()]
            if cell["cell_type"] == "code" and src and src[0].startswith("%%"):
                # a cell magic: %%time's body is Python and stays code, %%html's is not and is commented
                want = [{x, f"# {x}"} for x in src[1:]]
            elif cell["cell_type"] == "code":  # code verbatim; magics, shell escapes and `?` help commented out
                want = [{f"# {x}"} if x.lstrip().startswith(("%", "!", "?")) or x.rstrip().endswith("?") else {x}
                        for x in src]
            elif cell["cell_type"] == "markdown":  # as comments (or a docstring where the cell asks for one)
                want = [{f"# {x}", x} for x in src]
            else:
                continue
            assert _lines_in_order(want, lines), (row["path"], want[:3])
        python_checked += 1
        verdict, _ = check(script, "Python", row["path"], SyntaxParams())
        assert verdict in ("ok", "syntax_error")
    assert python_checked >= 30
    # The language check takes the scripts (their language is the kernel's, not the path's) ...
    code_uri = f"{tmp_path}/code"
    with PartWriter(code_uri, FILE_SCHEMA) as out:
        out.write_rows(nbs.select(["id", "path", "language", "content"]).to_dicts())
    assert checks.only_code_languages(code_uri).passed
    # ... and fails a notebook row that still holds JSON.
    bad = nbs.head(1).with_columns(pl.lit('{"cells": []}').alias("content"))
    with PartWriter(f"{tmp_path}/bad", FILE_SCHEMA) as out:
        out.write_rows(bad.select(["id", "path", "language", "content"]).to_dicts())
    assert not checks.only_code_languages(f"{tmp_path}/bad").passed


def test_python_notebooks_parse_as_python(notebook_crawl: Path, tmp_path: Path) -> None:
    """Magics commented out, markdown as comments: Python's own compiler reads the script."""
    _, files, _ = _ingest(notebook_crawl, tmp_path / "lake", ExtractParams())
    scripts = files.filter(pl.col("path").str.ends_with(".ipynb") & (pl.col("language") == "Python"))["content"]
    compiled = 0
    for script in scripts:
        try:
            compile(script, "<nb>", "exec", dont_inherit=True)
            compiled += 1
        except SyntaxError:
            pass
    assert compiled >= 0.9 * len(scripts)


@pytest.mark.parametrize(("data", "reason"), [
    (b"not json", BAD_NOTEBOOK), (b"[1, 2]", BAD_NOTEBOOK), (b'{"nbformat": 3, "worksheets": []}', OLD_NOTEBOOK),
    (b'{"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {"language": "q", "name": "q"}}, "cells": []}',
     NOTEBOOK_LANGUAGE),
    (b'{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": "markdown", "metadata": {}, '
     b'"source": "only prose", "id": "a"}]}', EMPTY_NOTEBOOK),
    (b"", "empty"), (b"[" * 100_000 + b"]" * 100_000, BAD_NOTEBOOK)])  # nested past the JSON parser's stack
def test_a_bad_notebook_costs_one_row_with_its_reason(data: bytes, reason: str) -> None:
    row, why = to_row("c", "r", "nb/x.ipynb", data, ExtractParams())
    assert row is None and why == reason


def test_a_notebook_is_judged_by_its_script_size_and_hashes_its_script(tmp_path: Path) -> None:
    image = "A" * 3_000_000  # a plot in the outputs: the JSON is over the file limit, the script is not
    cell = {"cell_type": "code", "metadata": {}, "id": "a", "execution_count": 1, "source": "x = 1\nx",
            "outputs": [{"output_type": "display_data", "metadata": {}, "data": {"image/png": image}}]}
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {"language": "python", "name": "python3"}},
          "cells": [cell]}
    row, why = to_row("c", "r", "a.ipynb", json.dumps(nb).encode(), ExtractParams())
    assert why is None and row.language == "Python" and row.content == "# %%\nx = 1\nx\n"
    rerun = dict(cell, outputs=[], execution_count=7)  # the same code run again: one file to exact dedup
    again, _ = to_row("c", "r", "b.ipynb", json.dumps(dict(nb, cells=[rerun])).encode(), ExtractParams())
    assert again.sha256 == row.sha256
    # The archive reader lets the notebook through its member limit too; a .py that big is not read.
    crawl = tmp_path / "crawl"
    crawl.mkdir()
    with tarfile.open(crawl / "r-1.0.tar.gz", "w:gz") as tar:
        for name, data in (("r-1.0/a.ipynb", json.dumps(nb).encode()), ("r-1.0/big.py", b"x = 1\n" * 200_000)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (crawl / "repos.jsonl").write_text(json.dumps({"name": "r", "archive": "r-1.0.tar.gz"}) + "\n")
    _, files, lineage = _ingest(crawl, tmp_path / "lake", ExtractParams())
    assert files["path"].to_list() == ["a.ipynb"] and files["content"].to_list() == [row.content]
    assert lineage.filter(pl.col("decision") == "dropped")["reason"].to_list() == ["oversized"]


def test_the_notebooks_source_seeds_from_notebook_scripts(notebook_crawl: Path, tmp_path: Path) -> None:
    """Ingest -> syntax stage (features from the kernel's grammar: markdown counts as comments) -> the
    high-quality set's default `notebooks` source selects notebooks, and only them."""
    from seedcoder_assets.core.filters.syntax import filter_syntax
    from seedcoder_assets.core.hq.rounds import DEFAULT_SOURCES, HQParams, candidates_view, select_seeds
    from seedcoder_assets.core.object_store import duckdb_connect
    from seedcoder_assets.core.quality.corpus import SCORE_SCHEMA
    from seedcoder_assets.core.stats import LineageWriter
    from seedcoder_assets.testing.fake_oracle import heuristic_rating

    _, files, _ = _ingest(notebook_crawl, tmp_path / "lake", ExtractParams())
    files = files.filter(pl.col("language") == "Python")  # notebooks and jupytext's own Python files
    with PartWriter(f"{tmp_path}/src", FILE_SCHEMA) as out:
        out.write_rows(files.to_dicts())
    filter_syntax(f"{tmp_path}/src", f"{tmp_path}/files", LineageWriter(str(tmp_path), "syntax", "c1", "r"),
                  SyntaxParams(), f"{tmp_path}/features")
    with PartWriter(f"{tmp_path}/scores", SCORE_SCHEMA) as out:
        out.write_rows([{"id": r["id"], "sha256": r["sha256"], "language": "Python", "size": r["size"],
                         "score": float(heuristic_rating(r["content"])), "scorer_version": "h"}
                        for r in files.iter_rows(named=True)])
    notebooks = next(s for s in DEFAULT_SOURCES if s.name == "notebooks")
    assert DEFAULT_SOURCES[0] is notebooks  # before major_languages, which would take Python notebooks
    con = duckdb_connect()
    candidates_view(con, [(f"{tmp_path}/scores", f"{tmp_path}/files", f"{tmp_path}/features")])
    source = notebooks.model_copy(update={"min_score": 0.0, "max_per_repo": 1000})
    seeds = select_seeds(con, HQParams(sources=(source,)))
    paths = dict(zip(files["id"].to_list(), files["path"].to_list()))
    chosen = [paths[i] for i in seeds["id"].to_pylist()]
    assert len(chosen) >= 10 and all(p.endswith(".ipynb") for p in chosen)
    # The comment ratio of a notebook with prose is its markdown's share, read by the Python grammar.
    ratio = dict(con.execute("SELECT path, comment_ratio FROM candidates WHERE path LIKE '%World population.ipynb'"
                             ).fetchall())
    assert ratio and 0.1 < next(iter(ratio.values())) < 0.8
