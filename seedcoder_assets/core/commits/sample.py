"""A commit as a code-change-prediction sample (paper 2.2.2): given the message and the pre-commit context
(README, directory structure, the top 5 snapshot files BM25 retrieves for the message), predict the
changed paths and the changes.

The text of a sample, exactly (every section ends with a newline; `prompt_chars` is where the target
starts, so a trainer can mask the loss on the context):

    <commit_message>
    {message, stripped}
    </commit_message>
    <readme path="{root README path}">          (absent when the snapshot has none)
    {README, cut at a line to `readme_chars`}
    </readme>
    <tree>
    {the snapshot's paths to `tree_depth` levels, two spaces per level, folders ending in "/",
     cut to `tree_lines` lines; a folder at the last level shows "(N entries)"}
    </tree>
    <file path="{path}">                        (one per retrieved file, best first)
    {content, cut at a line to `file_chars`}
    </file>
    <changed_files>                             <- the target starts here
    {one line per file: "A path", "M path", "D path", "R old -> new", "C old -> new", "T path";
     " (binary)" after a binary file}
    </changed_files>
    <diff>
    {every text file's unified diff (git format, 3 lines of context), in the order above}
    </diff>

A cut section ends with the line "[... N more characters]" (the tree: "[... N more lines]"), so the
model learns the context was truncated rather than that the file ends there.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass

import pygit2
from pydantic import BaseModel

from seedcoder_assets.core.commits.context import SnapshotIndex
from seedcoder_assets.core.commits.filters import NOT_CODE, file_kind
from seedcoder_assets.core.commits.history import Commit, FileChange
from seedcoder_assets.core.languages import language_of


class SampleBudget(BaseModel, frozen=True):
    top_k: int = 5  # retrieved files (the paper's 5)
    readme_chars: int = 4_000
    tree_depth: int = 3
    tree_lines: int = 150
    file_chars: int = 8_000  # per retrieved file
    max_chars: int = 128_000  # the whole sample; a commit whose message and target alone exceed it is dropped


README_MAX_BYTES = 1_000_000
_STATUS_LETTER = {"added": "A", "modified": "M", "deleted": "D", "renamed": "R", "copied": "C", "type_changed": "T"}


@dataclass(frozen=True)
class Sample:
    text: str
    prompt_chars: int  # text[:prompt_chars] is the context, text[prompt_chars:] the target
    language: str | None  # the language with most changed lines among the changed code files
    readme_path: str | None
    retrieved: tuple[str, ...]  # the top-k paths, best first
    changed_in_snapshot: int  # changed files that existed as BM25 documents before the commit
    changed_retrieved: int  # ... and were among the retrieved
    patch_hash: str  # the changed lines per path, without context or line numbers (exact dedup key)


def cut(text: str, limit: int) -> str:
    """`text` to at most `limit` characters, at a line end, with a marker saying how much is missing."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    if "\n" in head:
        head = head[: head.rindex("\n") + 1]
    return (head if head.endswith("\n") else head + "\n") + f"[... {len(text) - len(head)} more characters]\n"


def readme_of(repo: pygit2.Repository, tree: pygit2.Tree | None) -> tuple[str, str] | None:
    """The root README of a tree (README.md before README.rst before other README*), path and text."""
    if tree is None:
        return None
    names = sorted((e.name for e in tree if e.type_str == "blob" and e.name.lower().startswith("readme")),
                   key=lambda n: ({"readme.md": 0, "readme.rst": 1, "readme": 2}.get(n.lower(), 3), n))
    for name in names:
        oid = tree[name].id
        if repo.odb.read_header(oid)[1] > README_MAX_BYTES:  # a README is prose; a huge one is not read
            continue
        blob = repo[oid]
        if not blob.is_binary:
            return printable(name), blob.data.decode("utf-8", errors="replace")
    return None


def printable(name: str) -> str:
    """A tree entry's name as UTF-8 text: undecodable bytes as U+FFFD, control characters escaped."""
    name = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return name if name.isprintable() else name.encode("unicode_escape").decode("ascii")


def tree_text(repo: pygit2.Repository, tree: pygit2.Tree | None, depth: int, max_lines: int) -> str:
    """The snapshot's layout to `depth` levels, one entry per line, cut to `max_lines`."""
    lines: list[str] = []

    def walk(t: pygit2.Tree, level: int) -> None:
        for entry in t:
            if entry.type_str == "tree":
                sub = repo[entry.id]
                if level + 1 < depth:
                    lines.append(f"{'  ' * level}{printable(entry.name)}/")
                    walk(sub, level + 1)
                else:
                    lines.append(f"{'  ' * level}{printable(entry.name)}/ ({len(sub)} entries)")
            elif entry.type_str == "blob":
                lines.append(f"{'  ' * level}{printable(entry.name)}")

    if tree is not None:
        walk(tree, 0)
    if len(lines) > max_lines:
        return "\n".join(lines[:max_lines]) + f"\n[... {len(lines) - max_lines} more lines]\n"
    return "".join(line + "\n" for line in lines)


def changed_line(change: FileChange) -> str:
    letter = _STATUS_LETTER.get(change.status, "M")
    moved = change.status in ("renamed", "copied") and change.old_path and change.old_path != change.path
    line = f"{letter} {change.old_path} -> {change.path}" if moved else f"{letter} {change.path}"
    return line + (" (binary)" if change.binary else "")


def patch_hash(files: tuple[FileChange, ...]) -> str:
    """The same change wherever it lands: per path, the added and removed lines only (no context, hunk
    positions or blob ids), so a cherry-pick or a fork's copy of a commit hashes alike."""
    h = hashlib.sha1()
    for f in sorted(files, key=lambda f: f.path):
        h.update(f"{f.status}\0{f.old_path or ''}\0{f.path}\0".encode())
        for line in f.patch.splitlines():
            if line[:1] in "+-" and not line.startswith(("+++ ", "--- ")):
                h.update(line.encode(errors="replace") + b"\n")
    return h.hexdigest()


def main_language(files: tuple[FileChange, ...]) -> str | None:
    lines: Counter[str] = Counter()
    for f in files:
        language = language_of(f.path)
        if language and language not in NOT_CODE and file_kind(f) == "code":
            lines[language] += f.additions + f.deletions + 1
    return lines.most_common(1)[0][0] if lines else None


def build_sample(repo: pygit2.Repository, commit: Commit, index: SnapshotIndex, budget: SampleBudget) -> Sample | None:
    """The sample of a non-merge commit, `index` moved to its parent's tree; None when the message and
    target alone do not fit `budget.max_chars`."""
    raw = repo[commit.sha]
    tree = raw.parents[0].tree if raw.parents else None
    target = ("<changed_files>\n" + "".join(changed_line(f) + "\n" for f in commit.files) + "</changed_files>\n<diff>\n"
              + "".join(f.patch if f.patch.endswith("\n") or not f.patch else f.patch + "\n" for f in commit.files)
              + "</diff>\n")
    head = f"<commit_message>\n{commit.message.strip()}\n</commit_message>\n"
    room = budget.max_chars - len(head) - len(target)
    if room < 0:
        return None
    index.move_to(tree)
    parts: list[str] = []

    def add(section: str) -> bool:  # a context section goes in only whole; the target always fits
        nonlocal room
        if len(section) > room:
            return False
        parts.append(section)
        room -= len(section)
        return True

    readme = readme_of(repo, tree)
    if readme is not None and not add(f'<readme path="{readme[0]}">\n{cut(readme[1], budget.readme_chars)}</readme>\n'):
        readme = None
    add(f"<tree>\n{tree_text(repo, tree, budget.tree_depth, budget.tree_lines)}</tree>\n")
    top = []
    for path, _ in index.top(commit.message, budget.top_k):
        wrapper = f'<file path="{path}">\n</file>\n'
        limit = min(budget.file_chars, room - len(wrapper) - 40)  # 40: the cut marker's line
        if limit < 200:
            break
        content = repo[tree[path].id].data.decode("utf-8", errors="replace")
        if not add(f'<file path="{path}">\n{cut(content, limit)}</file>\n'):
            break
        top.append(path)
    prompt = head + "".join(parts)
    before = {f.old_path for f in commit.files if f.status != "added" and f.old_path and f.old_path in index}
    return Sample(text=prompt + target, prompt_chars=len(prompt), language=main_language(commit.files),
                  readme_path=readme[0] if readme else None, retrieved=tuple(top),
                  changed_in_snapshot=len(before), changed_retrieved=len(before & set(top)),
                  patch_hash=patch_hash(commit.files))
