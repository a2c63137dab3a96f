"""Error share by tree-sitter-languages 1.10.2 (run with benchmarks/.venv-tsl) for a JSONL of
{grammars: [grammar, fallbacks...], text}: the same rule as the pipeline's (bytes under ERROR nodes
plus one per MISSING node, over the file size; the best of the grammar and its fallbacks), or null.
It mirrors core/filters/syntax.py by hand: this venv pins tree-sitter 0.21 and cannot import the package."""

import json
import sys
import warnings

warnings.simplefilter("ignore")
from tree_sitter_languages import get_parser  # noqa: E402

RENAME = {"csharp": "c_sharp"}
parsers = {}


def parser(grammar):
    g = RENAME.get(grammar, grammar)
    if g not in parsers:
        try:
            parsers[g] = get_parser(g)
        except Exception:
            parsers[g] = None
    return parsers[g]


def error_share(root, size):
    if not root.has_error:
        return 0.0
    bad, stack = 0, [root]
    while stack:
        node = stack.pop()
        if node.type == "ERROR":
            bad += node.end_byte - node.start_byte
        elif node.is_missing:
            bad += 1
        elif node.has_error:
            stack.extend(node.children)
    return min(1.0, bad / max(size, 1))


for line in sys.stdin:
    d = json.loads(line)
    data = d["text"].encode()
    shares = [error_share(p.parse(data).root_node, len(data)) for p in map(parser, d["grammars"]) if p is not None]
    print(json.dumps(min(shares) if shares else None))
