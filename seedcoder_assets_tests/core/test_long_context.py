"""The long-context corpus: import resolution per language on small layouts, ordering and cycle breaks, and
the whole stage on the small real crawl (20 PyPI projects: Python, C, C++, JavaScript, HTML, ...) with each
check fed output that breaks it."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from seedcoder_assets.core.ingest.archives import ExtractParams
from seedcoder_assets.core.longctx import checks
from seedcoder_assets.core.longctx.corpus import (
    SEQUENCE_SCHEMA,
    LongContextParams,
    build_sequences,
    repo_graph,
    select_long_files,
    token_counter,
    tokenizer_file,
)
from seedcoder_assets.core.longctx.graph import RepoFile
from seedcoder_assets.core.longctx.order import repo_order, split_to_budget, topological
from seedcoder_assets.core.object_store import duckdb_connect
from seedcoder_assets.core.parquet_io import PartWriter, read_table
from seedcoder_assets.core.stats import LineageWriter
from seedcoder_assets.testing.fake_oracle import heuristic_rating
from seedcoder_assets_tests.core.test_ingest import _ingest


def _graph(files: dict[str, str], language: str | None = None):
    rows = [RepoFile(str(i), p, language or _lang(p), c) for i, (p, c) in enumerate(sorted(files.items()))]
    g = repo_graph(rows)
    paths = [f.path for f in rows]
    return g, {paths[i]: sorted(paths[d] for d in deps) for i, deps in enumerate(g.deps)}


def _lang(path: str) -> str:
    return {"py": "Python", "java": "Java", "c": "C", "h": "C", "cpp": "C++", "hpp": "C++", "js": "JavaScript",
            "ts": "TypeScript", "go": "Go", "rs": "Rust", "sql": "SQL", "html": "HTML"}[path.rsplit(".", 1)[-1]]


def test_python_imports_resolve_absolute_relative_and_from_modules() -> None:
    _, deps = _graph({
        "src/pkg/__init__.py": "from .core import run\n",
        "src/pkg/core.py": "import os\nfrom . import util\nfrom pkg.sub import leaf\n",
        "src/pkg/util.py": "import numpy as np\n",
        "src/pkg/sub/__init__.py": "",
        "src/pkg/sub/leaf.py": "from ..util import helper\nfrom .. import core\n",
        "tests/test_core.py": "import pkg.core\nfrom pkg import util\n",
    })
    assert deps["src/pkg/__init__.py"] == ["src/pkg/core.py"]
    assert deps["src/pkg/core.py"] == ["src/pkg/sub/__init__.py", "src/pkg/sub/leaf.py", "src/pkg/util.py"]
    assert deps["src/pkg/sub/leaf.py"] == ["src/pkg/core.py", "src/pkg/util.py"]
    assert deps["tests/test_core.py"] == ["src/pkg/__init__.py", "src/pkg/core.py", "src/pkg/util.py"]


def test_other_languages_resolve_within_the_repository() -> None:
    _, java = _graph({"src/main/java/com/x/A.java": "package com.x;\nimport com.x.util.*;\nimport static com.x.B.f;\n"
                                                    "import java.util.List;\nclass A {}\n",
                      "src/main/java/com/x/B.java": "package com.x;\nclass B { static void f() {} }\n",
                      "src/main/java/com/x/util/U.java": "package com.x.util;\nclass U {}\n"})
    assert java["src/main/java/com/x/A.java"] == ["src/main/java/com/x/B.java", "src/main/java/com/x/util/U.java"]
    _, c = _graph({"src/a.c": '#include "a.h"\n#include <lib/api.h>\n#include <stdio.h>\nint x;\n', "src/a.h": "int x;\n",
                   "include/lib/api.h": "int y;\n", "src/b.cpp": '#include "../include/lib/api.h"\n'})
    assert c["src/a.c"] == ["include/lib/api.h", "src/a.h"] and c["src/b.cpp"] == ["include/lib/api.h"]
    _, js = _graph({"src/app.ts": "import { x } from './lib';\nimport React from 'react';\nconst y = require('../util.js');\n",
                    "src/lib/index.ts": "export const x = 1;\n", "util.js": "module.exports = 2;\n"})
    assert js["src/app.ts"] == ["src/lib/index.ts", "util.js"]
    _, go = _graph({"cmd/main.go": 'package main\nimport (\n "fmt"\n "github.com/u/r/pkg/store"\n)\n',
                    "pkg/store/store.go": "package store\n", "pkg/store/store_test.go": "package store\n"})
    assert go["cmd/main.go"] == ["pkg/store/store.go"]
    _, rs = _graph({"src/lib.rs": "mod a;\nuse crate::a::b::Thing;\nuse serde::Serialize;\n",
                    "src/a/mod.rs": "pub mod b;\nuse super::c;\n", "src/a/b.rs": "use self::inner::X;\nuse super::d::Y;\n",
                    "src/a/b/inner.rs": "", "src/a/d.rs": "", "src/c.rs": ""})
    assert rs["src/lib.rs"] == ["src/a/b.rs"] and rs["src/a/mod.rs"] == ["src/c.rs"]
    assert rs["src/a/b.rs"] == ["src/a/b/inner.rs", "src/a/d.rs"]


def test_names_of_the_standard_library_or_a_deep_folder_are_not_the_repositorys() -> None:
    """`import json` is not `lib/deep/json.py` (not under a source root); Go's `errors` and `net/http` are not
    `pkg/errors` or `internal/http`; a script's own folder comes first."""
    _, py = _graph({"app/main.py": "import json\nimport util\n", "app/util.py": "", "lib/deep/json.py": ""})
    assert py["app/main.py"] == ["app/util.py"]
    _, go = _graph({"cmd/main.go": 'package main\nimport (\n"errors"\n"net/http"\n"myapp/pkg/store"\n)\n',
                    "pkg/errors/e.go": "package errors\n", "internal/http/h.go": "package http\n",
                    "pkg/store/s.go": "package store\n"})
    assert go["cmd/main.go"] == ["pkg/store/s.go"]
    _, rs = _graph({"src/lib.rs": "use crate::{a, b::C};\n", "src/a.rs": "", "src/b.rs": "",
                    "src/x/y/z.rs": "use super::super::super::a;\n", "src/x/y.rs": ""})
    assert rs["src/lib.rs"] == ["src/a.rs", "src/b.rs"] and rs["src/x/y/z.rs"] == ["src/a.rs"]
    _, java = _graph({"A.java": "import static b.Consts.*;\nclass A {}\n", "b/Consts.java": "class Consts {}\n"})
    assert java["A.java"] == ["b/Consts.java"]
    _, c = _graph({"myinclude/include/x.h": "int x;\n", "src/a.c": "#include <x.h>\n"})
    assert c["src/a.c"] == ["myinclude/include/x.h"]


def test_cycles_are_broken_inside_the_cycle_and_counted() -> None:
    paths = ["a.py", "b.py", "c.py", "main.py", "z.py"]
    deps = [[1], [2], [0], [0], []]  # a -> b -> c -> a, main -> a, z alone
    order, breaks = topological(range(5), deps, paths)
    assert sorted(order) == [0, 1, 2, 3, 4] and order.index(3) > max(order.index(i) for i in (0, 1, 2))
    assert len(breaks) == 1 and breaks[0][0] in (0, 1, 2)  # only a file on the cycle goes before its dependency
    assert topological(range(5), deps, paths) == (order, breaks)  # deterministic
    # every edge not recorded as broken is respected
    at = {n: k for k, n in enumerate(order)}
    assert all(at[d] < at[n] or (n, d) in breaks for n in range(5) for d in deps[n])


def test_html_sql_and_shell_go_in_a_seeded_random_order() -> None:
    files = {f"db/{i:02d}.sql": f"select {i};\n" for i in range(12)} | {"app.py": "import os\n"}
    g, _ = _graph(files)
    first, _ = repo_order(g, "r", seed=1)
    again, _ = repo_order(g, "r", seed=1)
    other, _ = repo_order(g, "r", seed=2)
    names = [g.files[i].path for i in first]
    assert first == again and first != other and sorted(names) == sorted(files)
    assert names[:12] != sorted(names[:12])  # not by path


def test_a_big_part_is_cut_along_its_order_and_small_parts_pack_together() -> None:
    order = list(range(6))
    deps = [[], [0], [1], [2], [], []]  # a chain 0..3, then 4 and 5 alone
    pieces, alone = split_to_budget(order, deps, [40, 40, 40, 40, 10, 10], budget=100, overhead=5)
    assert alone == [] and pieces == [[0, 1, 4], [2, 3, 5]]  # first fit: 5 has no room left beside 0, 1, 4
    pieces, alone = split_to_budget(order, deps, [40, 200, 40, 40, 10, 10], budget=100, overhead=5)
    assert alone == [1] and sum(map(len, pieces)) == 5


@pytest.fixture(scope="module")
def crawl_files(small_crawl: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """The small crawl's code files with a heuristic score each, and each repository's mean."""
    home = tmp_path_factory.mktemp("lc")
    _, files, _ = _ingest(small_crawl, home / "lake", ExtractParams())
    files = files.filter(pl.col("language").is_not_null())
    files = files.with_columns(pl.Series("score", [float(heuristic_rating(c)) for c in files["content"]],
                                         dtype=pl.Float32))
    (home / "files").mkdir()
    files.write_parquet(home / "files" / "part-0.parquet")
    (home / "files" / "_SUCCESS").touch()
    (home / "quality").mkdir()
    files.group_by("repo").agg(pl.col("score").mean().alias("mean_score"), pl.len().alias("n_files")) \
        .write_parquet(home / "quality" / "part-0.parquet")
    (home / "quality" / "_SUCCESS").touch()
    return str(home / "files"), str(home / "quality")


PARAMS = LongContextParams(min_repo_score_quantile=0.3, budget_tokens=4096, min_file_tokens=1500)


def _build(crawl_files, out: Path, params: LongContextParams = PARAMS):
    files, quality = crawl_files
    lineage = LineageWriter(str(out), "long_context_sequences", "c1", "r")
    stats = build_sequences("c1", files, quality, str(out / "seq"), lineage, params, duckdb_connect())
    return stats, str(out / "seq")


@pytest.fixture(scope="module")
def built(crawl_files, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("built")
    stats, seq = _build(crawl_files, out)
    return stats, seq, out


def test_the_small_crawl_as_sequences_passes_every_check(crawl_files, built, tmp_path: Path) -> None:
    stats, seq, home = built
    files, _ = crawl_files
    assert stats.balanced and stats.extra["repos_selected"] >= 10 and stats.rows_out > 500
    assert stats.extra["resolved_imports"]["Python"] > 200 and stats.extra["unresolved_imports"]["Python"] > 0
    s = read_table(seq).to_pylist()
    assert max(r["pieces"] for r in s) > 3  # 4K tokens cuts the big repositories
    bar = stats.extra["repo_bar"]
    tj = tokenizer_file(PARAMS.tokenizer)
    for name, outcome in {
        "once": checks.every_file_once(seq, files, bar, tj, PARAMS.budget_tokens, PARAMS.repo_token, PARAMS.file_token),
        "order": checks.python_imports_in_order(seq, files),
        "budget": checks.no_sequence_over_budget(seq, tj, PARAMS.budget_tokens),
        "layout": checks.layout_matches(seq, PARAMS.repo_token, PARAMS.file_token),
    }.items():
        assert outcome.passed, (name, outcome.metadata)
    assert checks.python_imports_in_order(seq, files).metadata["python_edges_in_sequences"] > 100
    # The layout: the repository's name, then each file's path and content.
    first = s[0]
    assert first["text"].startswith(f"<|repo_name|>{first['repo']}\n<|file_sep|>{first['paths'][0]}\n")
    assert first["text"].count("<|file_sep|>") >= len(first["paths"])
    # Lineage: every file of a selected repository names its sequence (a merge).
    lineage = pl.read_parquet(f"{home}/lineage/stage=long_context_sequences/crawl=c1/*.parquet")
    kept = lineage.filter(pl.col("decision") == "kept")
    assert set(kept["output_id"]) == {r["id"] for r in s} and kept.height == sum(len(r["file_ids"]) for r in s)
    # Re-running gives the same sequences.
    _, again = _build(crawl_files, tmp_path / "again")
    assert read_table(again).to_pylist() == s


def _rewrite(seq: str, dst: Path, change) -> str:
    rows = [change(r) for r in read_table(seq).to_pylist()]
    with PartWriter(str(dst), SEQUENCE_SCHEMA) as out:
        out.write_rows([r for r in rows if r is not None])
    return str(dst)


def test_each_check_fails_on_output_that_breaks_it(crawl_files, built, tmp_path: Path) -> None:
    stats, seq, _ = built
    files, _ = crawl_files
    bar, tj, p = stats.extra["repo_bar"], tokenizer_file(PARAMS.tokenizer), PARAMS

    def once(uri):
        return checks.every_file_once(uri, files, bar, tj, p.budget_tokens, p.repo_token, p.file_token)

    rows = read_table(seq).to_pylist()
    victim = next(r for r in rows if len(r["file_ids"]) > 3)
    doubled = _rewrite(seq, tmp_path / "doubled", lambda r: r | {"file_ids": r["file_ids"] + [victim["file_ids"][0]]}
                       if r["id"] == rows[-1]["id"] else r)
    assert not once(doubled).passed
    lost = _rewrite(seq, tmp_path / "lost", lambda r: None if r["id"] == victim["id"] else r)
    assert not once(lost).passed
    # Reversed file order: the imports now come before what they import, and are no recorded cycle break.
    python = [r for r in rows if r["edges"] and all(lang == "Python" for lang in r["languages"])]
    flip = {r["id"] for r in python}
    reversed_ = _rewrite(seq, tmp_path / "reversed", lambda r: r | {
        "file_ids": r["file_ids"][::-1], "paths": r["paths"][::-1]} if r["id"] in flip else r)
    assert not checks.python_imports_in_order(reversed_, files).passed
    assert not checks.no_sequence_over_budget(seq, tj, max(r["tokens"] for r in rows) // 2).passed
    # A text that lost a file, or lists its files in another order than `paths`, is not its sequence.
    swapped = _rewrite(seq, tmp_path / "swapped", lambda r: r | {"paths": r["paths"][::-1]}
                       if r["id"] == victim["id"] else r)
    assert not checks.layout_matches(swapped, p.repo_token, p.file_token).passed
    moved = _rewrite(seq, tmp_path / "moved", lambda r: r | {"repo": "someone/else"} if r["id"] == victim["id"] else r)
    assert not checks.layout_matches(moved, p.repo_token, p.file_token).passed
    assert not once(moved).passed  # and its files sit in another repository's sequence
    long_files = tmp_path / "long"
    select_long_files(files, str(long_files), LineageWriter(str(tmp_path), "long_context_files", "c1", "r"), p)
    kept = read_table(str(long_files), ["tokens"])["tokens"].to_pylist()
    assert kept and min(kept) >= p.min_file_tokens
    assert checks.files_long_enough(str(long_files), tj, p.min_file_tokens).passed
    assert not checks.files_long_enough(str(long_files), tj, max(kept) + 1).passed


def test_a_file_over_the_budget_alone_leaves_the_repository(crawl_files, tmp_path: Path) -> None:
    small = LongContextParams(min_repo_score_quantile=0.3, budget_tokens=1024)
    stats, seq = _build(crawl_files, tmp_path, small)
    assert stats.drops["file_over_budget"] > 0 and stats.balanced
    count = token_counter("")
    assert max(count(read_table(seq, ["text"])["text"].to_pylist())) <= 1024


def test_a_sequence_picture(built) -> None:
    """The metadata picture draws a sequence's import graph."""
    from seedcoder_assets.lib.plots import dependency_graph_markdown

    _, seq, _ = built
    con = duckdb_connect()
    repo, paths, edges, breaks = con.execute(
        f"SELECT repo, paths, edges, cycle_breaks FROM read_parquet('{seq}/*.parquet') "
        "WHERE len(paths) BETWEEN 4 AND 40 ORDER BY len(edges) DESC LIMIT 1").fetchone()
    assert edges and "image/png" in dependency_graph_markdown(repo, paths, edges, breaks).value
