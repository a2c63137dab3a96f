"""Commits of a real git history, read with libgit2 (pygit2): message, people and dates, parents, and per
file the status, line counts and unified patch; the pre-commit snapshot is read lazily from the parent's
tree, never checked out. Chosen by measurement (benchmarks/bench_commit_extract.py): structured access
to trees, blobs and renames at the git CLI's speed, where dulwich (pure Python) is several times slower.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pygit2

# pygit2's delta status -> ours.
_STATUS = {pygit2.enums.DeltaStatus.ADDED: "added", pygit2.enums.DeltaStatus.DELETED: "deleted",
           pygit2.enums.DeltaStatus.MODIFIED: "modified", pygit2.enums.DeltaStatus.RENAMED: "renamed",
           pygit2.enums.DeltaStatus.COPIED: "copied", pygit2.enums.DeltaStatus.TYPECHANGE: "type_changed"}


class BadRepository(Exception):
    """A repository that cannot be read as a whole (not a repository, corrupt, no HEAD)."""


@dataclass(frozen=True)
class FileChange:
    path: str  # the path after the commit (before it, for a deletion)
    old_path: str | None  # the path before the commit (None for an addition)
    status: str  # added | modified | deleted | renamed | copied | type_changed
    binary: bool
    additions: int
    deletions: int
    patch: str  # the file's unified diff, three lines of context (empty for a binary or oversized file)
    oversized: bool = False  # a side of it is over `max_file_bytes`: no patch was computed


@dataclass(frozen=True)
class Commit:
    sha: str
    parents: tuple[str, ...]
    author: str
    author_email: str
    authored_at: int  # seconds since the epoch
    committer: str
    committed_at: int
    message: str
    message_decodes: bool  # False: the message was not valid in its declared encoding (replaced characters)
    files: tuple[FileChange, ...]  # against the first parent; empty for a merge
    damage: str | None = None  # an object the diff needs is missing or corrupt, or SHALLOW (files then empty)

    @property
    def is_merge(self) -> bool:
        return len(self.parents) > 1


SHALLOW = "shallow boundary: its parents are not in the crawl"


def shallow_boundary(repo: pygit2.Repository) -> frozenset[str]:
    """The commits of a shallow clone whose parents were cut off. libgit2 shows them without parents,
    which would make each look like a root commit adding the whole tree."""
    if not repo.is_shallow:
        return frozenset()
    return frozenset((Path(repo.path) / "shallow").read_text().split())


def open_repository(path: str | Path, work: str | Path | None = None) -> pygit2.Repository:
    """A repository folder (bare or not), or a git bundle cloned bare once into `work`."""
    path = Path(path)
    try:
        if path.is_file():  # a bundle: git itself unpacks it (libgit2 does not read bundles)
            if work is None:
                raise BadRepository(f"{path}: a bundle needs a work folder to unpack into")
            dest = Path(work) / (path.stem + ".git")
            if not (dest / "HEAD").exists():
                out = subprocess.run(["git", "clone", "--quiet", "--bare", str(path), str(dest)], capture_output=True,
                                     text=True)
                if out.returncode != 0:
                    raise BadRepository(f"{path}: {out.stderr.strip()[:300]}")
            path = dest
        repo = pygit2.Repository(str(path))
        if repo.head_is_unborn:
            raise BadRepository(f"{path}: no commit on HEAD")
        return repo
    except pygit2.GitError as exc:
        raise BadRepository(f"{path}: {exc}") from exc


def _text(raw: bytes, encoding: str | None) -> tuple[str, bool]:
    try:
        return raw.decode(encoding or "utf-8"), True
    except (UnicodeDecodeError, LookupError):
        return raw.decode("utf-8", errors="replace"), False


_NULL = pygit2.Oid(hex="0" * 40)


def _size(repo: pygit2.Repository, side: pygit2.DiffFile) -> int:
    """A blob's size from its header (no content read); 0 for a missing side or a submodule's commit (a
    gitlink names a commit of another repository, not an object of this one)."""
    if side.id == _NULL or side.mode == pygit2.enums.FileMode.COMMIT:
        return 0
    return repo.odb.read_header(side.id)[1]


def _changes(repo: pygit2.Repository, commit: pygit2.Commit, max_file_bytes: int, max_files: int | None = None,
             max_patch_bytes: int | None = None) -> tuple[FileChange, ...]:
    """Per-file changes against the first parent. Past `max_files` files no patch is built (the commit is
    dropped for its file count, and a vendoring commit of 10^5 files must not be held as patches); past
    `max_patch_bytes` of patches, neither (dropped for its size)."""
    if len(commit.parents) > 1:
        return ()
    if commit.parents:
        diff = repo.diff(commit.parents[0], commit, context_lines=3)
    else:  # the root commit: everything is added
        diff = commit.tree.diff_to_tree(swap=True, context_lines=3)
    diff.find_similar()  # renames and copies, as `git log -M`
    changes = []
    patch_budget = max_patch_bytes if max_patch_bytes is not None else float("inf")
    skip_patches = max_files is not None and len(diff) > max_files
    for i, delta in enumerate(diff.deltas):
        status = _STATUS.get(delta.status, "modified")
        new, old = delta.new_file.path, delta.old_file.path
        where = dict(path=old if status == "deleted" else new, old_path=None if status == "added" else old,
                     status=status)
        if max(_size(repo, delta.old_file), _size(repo, delta.new_file)) > max_file_bytes:
            # A 100 MB data file: its patch is never built (it would be the whole file in memory).
            changes.append(FileChange(**where, binary=False, additions=0, deletions=0, patch="", oversized=True))
            continue
        if skip_patches or patch_budget < 0:
            changes.append(FileChange(**where, binary=delta.is_binary, additions=0, deletions=0, patch=""))
            continue
        patch = diff[i]
        binary = patch.delta.is_binary
        adds, dels = (0, 0) if binary else patch.line_stats[1:]
        text = "" if binary else patch.data.decode("utf-8", errors="replace")
        patch_budget -= len(text.encode())
        changes.append(FileChange(**where, binary=binary, additions=adds, deletions=dels, patch=text))
    return tuple(changes)


def iter_commits(repo: pygit2.Repository, skip: set[str] | frozenset[str] = frozenset(),
                 max_file_bytes: int = 1_000_000, max_files: int | None = None,
                 max_patch_bytes: int | None = None) -> Iterator[Commit]:
    """Every commit reachable from HEAD, oldest first (parents before children), except those in `skip`
    (commits an earlier crawl already processed). Diffs are computed only for commits yielded; a commit
    whose diff needs a missing or corrupt object comes with `damage` set. A history that cannot be walked
    raises BadRepository after the commits read so far."""
    try:
        walker = repo.walk(repo.head.target, pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.REVERSE)
        commits = iter(walker)
    except pygit2.GitError as exc:
        raise BadRepository(f"{repo.path}: {exc}") from exc
    boundary = shallow_boundary(repo)
    while True:
        try:
            c = next(commits)
        except StopIteration:
            return
        except pygit2.GitError as exc:
            raise BadRepository(f"{repo.path}: history walk stopped: {exc}") from exc
        sha = str(c.id)
        if sha in skip:
            continue
        message, ok = _text(c.raw_message, c.message_encoding)
        try:
            files, damage = ((), SHALLOW) if sha in boundary else (
                _changes(repo, c, max_file_bytes, max_files, max_patch_bytes), None)
        except (pygit2.GitError, KeyError, ValueError) as exc:
            files, damage = (), f"{type(exc).__name__}: {exc}"[:300]
        yield Commit(
            sha=sha, parents=tuple(str(p) for p in c.parent_ids),
            author=_text(c.author.raw_name, None)[0], author_email=_text(c.author.raw_email, None)[0],
            authored_at=c.author.time, committer=_text(c.committer.raw_name, None)[0],
            committed_at=c.committer.time, message=message, message_decodes=ok, files=files, damage=damage)


def snapshot_paths(repo: pygit2.Repository, sha: str) -> list[str]:
    """Every file path of the tree *before* commit `sha` (its first parent's; empty for a root commit)."""
    commit = repo.get(sha)
    if not commit.parents:
        return []
    out: list[str] = []

    def walk(tree: pygit2.Tree, prefix: str) -> None:
        for entry in tree:
            if entry.type_str == "tree":
                walk(repo.get(entry.id), f"{prefix}{entry.name}/")
            elif entry.type_str == "blob":
                out.append(prefix + entry.name)

    walk(commit.parents[0].tree, "")
    return out


def snapshot_file(repo: pygit2.Repository, sha: str, path: str) -> bytes | None:
    """A file of the pre-commit snapshot, read from the object store on demand (None if absent)."""
    commit = repo.get(sha)
    if not commit.parents:
        return None
    try:
        entry = commit.parents[0].tree[path]
    except KeyError:
        return None
    obj = repo.get(entry.id)
    return obj.data if isinstance(obj, pygit2.Blob) else None
