"""Checks of the long-context sequences, measured from the partitions, not from the code that wrote them:
which repositories pass the bar is recomputed from the files' scores, imports are read again by Python's own
`ast` and resolved by Python's import rules over the repository's layout, and token counts come from the
tokenizer run over each stored text whole."""

from __future__ import annotations

import ast
import posixpath
import warnings
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from seedcoder_assets.core.checks import CheckOutcome
from seedcoder_assets.core.object_store import duckdb_connect
from seedcoder_assets.core.parquet_io import duckdb_source, iter_batches


def _count(tokenizer_json: str):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tokenizer_json)
    tok.no_truncation()
    tok.no_padding()
    return lambda texts: [len(e.ids) for e in tok.encode_batch(list(texts), add_special_tokens=False)]


def no_sequence_over_budget(seq_uri: str, tokenizer_json: str, budget: int) -> CheckOutcome:
    """Every stored sequence's text, tokenized whole, is within the budget."""
    count = _count(tokenizer_json)
    over, n, longest = [], 0, 0
    for batch in iter_batches(seq_uri, ["id", "text"], batch_rows=64):
        for sid, tokens in zip(batch.column("id").to_pylist(), count(batch.column("text").to_pylist())):
            n += 1
            longest = max(longest, tokens)
            if tokens > budget:
                over.append(f"{sid}: {tokens}")
    return CheckOutcome(not over, {"sequences": n, "over_budget": len(over), "longest_tokens": longest,
                                   "budget": budget, "examples": over[:10]})


def files_long_enough(files_uri: str, tokenizer_json: str, min_tokens: int) -> CheckOutcome:
    """Every kept file of the file-level set, tokenized again, has at least `min_tokens` tokens."""
    count = _count(tokenizer_json)
    short, n = [], 0
    for batch in iter_batches(files_uri, ["path", "content"], batch_rows=64):
        for path, tokens in zip(batch.column("path").to_pylist(), count(batch.column("content").to_pylist())):
            n += 1
            if tokens < min_tokens:
                short.append(f"{path}: {tokens}")
    return CheckOutcome(not short, {"files": n, "too_short": len(short), "examples": short[:10]})


def every_file_once(seq_uri: str, repo_files_uri: str, bar: float, tokenizer_json: str, budget: int,
                    repo_token: str, file_token: str, margin: int = 2) -> CheckOutcome:
    """Every file of a repository whose mean file score (recomputed from the repository-level files) reaches
    `bar` is in exactly one sequence, or is absent because it alone with the repository's header is over
    the budget (less the packer's `margin` per part); no file of another repository is in any sequence."""
    con = duckdb_connect()
    con.execute(f"""CREATE TEMP TABLE expected AS SELECT f.id, f.repo, f.path, f.content FROM {duckdb_source(repo_files_uri)} f
                    JOIN (SELECT repo FROM {duckdb_source(repo_files_uri)} GROUP BY repo HAVING avg(score) >= ?) USING (repo)""",
                [bar])
    con.execute(f"CREATE TEMP TABLE placed AS SELECT unnest(file_ids) AS id FROM {duckdb_source(seq_uri)}")
    twice = con.execute("SELECT count(*) FROM (SELECT id FROM placed GROUP BY id HAVING count(*) > 1)").fetchone()[0]
    foreign = con.execute("SELECT count(*) FROM placed ANTI JOIN expected USING (id)").fetchone()[0]
    missing = con.execute("SELECT repo, path, content FROM expected ANTI JOIN placed USING (id)").fetchall()
    count = _count(tokenizer_json)
    texts = [f"{repo_token}{repo}\n{file_token}{path}\n{content}" for repo, path, content in missing]
    not_over = [f"{repo}/{path}" for (repo, path, _), n in zip(missing, count(texts) if texts else []) if n <= budget - 2 * margin]
    expected = con.execute("SELECT count(*) FROM expected").fetchone()[0]
    con.close()
    return CheckOutcome(twice == 0 and foreign == 0 and not not_over, {
        "expected_files": expected, "in_two_sequences": twice, "not_of_a_selected_repository": foreign,
        "absent_over_budget": len(missing) - len(not_over), "absent_within_budget": len(not_over),
        "examples": not_over[:10]})


# -- Python's import rules, apart from core/longctx/graph.py ------------------------------------------------
def python_roots(paths: Sequence[str]) -> list[str]:
    """The folders a repository's packages import from: the parent of every top-level package (a folder
    with `__init__.py` whose parent has none), the root, and `src`."""
    packages = {posixpath.dirname(p) for p in paths if posixpath.basename(p) == "__init__.py"}
    roots = {""} | {"src"}
    for d in packages:
        top = d
        while posixpath.dirname(top) in packages:
            top = posixpath.dirname(top)
        roots.add(posixpath.dirname(top))
    return sorted(roots, key=lambda r: (r.count("/"), r))


def python_targets(importer: str, tree: ast.AST, files: set[str], roots: Sequence[str],
                   packages: set[str]) -> list[str]:
    """The repository files `importer`'s imports load, by Python's rules: a script's own folder comes first
    on the path (a package module's does not), then the roots; `from p import m` loads `p` and, where m is
    a module, `p/m`."""
    here = posixpath.dirname(importer)
    search = ([] if here in packages else [here]) + list(roots)

    def find(dotted: str, base: Sequence[str]) -> str | None:
        rel = dotted.replace(".", "/")
        for root in base:
            stem = posixpath.join(root, rel) if root else rel
            for candidate in (f"{stem}.py", f"{stem}/__init__.py"):
                if candidate in files:
                    return candidate
        return None

    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [t for a in node.names if (t := find(a.name, search))]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = here.split("/") if here else []
                if node.level - 1 > len(parts):
                    continue
                base = "/".join(parts[: len(parts) - (node.level - 1)])
                module = node.module or ""
                for dotted in [module] * bool(module) + [f"{module}.{a.name}" if module else a.name for a in node.names]:
                    if t := find(dotted, [base]):
                        out.append(t)
            elif node.module:
                out += [t for dotted in [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
                        if (t := find(dotted, search))]
    return [t for t in out if t != importer]


def python_imports_in_order(seq_uri: str, repo_files_uri: str) -> CheckOutcome:
    """In every sequence, each Python import that resolves (by `python_targets`) to a file of the same
    sequence comes after that file, unless the sequence records that very edge as a cycle break."""
    con = duckdb_connect()
    repo_paths: dict[str, list[str]] = defaultdict(list)
    for repo, path in con.execute(f"SELECT repo, path FROM {duckdb_source(repo_files_uri)} WHERE language = 'Python'"
                                  ).fetchall():
        repo_paths[repo].append(path)
    result = con.execute(f"""
        SELECT s.id, s.repo, s.cycle_breaks, s.paths, list(f.path ORDER BY u.pos), list(f.content ORDER BY u.pos)
        FROM {duckdb_source(seq_uri)} s,
             LATERAL (SELECT unnest(s.file_ids) AS fid, generate_subscripts(s.file_ids, 1) AS pos) u
        JOIN {duckdb_source(repo_files_uri)} f ON f.id = u.fid AND f.language = 'Python'
        GROUP BY s.id, s.repo, s.cycle_breaks, s.paths""")
    edges = violations = unparsed = excess = broken = 0
    examples: list[str] = []
    layouts: dict[str, tuple[set[str], list[str], set[str]]] = {}
    while batch := result.fetchmany(64):
        for _, repo, breaks, all_paths, paths, contents in batch:
            if repo not in layouts:
                everything = [p for p in repo_paths[repo] if p.endswith(".py")]
                layouts[repo] = (set(everything), python_roots(everything),
                                 {posixpath.dirname(p) for p in everything if p.endswith("/__init__.py")})
            files, roots, packages = layouts[repo]
            position = {p: k for k, p in enumerate(paths)}
            at = {k: p for k, p in enumerate(all_paths)}
            allowed = {(at[u], at[d]) for u, d in breaks}
            bad = 0
            for path, content in zip(paths, contents):
                if not path.endswith(".py"):
                    continue
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        tree = ast.parse(content)
                except (SyntaxError, ValueError):
                    unparsed += 1
                    continue
                for target in set(python_targets(path, tree, files, roots, packages)):
                    if target in position:
                        edges += 1
                        if position[target] > position[path]:
                            broken += 1
                            if (path, target) not in allowed:
                                bad += 1
                                if len(examples) < 10:
                                    examples.append(f"{repo}: {path} before {target}")
            violations += bad
            excess += bad > 0
    con.close()
    md: dict[str, Any] = {"python_edges_in_sequences": edges, "after_their_user_as_recorded_cycle_breaks": broken - violations,
                          "after_their_user_not_recorded": violations, "sequences_with_unrecorded": excess,
                          "files_ast_cannot_parse": unparsed, "examples": examples}
    return CheckOutcome(excess == 0, md)
