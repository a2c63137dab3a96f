"""has_error from tree-sitter-languages 1.10.2 (run with benchmarks/.venv-tsl) for a JSONL of {grammar, text}."""

import json
import sys
import warnings

warnings.simplefilter("ignore")
from tree_sitter_languages import get_parser  # noqa: E402

RENAME = {"csharp": "c_sharp"}
parsers = {}
for line in sys.stdin:
    d = json.loads(line)
    g = RENAME.get(d["grammar"], d["grammar"])
    if g not in parsers:
        try:
            parsers[g] = get_parser(g)
        except Exception:
            parsers[g] = None
    p = parsers[g]
    print(json.dumps(None if p is None else p.parse(d["text"].encode()).root_node.has_error))
