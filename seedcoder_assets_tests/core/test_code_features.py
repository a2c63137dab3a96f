"""File features from tree-sitter trees (comments, documented definitions, imports, packages), on snippets
whose answer is known, and through the syntax stage on real code (the Python and C sources of installed
PyPI wheels) against Python's own ast and tokenize."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tree_sitter_language_pack import get_parser

from seedcoder_assets.core.features.checks import python_features_agree, python_reference
from seedcoder_assets.core.features.code import FEATURE_SCHEMA, feature_row
from seedcoder_assets.core.filters.syntax import SyntaxParams, filter_syntax
from seedcoder_assets.core.parquet_io import PartWriter, read_table
from seedcoder_assets.core.schemas import FILE_SCHEMA
from seedcoder_assets.core.stats import LineageWriter

SNIPPETS = {
    "python": ('"""Module doc."""\nimport os.path, numpy as np\nfrom . import utils, other as o\n'
               'from ..pkg.mod import x\nfrom requests.adapters import HTTPAdapter\n# a comment\n'
               'def f():\n    """doc"""\n    return 1\n\nclass A:\n    def g(self):\n        pass\n',
               ["os.path", "numpy", ".utils", ".other", "..pkg.mod", "requests.adapters"],
               ["numpy", "os", "requests"], 3, 1),
    "javascript": ("import React from 'react';\nconst x = require('lodash/fp');\nimport {a} from './local';\n"
                   "import y from '@babel/core/lib';\n/** doc */\nfunction f() {}\n\nfunction g() {}\n",
                   ["react", "lodash/fp", "./local", "@babel/core/lib"], ["@babel/core", "lodash", "react"], 2, 1),
    "java": ("package a.b;\nimport java.util.List;\nimport org.springframework.boot.*;\n/** doc */\n"
             "public class A {\n\n  void m() {}\n}\n",
             ["java.util.List", "org.springframework.boot.*"], ["java.util", "org.springframework"], 2, 1),
    "go": ('package main\nimport (\n  "fmt"\n  "github.com/x/y/z"\n)\n// F does.\nfunc F() {}\n\nfunc G() {}\n',
           ["fmt", "github.com/x/y/z"], ["fmt", "github.com/x/y"], 2, 1),
    "rust": ("use std::collections::HashMap;\nuse serde::Deserialize;\nuse crate::x;\n/// doc\nfn f() {}\n",
             ["std::collections::HashMap", "serde::Deserialize", "crate::x"], ["serde", "std"], 1, 1),
    "c": ('#include <stdio.h>\n#include "local.h"\n\nint main() { return 0; }\n',
          ["<stdio.h>", '"local.h"'], ["stdio.h"], 1, 0),
}


@pytest.mark.parametrize("grammar", sorted(SNIPPETS))
def test_features_of_known_snippets(grammar: str) -> None:
    source, imports, packages, definitions, documented = SNIPPETS[grammar]
    data = source.encode()
    row = feature_row("f", "c", grammar, grammar, get_parser(grammar).parse(data).root_node, len(data))
    assert row["imports"] == imports and row["packages"] == packages
    assert (row["definitions"], row["documented"]) == (definitions, documented)
    assert row["has_docstring"] == (documented > 0 or grammar == "python")
    assert 0 < row["comment_ratio"] < 0.3 or grammar == "c"


def test_python_reference_counts_comments_and_docstrings() -> None:
    source = SNIPPETS["python"][0]
    imports, comment_bytes, docstring = python_reference(source)
    assert docstring
    assert set(imports) == set(SNIPPETS["python"][1])
    assert comment_bytes == len("# a comment") + len('"""Module doc."""') + len('"""doc"""')
    row = feature_row("f", "c", "Python", "python", get_parser("python").parse(source.encode()).root_node,
                      len(source.encode()))
    assert row["comment_ratio"] == pytest.approx(comment_bytes / len(source.encode()))


@pytest.fixture(scope="module")
def syntax_checked(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """The syntax stage, with features, over real Python and C sources of installed wheels."""
    import dagster
    import numpy

    rows = []
    for root in (Path(dagster.__file__).parent, Path(numpy.__file__).parent):
        for path in sorted(root.rglob("*.py"))[:300] + sorted(root.rglob("*.h"))[:40]:
            text = path.read_text(errors="replace")
            rows.append({"id": hashlib.sha1(str(path).encode()).hexdigest()[:16], "crawl": "t", "repo": root.name,
                         "path": str(path.relative_to(root)), "language": "Python" if path.suffix == ".py" else "C",
                         "size": len(text), "sha256": hashlib.sha256(text.encode()).hexdigest(), "content": text})
    home = tmp_path_factory.mktemp("features")
    with PartWriter(str(home / "src"), FILE_SCHEMA) as out:
        out.write_rows(rows)
    filter_syntax(str(home / "src"), str(home / "kept"), LineageWriter(str(home), "syntax_checked_files", "t", "r"),
                  SyntaxParams(), str(home / "features"))
    return str(home / "kept"), str(home / "features")


def test_the_check_agrees_on_real_files_and_fails_on_wrong_features(syntax_checked, tmp_path) -> None:
    files, features = syntax_checked
    kept = read_table(files, ["id", "language"])
    table = read_table(features)
    assert table.num_rows == kept.num_rows  # every kept file has a grammar here: one row each
    assert any(row for row in table["packages"].to_pylist())
    outcome = python_features_agree(files, features)
    assert outcome.passed and outcome.metadata["compared"] > 100, outcome.metadata
    rows = read_table(features).to_pylist()
    for row in rows:  # features that claim no imports and no comments for every Python file
        if row["language"] == "Python":
            row["imports"], row["comment_ratio"] = [], 0.0
    (tmp_path / "bad").mkdir()
    pq.write_table(pa.Table.from_pylist(rows, schema=FEATURE_SCHEMA), tmp_path / "bad" / "part-0.parquet")
    (tmp_path / "bad" / "_SUCCESS").touch()
    bad = python_features_agree(files, str(tmp_path / "bad"))
    assert not bad.passed and bad.metadata["agreed_share"] < 0.5
    # A kept Python file without a feature row fails it too.
    (tmp_path / "missing").mkdir()
    python = read_table(features).to_pylist()
    dropped = next(i for i, r in enumerate(python) if r["language"] == "Python")
    pq.write_table(pa.Table.from_pylist(python[:dropped] + python[dropped + 1:], schema=FEATURE_SCHEMA),
                   tmp_path / "missing" / "part-0.parquet")
    (tmp_path / "missing" / "_SUCCESS").touch()
    missing = python_features_agree(files, str(tmp_path / "missing"))
    assert not missing.passed and missing.metadata["kept_python_files_without_features"] == 1
