"""What a file is made of, read from its tree-sitter tree (the one the syntax stage parses): the share of its
bytes in comments, its definitions and whether they are documented, and what it imports.

Users pick high-quality seed files by these (paper 2.2.4: comment ratio, docstrings, imported packages), and
the long-context corpus orders a repository by its imports, so both read this one table. Imports are kept as
written (`os.path`, `.utils`, `./local`, `"local.h"`); `packages` are the external ones a user filters on:
the top-level name of an absolute Python import, an npm package (`@scope/name`), a Java package's first two
parts, a Go module path, a Rust crate, a system header.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Final

import pyarrow as pa
from tree_sitter import Node, Query, QueryCursor
from tree_sitter_language_pack import get_language

FEATURE_SCHEMA: Final[pa.Schema] = pa.schema([
    ("id", pa.string()), ("crawl", pa.string()), ("language", pa.string()),
    ("comment_ratio", pa.float32()),  # bytes inside comment nodes (Python docstrings included) / file bytes
    ("definitions", pa.int32()),  # functions, methods, classes, structs, impls
    ("documented", pa.int32()),  # of them, with a docstring or a doc comment right above
    ("has_docstring", pa.bool_()),  # a module, class or function docstring or doc comment
    ("imports", pa.list_(pa.string())),  # as written, in file order
    ("packages", pa.list_(pa.string())),  # the external ones, sorted, unique
])

DEFINITIONS: Final = frozenset({
    "function_definition", "class_definition", "decorated_definition", "function_declaration",
    "method_declaration", "method_definition", "class_declaration", "interface_declaration",
    "constructor_declaration", "function_item", "impl_item", "struct_item", "trait_item", "enum_item",
    "struct_specifier", "class_specifier", "method", "singleton_method", "class", "module",
})
_WRAPPERS: Final = frozenset({"decorated_definition", "export_statement"})


def _is_comment(node: Node) -> bool:
    return "comment" in node.type


@dataclass
class CodeFeatures:
    comment_bytes: int = 0
    definitions: int = 0
    documented: int = 0
    module_docstring: bool = False
    imports: list[str] = field(default_factory=list)


def _text(node: Node) -> str:
    return node.text.decode("utf-8", "replace") if node.text is not None else ""


def _unquote(s: str) -> str:
    return s.strip().strip("'\"`<>")


def _python_docstring(body: Node | None) -> Node | None:
    """The string that opens a module, class or function body, if any."""
    if body is None:
        return None
    first = next((c for c in body.named_children if not _is_comment(c)), None)
    if first is not None and first.type == "expression_statement" and first.named_child_count == 1:
        first = first.named_children[0]
    return first if first is not None and first.type == "string" else None


def _imports(node: Node, grammar: str) -> list[str]:
    t = node.type
    if grammar == "python":
        if t == "import_statement":
            return [_text(c.child_by_field_name("name") or c) if c.type == "aliased_import" else _text(c)
                    for c in node.named_children if c.type in ("dotted_name", "aliased_import")]
        if t == "future_import_statement":
            return ["__future__"]
        if t == "import_from_statement":
            module = node.child_by_field_name("module_name")
            if module is None:
                return []
            if module.type == "relative_import" and not _text(module).strip("."):  # from . import sub: modules
                names = [c.child_by_field_name("name") if c.type == "aliased_import" else c
                         for c in node.children_by_field_name("name")]
                return [_text(module) + _text(n) for n in names if n is not None]
            return [_text(module)]
    elif grammar in ("javascript", "typescript", "tsx"):
        if t in ("import_statement", "export_statement"):
            source = node.child_by_field_name("source")
            return [_unquote(_text(source))] if source is not None else []
        if t == "call_expression":
            fn, args = node.child_by_field_name("function"), node.child_by_field_name("arguments")
            if fn is not None and _text(fn) == "require" and args is not None and args.named_child_count == 1 \
                    and args.named_children[0].type == "string":
                return [_unquote(_text(args.named_children[0]))]
    elif grammar == "java" and t == "import_declaration":
        names = [_text(c) for c in node.named_children if c.type in ("scoped_identifier", "identifier")]
        return [names[0] + (".*" if any(c.type == "asterisk" for c in node.children) else "")] if names else []
    elif grammar == "go" and t == "import_spec":
        path = node.child_by_field_name("path")
        return [_unquote(_text(path))] if path is not None else []
    elif grammar == "rust" and t == "use_declaration":
        argument = node.child_by_field_name("argument")
        return [_text(argument)] if argument is not None else []
    elif grammar in ("c", "cpp", "cuda") and t == "preproc_include":
        path = node.child_by_field_name("path")
        return [_text(path).strip()] if path is not None else []
    return []


_IMPORT_PATTERNS: Final[dict[str, tuple[str, ...]]] = {
    "python": ("(import_statement) @import", "(import_from_statement) @import", "(future_import_statement) @import"),
    "javascript": ("(import_statement) @import", "(export_statement source: (_)) @import",
                   '(call_expression function: (identifier) @_fn (#eq? @_fn "require")) @import'),
    "java": ("(import_declaration) @import",),
    "go": ("(import_spec) @import",),
    "rust": ("(use_declaration) @import",),
    "c": ("(preproc_include) @import",),
}
_IMPORT_PATTERNS |= {"typescript": _IMPORT_PATTERNS["javascript"], "tsx": _IMPORT_PATTERNS["javascript"],
                     "cpp": _IMPORT_PATTERNS["c"], "cuda": _IMPORT_PATTERNS["c"]}


@cache
def _query(grammar: str) -> tuple[Query, bool]:
    """One query per grammar for the comment, definition and import nodes: the tree is searched in C, and
    Python sees only what matched. (False: the grammar has none of them.)"""
    language = get_language(grammar)  # type: ignore[arg-type]
    kinds = {language.node_kind_for_id(i) for i in range(language.node_kind_count)
             if language.node_kind_is_named(i) and language.node_kind_is_visible(i)}
    patterns = [f"({k}) @comment" for k in sorted(kinds) if "comment" in k and "marker" not in k]
    patterns += [f"({k}) @definition" for k in sorted(kinds & DEFINITIONS - _WRAPPERS)]
    patterns += [p for p in _IMPORT_PATTERNS.get(grammar, ()) if p.split(")")[0].lstrip("(").split()[0] in kinds]
    return Query(language, "\n".join(patterns) or "(ERROR) @none"), bool(patterns)


def _collect(root: Node, grammar: str, out: CodeFeatures) -> None:
    query, any_pattern = _query(grammar)
    if not any_pattern:
        return
    captures = QueryCursor(query).captures(root)
    covered_to = -1  # comments nested in comments (Rust's doc_comment in line_comment) count once
    for node in sorted(captures.get("comment", ()), key=lambda n: (n.start_byte, -n.end_byte)):
        if node.start_byte >= covered_to:
            out.comment_bytes += node.end_byte - node.start_byte
            covered_to = node.end_byte
    for node in sorted(captures.get("import", ()), key=lambda n: n.start_byte):
        out.imports.extend(_imports(node, grammar))
    for node in captures.get("definition", ()):
        if node.parent is None:  # the root (Python's `module`)
            continue
        out.definitions += 1
        if grammar == "python":
            doc = _python_docstring(node.child_by_field_name("body"))
            if doc is not None:
                out.comment_bytes += doc.end_byte - doc.start_byte
                out.documented += 1
            continue
        above = node.prev_sibling
        if node.parent.type in _WRAPPERS:
            above = node.parent.prev_sibling
        if above is not None and _is_comment(above) and node.start_point[0] - above.end_point[0] <= 1:
            out.documented += 1


def import_refs(root: Node, grammar: str) -> list[tuple[str, tuple[str, ...]]]:
    """A file's imports as (module as written, names imported from it) in file order: the same query and
    extraction as its features, plus the names of a Python `from x import a, b` (a name may be a module,
    `x/a.py`, which the long-context corpus resolves; core/longctx/graph.py)."""
    query, any_pattern = _query(grammar)
    if not any_pattern:
        return []
    out: list[tuple[str, tuple[str, ...]]] = []
    for node in sorted(QueryCursor(query).captures(root).get("import", ()), key=lambda n: n.start_byte):
        names: tuple[str, ...] = ()
        if grammar == "python" and node.type == "import_from_statement":
            names = tuple(_text(c.child_by_field_name("name") if c.type == "aliased_import" else c)
                          for c in node.children_by_field_name("name"))
            module = node.child_by_field_name("module_name")
            if module is not None and module.type == "relative_import" and not _text(module).strip("."):
                out.append((_text(module), names))  # `from . import a`: the package, then its modules
                continue
        out.extend((spec, names) for spec in _imports(node, grammar))
    return out


def code_features(root: Node, grammar: str, size: int) -> CodeFeatures:
    """The features of one parsed file (`size`: its UTF-8 bytes)."""
    out = CodeFeatures()
    if grammar == "python":
        doc = _python_docstring(root)
        if doc is not None:
            out.module_docstring = True
            out.comment_bytes += doc.end_byte - doc.start_byte
    _collect(root, grammar, out)
    out.comment_bytes = min(out.comment_bytes, size)
    return out


def packages(imports: list[str], grammar: str) -> list[str]:
    """The external packages among a file's imports (relative and local ones left out)."""
    found: set[str] = set()
    for raw in imports:
        name = raw.strip()
        if not name or name.startswith((".", "/")):
            continue
        if grammar == "python":
            found.add(name.split(".")[0])
        elif grammar in ("javascript", "typescript", "tsx"):
            parts = name.split("/")
            found.add("/".join(parts[:2]) if name.startswith("@") else parts[0])
        elif grammar == "java":
            found.add(".".join(name.split(".")[:2]))
        elif grammar == "go":
            found.add("/".join(name.split("/")[:3]) if "." in name.split("/")[0] else name.split("/")[0])
        elif grammar == "rust":
            crate = name.split("::")[0].strip("{} ")
            if crate not in ("crate", "self", "super"):
                found.add(crate)
        elif grammar in ("c", "cpp", "cuda") and name.startswith("<"):
            found.add(name.strip("<>"))
    return sorted(found)


def feature_row(file_id: str, crawl: str, language: str | None, grammar: str, root: Node, size: int) -> dict:
    f = code_features(root, grammar, size)
    return {"id": file_id, "crawl": crawl, "language": language,
            "comment_ratio": f.comment_bytes / size if size else 0.0, "definitions": f.definitions,
            "documented": f.documented, "has_docstring": f.module_docstring or f.documented > 0,
            "imports": f.imports, "packages": packages(f.imports, grammar)}
