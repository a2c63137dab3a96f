"""The file features measured again by Python's own tools, not tree-sitter: `ast` for imports and
docstrings, `tokenize` for comments. Python is where both exist; the other languages share the code path."""

from __future__ import annotations

import ast
import io
import random
import tokenize

import pyarrow.compute as pc

from seedcoder_assets.core.checks import CheckOutcome
from seedcoder_assets.core.languages import grammar_of
from seedcoder_assets.core.parquet_io import iter_batches, read_table


def python_reference(source: str) -> tuple[list[str], int, bool] | None:
    """(imports as written, bytes of comments and docstrings, any docstring) by ast and tokenize; None if they
    cannot read it."""
    try:
        tree = ast.parse(source)
        comments = sum(len(t.string.encode()) for t in tokenize.generate_tokens(io.StringIO(source).readline)
                       if t.type == tokenize.COMMENT)
    except (SyntaxError, ValueError, tokenize.TokenError, RecursionError):
        return None
    lines = source.encode().splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    imports: list[str] = []
    doc_bytes, docstrings = 0, 0
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imports += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            prefix = "." * node.level
            imports += [prefix + node.module] if node.module else [prefix + a.name for a in node.names]
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                v = first.value  # col offsets are UTF-8 byte offsets
                doc_bytes += (offsets[v.end_lineno - 1] + v.end_col_offset) - (offsets[v.lineno - 1] + v.col_offset)
                docstrings += 1
    return imports, comments + doc_bytes, docstrings > 0


def python_features_agree(files_uri: str, features_uri: str, sample: int = 300, tolerance: float = 0.02,
                          min_share: float = 0.95, seed: int = 0) -> CheckOutcome:
    """For a seeded sample of Python files: the feature row's imports are the ones `ast` finds (as a set),
    its comment ratio is within `tolerance` of tokenize's comments plus ast's docstrings, and it has a docstring
    exactly when ast finds one (module, class or function). Passes when at
    least `min_share` of the files `ast` reads agree on both, and every kept Python file with a grammar has
    a row."""
    features = read_table(features_uri, ["id", "language", "comment_ratio", "imports", "has_docstring"])
    python = features.filter(pc.equal(features["language"], "Python"))
    by_id = {r["id"]: r for r in python.to_pylist()}
    rng = random.Random(seed)
    chosen = set(rng.sample(sorted(by_id), min(sample, len(by_id))))
    compared = agreed = without_row = 0
    mismatches: list[dict] = []
    for batch in iter_batches(files_uri, ["id", "language", "path", "content"], batch_rows=512):
        for file_id, language, path, content in zip(*(batch.column(c).to_pylist() for c in (
                "id", "language", "path", "content"))):
            if language != "Python" or grammar_of(language, path) is None:  # e.g. Cython: no grammar, no row
                continue
            if file_id not in by_id:
                without_row += 1
                continue
            if file_id not in chosen:
                continue
            reference = python_reference(content)
            if reference is None:
                continue
            compared += 1
            imports, comment_bytes, docstring = reference
            row = by_id[file_id]
            ratio = comment_bytes / max(1, len(content.encode()))
            same = (set(imports) == set(row["imports"]) and abs(ratio - row["comment_ratio"]) <= tolerance
                    and docstring == row["has_docstring"])
            agreed += same
            if not same and len(mismatches) < 5:
                mismatches.append({"id": file_id, "ast_imports": sorted(set(imports))[:10],
                                   "imports": sorted(set(row["imports"]))[:10], "reference_ratio": round(ratio, 4),
                                   "comment_ratio": round(row["comment_ratio"], 4), "ast_docstring": docstring,
                                   "has_docstring": row["has_docstring"]})
    share = agreed / compared if compared else 0.0
    nothing_to_compare = not by_id and without_row == 0  # no Python file in this partition
    return CheckOutcome(nothing_to_compare or (share >= min_share and without_row == 0), {
        "compared": compared, "agreed_share": round(share, 4), "bound": min_share,
        "kept_python_files_without_features": without_row, "mismatches": mismatches})
