"""Syntax check with tree-sitter grammars, calibrated per language.

A literal `root.has_error` filter throws away a large share of released C and C++ (tree-sitter
cannot expand preprocessor macros, so `FOO(x) { ... }` style code parses with local ERROR
nodes). So a file is judged by its *error share*: bytes under ERROR nodes plus one byte per
MISSING node, over the file size. Each language has a maximum share; code that is really
broken (truncated, unbalanced, not that language) has a far larger share than macro noise.
Languages without a bundled grammar pass as `unchecked` and are counted as such.
"""

from __future__ import annotations

from collections import Counter
from functools import cache

import pyarrow as pa
from pydantic import BaseModel, Field
from tree_sitter import Node, Parser
from tree_sitter_language_pack import get_parser

from seedcoder_assets.core.features.code import FEATURE_SCHEMA, feature_row
from seedcoder_assets.core.languages import FALLBACK_GRAMMARS, grammar_of
from seedcoder_assets.core.parquet_io import PartWriter, iter_batches
from seedcoder_assets.core.runner import Decide, Verdicts, run_stage
from seedcoder_assets.core.stats import LineageWriter, StageStats

# Fitted with benchmarks/bench_syntax.py on the large crawl (table in the README): the smallest
# error-share limit whose false-drop rate on one half of the repositories is at most 2%, measured on the
# other half. 0.0 = any ERROR/MISSING node drops the file. Markup stays at 1.0: any text is a document,
# and no limit catches more than 2% of cut files. Languages with too few files to fit (fewer than 40
# in the fit half) get `default_max_error_share`, a conservative 0.2: only files a fifth broken go.
DEFAULT_MAX_ERROR_SHARE: dict[str, float] = {
    "Python": 0.0, "JavaScript": 0.0, "JSON": 0.0, "Java": 0.0, "Rust": 0.0, "YAML": 0.0,
    "TypeScript": 0.005, "Shell": 0.01, "CSS": 0.05, "HTML": 0.1, "C": 0.2, "Protocol Buffer": 0.2,
    "Markdown": 1.0, "reStructuredText": 1.0,
}

# No limit of the grid keeps false drops within 2% on the fit half (C++: 6% at 0.2, macros; CMake: 4%
# at every limit), or the bundled grammar disagrees with released code: judging these would drop good
# files, so they pass as "unchecked" and are counted.
DEFAULT_UNCHECKED: frozenset[str] = frozenset({"C++", "CMake", "Makefile", "Perl", "SQL", "Ruby", "Scala", "Verilog",
                                               "SystemVerilog"})


class SyntaxParams(BaseModel, frozen=True):
    """Per-language maximum error share; languages not listed use `default_max_error_share`."""

    default_max_error_share: float = 0.2
    max_error_share: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_MAX_ERROR_SHARE))
    unchecked_languages: frozenset[str] = DEFAULT_UNCHECKED

    def limit(self, language: str) -> float:
        return self.max_error_share.get(language, self.default_max_error_share)


@cache
def parser_for(grammar: str) -> Parser:
    return get_parser(grammar)  # type: ignore[arg-type]


def error_share(root: Node, size: int) -> float:
    """Share of the file under ERROR nodes (+1 byte per MISSING node); 0.0 for a clean tree.

    Only subtrees flagged `has_error` are visited, so clean files cost one attribute read.
    """
    if not root.has_error:
        return 0.0
    bad = 0
    stack = [root]
    while stack:
        node = stack.pop()
        if node.is_error:
            bad += node.end_byte - node.start_byte
        elif node.is_missing:
            bad += 1
        elif node.has_error:
            stack.extend(node.children)
    return min(1.0, bad / max(size, 1))


def parse_checked(content: str, language: str | None, path: str, params: SyntaxParams
                  ) -> tuple[str, float | None, Node | None, str | None]:
    """(verdict, error share or None when unchecked, the tree or None, its grammar or None). A language
    whose grammar is not trusted for the verdict is still parsed: its tree gives the file's features."""
    grammar = grammar_of(language, path)
    if grammar is None:
        return "unchecked", None, None, None
    data = content.encode("utf-8")
    root = parser_for(grammar).parse(data).root_node
    if language in params.unchecked_languages:
        return "unchecked", None, root, grammar
    share = error_share(root, len(data))
    for other in FALLBACK_GRAMMARS.get(grammar, ()) if share > 0 else ():
        share = min(share, error_share(parser_for(other).parse(data).root_node, len(data)))
    return ("syntax_error" if share > params.limit(language or "") else "ok"), share, root, grammar


def check(content: str, language: str | None, path: str, params: SyntaxParams) -> tuple[str, float | None]:
    """("ok" | "syntax_error" | "unchecked", error share or None when unchecked)."""
    verdict, share, _, _ = parse_checked(content, language, path, params)
    return verdict, share


def decide_syntax(params: SyntaxParams, features: list[dict] | None = None) -> tuple[Decide, Counter[str]]:
    """Kept: files whose error share is within their language's limit, and `unchecked` files.

    Dropped: `syntax_error`. Lineage `detail` holds the language and error share (or `unchecked`). The
    counter returned with the function counts the unchecked files it has kept. With `features`, the
    features of every kept file that has a grammar are appended to it (core/features/code.py), from the
    same tree.
    """
    counts: Counter[str] = Counter()

    def decide(batch: pa.RecordBatch) -> Verdicts:
        reasons, details = [], []
        for file_id, crawl, content, lang, path in zip(*(batch.column(c).to_pylist() for c in (
                "id", "crawl", "content", "language", "path"))):
            verdict, share, root, grammar = parse_checked(content, lang, path, params)
            details.append("unchecked" if share is None else f"{lang}:{share:.4f}")
            reasons.append("syntax_error" if verdict == "syntax_error" else None)
            counts[verdict] += 1
            if features is not None and root is not None and verdict != "syntax_error":
                features.append(feature_row(file_id, crawl, lang, grammar, root, len(content.encode("utf-8"))))
        return Verdicts.from_reasons(reasons, detail=details)

    return decide, counts


def filter_syntax(src_uri: str, dst_uri: str, lineage: LineageWriter, params: SyntaxParams,
                  features_uri: str | None = None) -> StageStats:
    """The syntax stage over a partition (see `decide_syntax`); the kept files' features to `features_uri`."""
    rows: list[dict] = []
    decide, counts = decide_syntax(params, rows if features_uri else None)
    if features_uri is None:
        stats = run_stage(iter_batches(src_uri, batch_rows=1024), dst_uri, lineage, decide)
    else:
        with PartWriter(features_uri, FEATURE_SCHEMA) as features:
            def flushing(batch: pa.RecordBatch) -> Verdicts:  # one batch's features at a time
                verdicts = decide(batch)
                features.write_table(pa.Table.from_pylist(rows, schema=FEATURE_SCHEMA))
                rows.clear()
                return verdicts

            stats = run_stage(iter_batches(src_uri, batch_rows=1024), dst_uri, lineage, flushing)
    stats.extra["unchecked_files"] = counts["unchecked"]
    return stats
