"""A repository's import graph, from tree-sitter: each import resolved to a file of the same repository, or
recorded as unresolved (third-party, the standard library, or generated code).

Imports come from `features.code.import_refs` (the query the syntax stage's features use). Resolution is by
the repository's layout, per language:

- Python: absolute imports against every folder that can be a source root (`src/pkg/a.py` is `pkg.a` and
  `src.pkg.a`), packages as `__init__.py`, relative imports (`from ..a import b`) from the file's package,
  and `from x import y` where y is a module (`x/y.py`) as well as where it is a name in `x`.
- Java: `a.b.C` to a file whose path ends in `a/b/C.java`; `a.b.*` to every file of such a folder; a static
  import's member is dropped until a class resolves.
- C, C++, CUDA: `#include "x.h"` against the including file's folder, then the repository's include folders
  (folders named `include`, and the root); `<x.h>` against the include folders only.
- JavaScript, TypeScript: relative specifiers with the usual extensions and `index` files; bare ones are
  packages.
- Go: an import path to the folder whose path is its longest suffix (the module path is not in the corpus).
- Rust: `crate::`, `self::` and `super::` paths to `a.rs` or `a/mod.rs` under the crate's `src`.

Where several files match, the one nearest to the importing file (longest common folder prefix, then path)
wins, so the result does not depend on input order.
"""

from __future__ import annotations

import posixpath
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from seedcoder_assets.core.languages import file_extension, grammar_of

# Languages whose files are ordered by their imports, by group: a C file may include a C++ header, a
# TypeScript file import a JavaScript one. HTML, SQL and Shell files go in a seeded random order.
ORDER_GROUPS: Final[dict[str, str]] = {
    "Python": "python", "Java": "java", "C": "c-family", "C++": "c-family", "CUDA": "c-family",
    "JavaScript": "js-family", "TypeScript": "js-family", "Go": "go", "Rust": "rust",
}
RANDOM_LANGUAGES: Final[frozenset[str]] = frozenset({"HTML", "SQL", "Shell"})
_JS_EXTENSIONS: Final = (".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs", ".mts", ".cts", ".d.ts")


@dataclass(slots=True)
class RepoFile:
    id: str
    path: str
    language: str | None
    content: str


@dataclass
class Graph:
    """Edges importer -> imported (file indices), and per file its unresolved imports."""

    files: list[RepoFile]
    deps: list[list[int]]
    unresolved: list[list[str]]
    resolved_imports: dict[str, int] = field(default_factory=dict)  # per language: imports resolved
    unresolved_imports: dict[str, int] = field(default_factory=dict)  # ... and not


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a.split("/"), b.split("/")):
        if x != y:
            break
        n += 1
    return n


def _nearest(candidates: Iterable[int], importer: str, paths: Sequence[str]) -> int | None:
    best = None
    for c in candidates:
        key = (-_common_prefix(posixpath.dirname(paths[c]), posixpath.dirname(importer)), paths[c])
        if best is None or key < best[0]:
            best = (key, c)
    return None if best is None else best[1]


class _Index:
    """Lookups over one repository's paths, built once."""

    def __init__(self, files: Sequence[RepoFile]) -> None:
        self.paths = [f.path for f in files]
        self.by_path = {p: i for i, p in enumerate(self.paths)}
        self.py_modules: dict[str, list[int]] = defaultdict(list)  # dotted name from any root -> files
        self.java: dict[str, list[int]] = defaultdict(list)  # dotted path suffix -> files
        self.java_dirs: dict[str, list[int]] = defaultdict(list)
        self.go_dirs: dict[str, list[int]] = defaultdict(list)  # folder suffix -> .go files
        self.go_roots = {posixpath.dirname(p) for p in self.paths if p.endswith(".go")}  # whole folder paths
        # every folder named `include` (a whole component), and the root
        self.include_roots = sorted({""} | {"/".join(parts[: k + 1]) for parts in (p.split("/") for p in self.paths)
                                            for k in range(len(parts) - 1) if parts[k] == "include"})
        self.packages = {posixpath.dirname(p) for p in self.paths
                         if posixpath.basename(p) in ("__init__.py", "__init__.pyi")}
        roots = {"", "src"}  # where absolute imports start: the root, src/, the parent of each top-level package
        for d in self.packages:
            while posixpath.dirname(d) in self.packages:
                d = posixpath.dirname(d)
            roots.add(posixpath.dirname(d))
        for i, f in enumerate(files):
            ext = file_extension(f.path)
            stem, parts = f.path.rsplit(".", 1)[0], f.path.split("/")
            if f.language == "Python" and ext in ("py", "pyi"):
                mod = stem.split("/")
                if mod[-1] == "__init__":
                    mod = mod[:-1]
                for k in range(len(mod)):
                    if "/".join(mod[:k]) in roots and all(m.isidentifier() for m in mod[k:]):
                        self.py_modules[".".join(mod[k:])].append(i)
            elif f.language == "Java":
                dirs = parts[:-1]
                for k in range(len(parts)):
                    self.java[".".join(stem.split("/")[k:])].append(i)
                for k in range(len(dirs)):
                    self.java_dirs[".".join(dirs[k:])].append(i)
            elif f.language == "Go" and not f.path.endswith("_test.go"):
                dirs = parts[:-1]
                for k in range(len(dirs)):
                    self.go_dirs["/".join(dirs[k:])].append(i)

    def python(self, importer: str, spec: str, names: tuple[str, ...]) -> list[int]:
        level = len(spec) - len(spec.lstrip("."))
        module = spec[level:]
        if level:  # relative: from the importing file's package, up level - 1
            base = posixpath.dirname(importer).split("/") if posixpath.dirname(importer) else []
            base = base[: len(base) - (level - 1)] if level - 1 <= len(base) else None
            if base is None:
                return []
            folder = "/".join(base + (module.split(".") if module else []))
            # `from . import a` names modules of the package this file is in: not the package itself
            found = [self._py_path(folder)] * bool(module) + [self._py_path(f"{folder}/{n}" if folder else n)
                                                               for n in names]
            return [i for i in found if i is not None]
        here = posixpath.dirname(importer)
        if here not in self.packages:  # a script: its own folder comes first on the path
            local = [self._py_path("/".join(filter(None, [here, *m.split(".")])))
                     for m in [module, *(f"{module}.{n}" for n in names)]]
            if local[0] is not None:
                return [i for i in local if i is not None]
        out = []
        target = _nearest(self.py_modules.get(module, ()), importer, self.paths)
        if target is not None:
            out.append(target)
        for n in names:  # `from pkg import mod`: mod may be a module of pkg
            sub = _nearest(self.py_modules.get(f"{module}.{n}", ()), importer, self.paths)
            if sub is not None:
                out.append(sub)
        return out

    def _py_path(self, folder: str) -> int | None:
        for candidate in (f"{folder}.py", f"{folder}/__init__.py", f"{folder}.pyi", f"{folder}/__init__.pyi"):
            if candidate in self.by_path:
                return self.by_path[candidate]
        return None

    def java_import(self, importer: str, spec: str) -> list[int]:
        if spec.endswith(".*"):  # a package's classes, or (static) a class's members
            found = sorted(self.java_dirs.get(spec[:-2], ()))
            if found:
                return found
            spec = spec[:-2]
        parts = spec.split(".")
        for k in range(len(parts), 0, -1):  # a static import names a member: drop it until a class resolves
            target = _nearest(self.java.get(".".join(parts[:k]), ()), importer, self.paths)
            if target is not None:
                return [target]
        return []

    def include(self, importer: str, spec: str) -> list[int]:
        quoted = spec.startswith('"')
        name = spec.strip('"<> ')
        roots = ([posixpath.dirname(importer)] if quoted else []) + self.include_roots
        for root in roots:
            candidate = posixpath.normpath(posixpath.join(root, name)) if root else posixpath.normpath(name)
            if candidate in self.by_path:
                return [self.by_path[candidate]]
        return []

    def js(self, importer: str, spec: str) -> list[int]:
        if not spec.startswith("."):
            return []  # a package (or a path alias the bundler's config would name)
        base = posixpath.normpath(posixpath.join(posixpath.dirname(importer), spec))
        stem = base.rsplit(".", 1)[0] if file_extension(base) in ("js", "mjs", "cjs", "jsx") else base
        for candidate in [base, *(stem + e for e in _JS_EXTENSIONS), *(f"{base}/index{e}" for e in _JS_EXTENSIONS)]:
            if candidate in self.by_path:
                return [self.by_path[candidate]]
        return []

    def go(self, importer: str, spec: str) -> list[int]:
        # The module path is not in the corpus: a folder whose path ends the import path resolves it, with at
        # least two components unless it is the whole path (`errors` or `net/http` is not `internal/http`).
        parts = spec.split("/")
        for k in range(len(parts)):
            suffix = "/".join(parts[k:])
            if len(parts) - k < 2 and suffix not in self.go_roots:
                break
            found = self.go_dirs.get(suffix)
            if found:
                return sorted(i for i in found if posixpath.dirname(self.paths[i]) != posixpath.dirname(importer))
        return []

    def rust(self, importer: str, spec: str) -> list[int]:
        head, _, group = spec.partition("{")  # `crate::a::{b, c::D}`: each member of the group
        if group:
            members = [m.strip() for m in group.rstrip("} ").split(",") if m.strip() and "{" not in m]
            return sorted({i for m in members or [""] for i in self.rust(importer, head + m)})
        parts = [p.strip() for p in spec.split("::") if p.strip()]
        if not parts or parts[0] not in ("crate", "self", "super"):
            return []
        here, folder = importer.rsplit("/", 1)[-1], posixpath.dirname(importer)
        is_root = here in ("mod.rs", "lib.rs", "main.rs")  # a folder's module: its children are in the folder
        if parts[0] == "crate":
            idx = importer.rfind("src/")
            if idx < 0:
                return []
            folder = importer[: idx + 3]
        elif parts[0] == "self":
            folder = folder if is_root else importer[:-3]
        else:  # super, maybe repeated: each one a module up
            ups = 0
            while parts and parts[0] == "super":
                parts, ups = parts[1:], ups + 1
            parts = ["super", *parts]
            for _ in range(ups - (0 if is_root else 1)):  # a file module's parent is its own folder's module
                folder = posixpath.dirname(folder)
        rest = parts[1:]
        for k in range(len(rest), 0, -1):
            path = "/".join([folder, *rest[:k]]) if folder else "/".join(rest[:k])
            for candidate in (f"{path}.rs", f"{path}/mod.rs"):
                if candidate in self.by_path:
                    return [self.by_path[candidate]]
        return []


def build_graph(files: Sequence[RepoFile], refs: Sequence[Sequence[tuple[str, tuple[str, ...]]]]) -> Graph:
    """The import graph of one repository: `refs[i]` are file i's imports (features.code.import_refs)."""
    index = _Index(files)
    deps: list[list[int]] = []
    unresolved: list[list[str]] = []
    resolved_n: dict[str, int] = defaultdict(int)
    unresolved_n: dict[str, int] = defaultdict(int)
    for i, (f, imports) in enumerate(zip(files, refs)):
        found: set[int] = set()
        missing: list[str] = []
        grammar = grammar_of(f.language, f.path) or ""
        for spec, names in imports:
            if grammar == "python":
                hits = index.python(f.path, spec, names)
            elif grammar == "java":
                hits = index.java_import(f.path, spec)
            elif grammar in ("c", "cpp", "cuda"):
                hits = index.include(f.path, spec)
            elif grammar in ("javascript", "typescript", "tsx"):
                hits = index.js(f.path, spec)
            elif grammar == "go":
                hits = index.go(f.path, spec)
            elif grammar == "rust":
                hits = index.rust(f.path, spec)
            else:
                hits = []
            # an edge orders files of one group: `./data.json` or a header of another language is no dependency
            group = ORDER_GROUPS.get(f.language or "")
            hits = [h for h in hits if h != i and ORDER_GROUPS.get(files[h].language or "") == group]
            if hits:
                found.update(hits)
                resolved_n[f.language or ""] += 1
            else:
                missing.append(spec)
                unresolved_n[f.language or ""] += 1
        deps.append(sorted(found))
        unresolved.append(missing)
    return Graph(list(files), deps, unresolved, dict(resolved_n), dict(unresolved_n))
