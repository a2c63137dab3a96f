"""Checks of the long-context sequences, measured from the partitions, not from the code that wrote them:
which repositories pass the bar is recomputed from the files' scores, imports are read again by Python's own
`ast` and resolved by Python's import rules over the repository's layout, and token counts come from the
tokenizer run over each stored text whole."""

from __future__ import annotations

import ast
import itertools
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


BAR_TOLERANCE = 1e-6  # a repository this close to the bar may go either way (float32 scores, float64 means)


def every_file_once(seq_uri: str, repo_files_uri: str, bar: float, tokenizer_json: str, budget: int,
                    repo_token: str, file_token: str, margin: int = 2) -> CheckOutcome:
    """Every file of a repository whose mean file score (recomputed from the repository-level files) reaches
    `bar` is in exactly one sequence of its own repository, or is absent because it alone with the
    repository's header is over the budget (less the packer's `margin` per part); no file of a repository
    below the bar is in any sequence."""
    con = duckdb_connect()
    con.execute(f"""CREATE TEMP TABLE means AS SELECT repo, avg(score) AS mean FROM {duckdb_source(repo_files_uri)}
                    GROUP BY repo""")
    con.execute(f"""CREATE TEMP TABLE expected AS SELECT f.id, f.repo, m.mean >= ? AS must
                    FROM {duckdb_source(repo_files_uri)} f JOIN means m USING (repo) WHERE m.mean >= ?""",
                [bar + BAR_TOLERANCE, bar - BAR_TOLERANCE])
    con.execute(f"CREATE TEMP TABLE placed AS SELECT unnest(file_ids) AS id, repo FROM {duckdb_source(seq_uri)}")
    twice = con.execute("SELECT count(*) FROM (SELECT id FROM placed GROUP BY id HAVING count(*) > 1)").fetchone()[0]
    foreign = con.execute("SELECT count(*) FROM placed ANTI JOIN expected USING (id)").fetchone()[0]
    wrong_repo = con.execute("SELECT count(*) FROM placed p JOIN expected e USING (id) WHERE p.repo <> e.repo"
                             ).fetchone()[0]
    missing = con.execute(f"""SELECT f.repo, f.path, f.content FROM {duckdb_source(repo_files_uri)} f
                              SEMI JOIN (SELECT id FROM (SELECT id FROM expected WHERE must) ANTI JOIN placed USING (id)) USING (id)
                              ORDER BY f.repo, f.path""")
    count = _count(tokenizer_json)
    absent = 0
    not_over: list[str] = []
    while rows := missing.fetchmany(64):  # as the packer renders a part: content ending in a newline
        texts = [f"{repo_token}{repo}\n{file_token}{path}\n{content}" + ("" if content.endswith("\n") else "\n")
                 for repo, path, content in rows]
        absent += len(rows)
        not_over += [f"{repo}/{path}" for (repo, path, _), n in zip(rows, count(texts)) if n <= budget - 2 * margin]
    expected = con.execute("SELECT count(*) FROM expected WHERE must").fetchone()[0]
    con.close()
    return CheckOutcome(twice == 0 and foreign == 0 and wrong_repo == 0 and not not_over, {
        "expected_files": expected, "in_two_sequences": twice, "not_of_a_selected_repository": foreign,
        "in_another_repositorys_sequence": wrong_repo, "absent_over_budget": absent - len(not_over),
        "absent_within_budget": len(not_over), "examples": not_over[:10]})


def layout_matches(seq_uri: str, repo_token: str, file_token: str) -> CheckOutcome:
    """Each stored text is its repository's header, then one marker and path per file of `paths`, in order,
    and `paths` and `file_ids` agree in length: the text holds the files the sequence lists."""
    bad, n = [], 0
    for batch in iter_batches(seq_uri, ["id", "repo", "paths", "file_ids", "text"], batch_rows=64):
        for sid, repo, paths, ids, text in zip(*(batch.column(c).to_pylist() for c in (
                "id", "repo", "paths", "file_ids", "text"))):
            n += 1
            at = len(f"{repo_token}{repo}\n") if text.startswith(f"{repo_token}{repo}\n") else -1
            for path in paths if at >= 0 else ():
                at = text.find(f"{file_token}{path}\n", at)
                if at < 0:
                    break
                at += 1
            if at < 0 or len(paths) != len(ids) or text.count(file_token) < len(paths):
                bad.append(sid)
    return CheckOutcome(not bad, {"sequences": n, "not_matching": len(bad), "examples": bad[:10]})


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


def _parse(content: str) -> ast.AST | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(content)
    except (SyntaxError, ValueError, RecursionError):  # RecursionError: an expression nested past the stack
        return None


def _reaches(edges: Sequence[Sequence[int]], start: int, goal: int) -> bool:
    step: dict[int, list[int]] = defaultdict(list)
    for u, d in edges:
        step[u].append(d)
    seen, todo = {start}, [start]
    while todo:
        n = todo.pop()
        if n == goal:
            return True
        todo += [d for d in step[n] if d not in seen and not seen.add(d)]
    return False


def python_imports_in_order(seq_uri: str, repo_files_uri: str) -> CheckOutcome:
    """In every sequence, each Python import that resolves (by `python_targets`) to a file of the same
    sequence comes after that file, unless the sequence records that very edge as a cycle break. Streams
    repository by repository: the sequences' Python files in order, beside the repository's Python paths."""
    con = duckdb_connect()
    layout_rows = con.cursor().execute(f"SELECT repo, path FROM {duckdb_source(repo_files_uri)} "
                                       "WHERE language = 'Python' ORDER BY repo, path")
    result = con.cursor().execute(f"""
        SELECT s.repo, s.id, s.cycle_breaks, s.paths, s.edges, u.pos, f.path, f.content
        FROM (SELECT id, unnest(file_ids) AS fid, generate_subscripts(file_ids, 1) AS pos FROM {duckdb_source(seq_uri)}) u
        JOIN (SELECT repo, id, cycle_breaks, paths, edges FROM {duckdb_source(seq_uri)}) s USING (id)
        JOIN {duckdb_source(repo_files_uri)} f ON f.id = u.fid AND f.language = 'Python'
        ORDER BY s.repo, s.id, u.pos""")

    def stream():
        while rows := layout_rows.fetchmany(4096):
            yield from rows

    groups = itertools.groupby(stream(), key=lambda row: row[0])
    ahead: list = []  # a repository's paths read past while looking for an earlier one

    def layout_of(repo: str) -> list[str]:  # both streams go by repository, in the same order
        while True:
            if not ahead:
                nxt = next(groups, None)
                if nxt is None:
                    return []
                ahead.append((nxt[0], [p for _, p in nxt[1]]))
            key, paths = ahead[0]
            if key > repo:
                return []
            ahead.clear()
            if key == repo:
                return paths

    edges = violations = unparsed = excess = broken = breaks_off_cycle = 0
    examples: list[str] = []
    current_repo, layout = None, (set(), [], set())

    def judge(repo: str, breaks, all_paths, seq_edges, files: list[tuple[str, str]]) -> None:
        nonlocal edges, violations, unparsed, excess, broken, breaks_off_cycle
        known, roots, packages = layout
        position = {p: k for k, (p, _) in enumerate(files)}
        allowed = {(all_paths[u], all_paths[d]) for u, d in breaks}
        breaks_off_cycle += sum(not _reaches(seq_edges, d, u) for u, d in breaks)
        bad = 0
        for path, content in files:
            if not path.endswith(".py"):
                continue
            tree = _parse(content)
            if tree is None:
                unparsed += 1
                continue
            for target in set(python_targets(path, tree, known, roots, packages)):
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

    sequence, files = None, []
    while batch := result.fetchmany(256):
        for repo, sid, breaks, all_paths, seq_edges, _, path, content in batch:
            if sid != (sequence[1] if sequence else None):
                if sequence:
                    judge(*sequence[0:1], *sequence[2:], files)
                sequence, files = (repo, sid, breaks, all_paths, seq_edges), []
                if repo != current_repo:
                    everything = [p for p in layout_of(repo) if p.endswith(".py")]
                    current_repo = repo
                    layout = (set(everything), python_roots(everything),
                              {posixpath.dirname(p) for p in everything if p.endswith("/__init__.py")})
            files.append((path, content))
    if sequence:
        judge(*sequence[0:1], *sequence[2:], files)
    con.close()
    md: dict[str, Any] = {"python_edges_in_sequences": edges,
                          "after_their_user_as_recorded_cycle_breaks": broken - violations,
                          "after_their_user_not_recorded": violations, "sequences_with_unrecorded": excess,
                          # a break whose dependency does not lead back to its user within the sequence: the
                          # cycle runs through another piece, or the break is not a cycle's (reported, not judged)
                          "recorded_breaks_without_a_cycle_in_the_sequence": breaks_off_cycle,
                          "files_ast_cannot_parse": unparsed, "examples": examples}
    return CheckOutcome(excess == 0, md)
