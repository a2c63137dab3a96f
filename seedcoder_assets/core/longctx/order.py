"""A repository as long-context sequences (paper 2.2.5): files in dependency order, cut to a token budget.

Per language group (core/longctx/graph.py: Python, Java, the C family, the JS family, Go, Rust), files go in
topological order of their imports, dependencies first; ties and independent files by path. Files on a
cycle (a strongly connected component) go together, the one with the fewest unplaced dependencies first,
and each dependency a file goes ahead of counts as one cycle break. HTML, SQL and Shell files go in a random order seeded
by the repository; any other language's files by path. Groups follow each other by size, largest first.

A repository over the budget is cut into pieces that fit: the weakly connected parts of its graph that fit
are packed whole, first fit in their order; a part too big is cut along its topological order, so every piece
keeps a file with the dependencies just before it. A file over the budget alone is left out of the repository
and belongs to the file-level long-context set.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from seedcoder_assets.core.longctx.graph import ORDER_GROUPS, RANDOM_LANGUAGES, Graph

REPO_TOKEN: Final = "<|repo_name|>"
FILE_TOKEN: Final = "<|file_sep|>"


def _strong_components(nodes: Sequence[int], deps: Sequence[Sequence[int]]) -> list[list[int]]:
    """Tarjan's strongly connected components of the graph over `nodes` (iterative: deep chains are fine)."""
    members = set(nodes)
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[int] = []
    out: list[list[int]] = []
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter([d for d in deps[root] if d in members]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter([d for d in deps[child] if d in members])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                out.append(component)
    return out


def _cycle_order(component: list[int], deps: Sequence[Sequence[int]], paths: Sequence[str]
                 ) -> tuple[list[int], list[tuple[int, int]]]:
    """The files of one cycle (a strongly connected component): each time, the file with the fewest
    dependencies not yet placed goes next (then by path); each of those dependencies is a broken edge. A heap
    with lazy updates keeps this O((files + edges) log files) for the large cycles of big packages."""
    left = set(component)
    inside = {n: sorted(d for d in set(deps[n]) if d in left and d != n) for n in component}
    users: dict[int, list[int]] = {n: [] for n in component}
    for n, ds in inside.items():
        for d in ds:
            users[d].append(n)
    unplaced = {n: len(ds) for n, ds in inside.items()}
    heap = [(unplaced[n], paths[n], n) for n in component]
    heapq.heapify(heap)
    order: list[int] = []
    breaks: list[tuple[int, int]] = []
    while heap:
        count, _, n = heapq.heappop(heap)
        if n not in left or count != unplaced[n]:
            continue  # placed already, or an older count
        breaks += [(n, d) for d in inside[n] if d in left]
        left.discard(n)
        order.append(n)
        for u in users[n]:
            if u in left:
                unplaced[u] -= 1
                heapq.heappush(heap, (unplaced[u], paths[u], u))
    return order, breaks


def topological(nodes: Sequence[int], deps: Sequence[Sequence[int]], paths: Sequence[str]
                ) -> tuple[list[int], list[tuple[int, int]]]:
    """`nodes` with each one's dependencies (those among `nodes`) first; (order, the edges (file, dependency)
    the order breaks). Only files on a cycle break an edge: the cycles (strongly connected components) are
    ordered like single files, the one holding the smallest path first among those ready, and inside each
    the file with the fewest unplaced dependencies goes first."""
    components = _strong_components(nodes, deps)
    owner = {n: k for k, c in enumerate(components) for n in c}
    unmet = [set() for _ in components]
    users: list[set[int]] = [set() for _ in components]
    for k, c in enumerate(components):
        for n in c:
            for d in deps[n]:
                if d in owner and owner[d] != k:
                    unmet[k].add(owner[d])
                    users[owner[d]].add(k)
    first = [min(paths[n] for n in c) for c in components]
    ready = [(first[k], k) for k in range(len(components)) if not unmet[k]]
    heapq.heapify(ready)
    order: list[int] = []
    breaks: list[tuple[int, int]] = []
    while ready:
        _, k = heapq.heappop(ready)
        part, broken = _cycle_order(components[k], deps, paths) if len(components[k]) > 1 else (components[k], [])
        order += part
        breaks += broken
        for u in sorted(users[k]):
            unmet[u].discard(k)
            if not unmet[u]:
                heapq.heappush(ready, (first[u], u))
    return order, breaks


def repo_order(graph: Graph, repo: str, seed: int = 0) -> tuple[list[int], list[tuple[int, int]]]:
    """Every file of the repository once, ordered per group; (order, the edges it breaks)."""
    paths = [f.path for f in graph.files]
    groups: dict[str, list[int]] = {}
    for i, f in enumerate(graph.files):
        group = ORDER_GROUPS.get(f.language or "") or ("random" if f.language in RANDOM_LANGUAGES else
                                                       f"other:{f.language}")
        groups.setdefault(group, []).append(i)
    size = {g: sum(len(graph.files[i].content) for i in nodes) for g, nodes in groups.items()}
    order: list[int] = []
    breaks: list[tuple[int, int]] = []
    for group in sorted(groups, key=lambda g: (-size[g], g)):
        nodes = groups[group]
        if group == "random":
            rng = random.Random(int.from_bytes(hashlib.sha256(f"{seed}/{repo}".encode()).digest()[:8], "big"))
            nodes = sorted(nodes, key=lambda i: paths[i])
            rng.shuffle(nodes)
            order += nodes
        elif group in ORDER_GROUPS.values():
            part, b = topological(nodes, graph.deps, paths)
            order += part
            breaks += b
        else:
            order += sorted(nodes, key=lambda i: paths[i])
    return order, breaks


def _components(order: Sequence[int], deps: Sequence[Sequence[int]]) -> list[list[int]]:
    """The weakly connected parts of the graph over `order`, each in `order`'s order, by first member."""
    parent = {n: n for n in order}

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for n in order:
        for d in deps[n]:
            if d in parent:
                a, b = find(n), find(d)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    parts: dict[int, list[int]] = {}
    for n in order:
        parts.setdefault(find(n), []).append(n)
    first = {n: k for k, n in enumerate(order)}
    return sorted(parts.values(), key=lambda p: first[p[0]])


def split_to_budget(order: Sequence[int], deps: Sequence[Sequence[int]], cost: Sequence[int], budget: int,
                    overhead: int) -> tuple[list[list[int]], list[int]]:
    """(pieces, each a list of files in `order`'s order within `budget` with `overhead` per piece; the files
    over the budget alone)."""
    alone = [n for n in order if cost[n] + overhead > budget]
    left = [n for n in order if cost[n] + overhead <= budget]
    if sum(cost[n] for n in left) + overhead <= budget:
        return ([left] if left else []), alone
    pieces: list[list[int]] = []
    room: list[int] = []
    for part in _components(left, deps):
        total = sum(cost[n] for n in part)
        if total + overhead <= budget:
            for k, r in enumerate(room):  # first fit: an independent part joins a piece with room
                if total <= r:
                    pieces[k] += part
                    room[k] -= total
                    break
            else:
                pieces.append(list(part))
                room.append(budget - overhead - total)
            continue
        current: list[int] = []
        used = 0
        for n in part:  # too big: cut along the topological order
            if current and used + cost[n] + overhead > budget:
                pieces.append(current)
                room.append(budget - overhead - used)
                current, used = [], 0
            current.append(n)
            used += cost[n]
        if current:
            pieces.append(current)
            room.append(budget - overhead - used)
    position = {n: k for k, n in enumerate(order)}
    return [sorted(p, key=position.__getitem__) for p in pieces], alone


def file_part(path: str, content: str, file_token: str = FILE_TOKEN) -> str:
    """One file in a sequence: the separator, its path, a newline, its content (ending in a newline)."""
    return f"{file_token}{path}\n{content}" + ("" if content.endswith("\n") else "\n")


def header(repo: str, repo_token: str = REPO_TOKEN) -> str:
    return f"{repo_token}{repo}\n"


@dataclass
class RepoSequence:
    """One sequence of a repository: its files (indices into the graph's files) in order, its import edges
    (positions in `files`: user, dependency) and which of them the order breaks, its text and tokens."""

    repo: str
    piece: int
    files: list[int]
    edges: list[tuple[int, int]]
    breaks: list[tuple[int, int]]
    text: str
    tokens: int


def repo_sequences(graph: Graph, repo: str, count_tokens: Callable[[list[str]], list[int]], budget: int,
                   seed: int = 0, margin: int = 2, repo_token: str = REPO_TOKEN, file_token: str = FILE_TOKEN
                   ) -> tuple[list[RepoSequence], list[int]]:
    """(sequences of the repository, files over the budget alone). Each part (the header, a file) is counted
    alone, plus `margin` for merges across its boundaries: a sequence's `tokens` is that sum, at least what
    the tokenizer makes of its whole text, which stays within the budget."""
    order, broken = repo_order(graph, repo, seed)
    broken_set = set(broken)
    parts = [file_part(f.path, f.content, file_token) for f in graph.files]
    head = header(repo, repo_token)
    *cost, head_cost = [n + margin for n in count_tokens([*parts, head])]
    pieces, alone = split_to_budget(order, graph.deps, cost, budget, head_cost)
    out = []
    for k, piece in enumerate(pieces):
        at = {n: j for j, n in enumerate(piece)}
        edges = [(at[n], at[d]) for n in piece for d in graph.deps[n] if d in at]
        text = head + "".join(parts[i] for i in piece)
        out.append(RepoSequence(repo, k, piece, edges, sorted((at[n], at[d]) for n, d in broken_set if n in at and d in at),
                                text, head_cost + sum(cost[i] for i in piece)))
    return out, alone
