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

from seedcoder_assets.core.languages import FALLBACK_GRAMMARS, grammar_of
from seedcoder_assets.core.parquet_io import iter_batches
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


def check(content: str, language: str | None, path: str, params: SyntaxParams) -> tuple[str, float | None]:
    """("ok" | "syntax_error" | "unchecked", error share or None when unchecked)."""
    grammar = grammar_of(language, path)
    if grammar is None or language in params.unchecked_languages:
        return "unchecked", None
    data = content.encode("utf-8")
    share = error_share(parser_for(grammar).parse(data).root_node, len(data))
    for other in FALLBACK_GRAMMARS.get(grammar, ()) if share > 0 else ():
        share = min(share, error_share(parser_for(other).parse(data).root_node, len(data)))
    return ("syntax_error" if share > params.limit(language or "") else "ok"), share


def decide_syntax(params: SyntaxParams) -> tuple[Decide, Counter[str]]:
    """Kept: files whose error share is within their language's limit, and `unchecked` files.

    Dropped: `syntax_error`. Lineage `detail` holds the language and error share (or `unchecked`). The
    counter returned with the function counts the unchecked files it has kept.
    """
    counts: Counter[str] = Counter()

    def decide(batch: pa.RecordBatch) -> Verdicts:
        reasons, details = [], []
        for content, lang, path in zip(*(batch.column(c).to_pylist() for c in ("content", "language", "path"))):
            verdict, share = check(content, lang, path, params)
            details.append("unchecked" if share is None else f"{lang}:{share:.4f}")
            reasons.append("syntax_error" if verdict == "syntax_error" else None)
            counts[verdict] += 1
        return Verdicts.from_reasons(reasons, detail=details)

    return decide, counts


def filter_syntax(src_uri: str, dst_uri: str, lineage: LineageWriter, params: SyntaxParams) -> StageStats:
    """The syntax stage over a partition (see `decide_syntax`)."""
    decide, counts = decide_syntax(params)
    stats = run_stage(iter_batches(src_uri, batch_rows=1024), dst_uri, lineage, decide)
    stats.extra["unchecked_files"] = counts["unchecked"]
    return stats
