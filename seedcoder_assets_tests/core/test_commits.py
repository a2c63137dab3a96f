"""Commit extraction on the five real histories in ../shared/data/git (skipped where shared/ is absent),
and on small repositories built here for the cases a history may or may not contain."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pygit2
import pytest

from seedcoder_assets.core.commits.history import (
    BadRepository,
    iter_commits,
    open_repository,
    snapshot_file,
    snapshot_paths,
)
from seedcoder_assets.core.commits.select import RepoHistory, RepoSelection, rejection

GIT = Path(__file__).resolve().parents[3] / "shared" / "data" / "git"
# From shared/data/git/README.md: commits on HEAD and merges, counted there by git itself.
BUNDLES = {"pallets+itsdangerous": (677, 241), "spf13+cobra": (1106, 114), "tj+commander.js": (1517, 284),
           "BurntSushi+walkdir": (192, 7), "google+snappy": (412, 47)}


@pytest.mark.skipif(not GIT.is_dir(), reason="../shared/data/git is not beside the project")
@pytest.mark.parametrize("name", sorted(BUNDLES))
def test_every_commit_of_a_real_history_is_read_with_its_changes(name: str, tmp_path: Path) -> None:
    repo = open_repository(GIT / f"{name}.bundle", tmp_path)
    commits = list(iter_commits(repo))
    assert (len(commits), sum(c.is_merge for c in commits)) == BUNDLES[name]
    seen: set[str] = set()
    for c in commits:  # parents before children
        assert all(p in seen for p in c.parents)
        seen.add(c.sha)
    # git itself, independently: every path each non-merge commit touches (old and new names of a rename;
    # libgit2 and git may pair a delete and an add as a rename differently, so the union is compared).
    sample = [c for c in commits if not c.is_merge and c.parents][::5]
    for c in sample:
        out = subprocess.run(["git", "-C", repo.path, "diff-tree", "-z", "--no-commit-id", "-r", "-M", "--name-status",
                              c.parents[0], c.sha], capture_output=True, check=True).stdout.decode().split("\0")
        touched = {p for p in out if p and not (p[0] in "AMDRCTU" and (len(p) == 1 or p[1:].isdigit()))}
        assert {p for f in c.files for p in (f.path, f.old_path) if p} == touched, c.sha
    changed = next(f for c in sample for f in c.files if f.status == "modified" and not f.binary)
    assert changed.patch.startswith("diff --git") and changed.additions + changed.deletions > 0


def _commit(repo: pygit2.Repository, files: dict[str, bytes | None], message: str, when: int) -> str:
    """A commit on HEAD with `files` written (None deletes), built with libgit2's index."""
    index = repo.index
    for path, data in files.items():
        if data is None:
            index.remove(path)
        else:
            index.add(pygit2.IndexEntry(path, repo.create_blob(data), pygit2.enums.FileMode.BLOB))
    index.write()
    who = pygit2.Signature("Dev", "dev@example.org", when, 0)
    parents = [] if repo.head_is_unborn else [repo.head.target]
    return str(repo.create_commit("HEAD", who, who, message, index.write_tree(), parents))


def test_statuses_binary_files_renames_and_the_snapshot(tmp_path: Path) -> None:
    repo = pygit2.init_repository(str(tmp_path / "r"), bare=True)
    body = "".join(f"line {i}\n" for i in range(40)).encode()
    _commit(repo, {"a.py": b"print(1)\n", "old.py": body, "logo.png": b"\x89PNG\x00\x01"}, "root", 1_600_000_000)
    sha = _commit(repo, {"a.py": b"print(2)\n", "old.py": None, "new.py": body + b"x\n", "logo.png": b"\x89PNG\x00\x02"},
                  "change", 1_600_086_400)
    root, change = list(iter_commits(repo))
    assert {f.path: f.status for f in root.files} == {"a.py": "added", "old.py": "added", "logo.png": "added"}
    got = {f.path: f for f in change.files}
    assert {p: f.status for p, f in got.items()} == {"a.py": "modified", "new.py": "renamed", "logo.png": "modified"}
    assert got["new.py"].old_path == "old.py" and got["logo.png"].binary and got["logo.png"].patch == ""
    assert (got["a.py"].additions, got["a.py"].deletions) == (1, 1)
    assert sorted(snapshot_paths(repo, sha)) == ["a.py", "logo.png", "old.py"]  # before the commit
    assert snapshot_file(repo, sha, "a.py") == b"print(1)\n" and snapshot_file(repo, sha, "new.py") is None
    assert [c.sha for c in iter_commits(repo, skip={root.sha})] == [sha]  # an earlier crawl read the root


def test_a_message_that_does_not_decode_is_kept_and_flagged(tmp_path: Path) -> None:
    repo = pygit2.init_repository(str(tmp_path / "r"), bare=True)
    tree = repo.TreeBuilder().write()
    who = pygit2.Signature("Dev", "dev@example.org", 1_600_000_000, 0)
    repo.create_commit("HEAD", who, who, "x", tree, [])
    raw = repo.odb.read(repo.head.target)[1].replace(b"\n\nx", b"\n\nfix \xff\xfe bug")
    new = repo.odb.write(pygit2.enums.ObjectType.COMMIT, raw)
    repo.references.create("refs/heads/master", new, force=True)
    (commit,) = iter_commits(repo)
    assert not commit.message_decodes and commit.message.startswith("fix ") and "bug" in commit.message


@pytest.mark.parametrize("make", ["not_a_repository", "no_commit", "bad_bundle"])
def test_a_repository_that_cannot_be_read_is_one_clear_error(tmp_path: Path, make: str) -> None:
    target = tmp_path / "x"
    if make == "not_a_repository":
        target.mkdir()
    elif make == "no_commit":
        pygit2.init_repository(str(target), bare=True)
    else:
        target = tmp_path / "x.bundle"
        target.write_bytes(b"# v2 git bundle\ngarbage")
    with pytest.raises(BadRepository):
        open_repository(target, tmp_path / "work")


def test_repository_selection_names_the_first_rule_that_fails() -> None:
    rule = RepoSelection()
    long = RepoHistory(commits=500, first_commit_at=0, last_commit_at=400 * 86400)
    assert rejection(150, 20, long, rule) is None
    assert rejection(None, 20, long, rule) == "few_stars"
    assert rejection(150, 2, long, rule) == "few_forks"
    assert rejection(150, 20, RepoHistory(50, 0, 400 * 86400), rule) == "few_commits"
    assert rejection(150, 20, RepoHistory(500, 0, 30 * 86400), rule) == "short_maintenance"
    assert rejection(5, 0, RepoHistory(1, 0, 0), RepoSelection(min_stars=0, min_forks=0, min_commits=0, min_days=0)) \
        is None


def _c(message: str = "Handle empty input in the parser", author: str = "Ann", email: str = "ann@example.org",
       files: tuple = (("src/parse.py", False, "diff --git a/src/parse.py b/src/parse.py\n+x\n"),),
       parents: tuple[str, ...] = ("p",), decodes: bool = True, damage: str | None = None, oversized: bool = False):
    from seedcoder_assets.core.commits.history import Commit, FileChange

    changes = tuple(FileChange(path, path, "modified", binary, 1, 0, "" if binary else patch, oversized)
                    for path, binary, patch in files)
    return Commit("s", parents, author, email, 0, author, 0, message, decodes, changes, damage)


@pytest.mark.parametrize(("commit", "reason"), [
    (_c(), None),
    (_c(parents=("a", "b")), "merge"),
    (_c(author="dependabot[bot]"), "bot_author"),
    (_c(email="renovate@whitesourcesoftware.com"), "bot_author"),
    (_c(author="pre-commit-ci[bot]"), "bot_author"),
    (_c(decodes=False), "undecodable_message"),
    (_c(message="\n\n"), "empty_message"),
    (_c(message="wip"), "boilerplate_message"),
    (_c(message="Update README.md"), "boilerplate_message"),  # GitHub's web-editor default
    (_c(message="Add files via upload"), "boilerplate_message"),
    (_c(message="docs"), "boilerplate_message"),  # one word
    (_c(message="Add a shortcut for easy PyPI publishing"), None),  # "Add <words>" is a real intent
    (_c(message="Release 0.3.2"), "version_bump"),
    (_c(message="Bump version to 1.2.0"), "version_bump"),
    (_c(message="1.4.0"), "version_bump"),
    (_c(message="prerelease version 2.0.0rc1"), "version_bump"),
    (_c(files=()), "no_change"),
    (_c(files=(), damage="KeyError: object not found"), "missing_object"),
    (_c(files=(("caf\udce9.py", False, "+x\n"),)), "undecodable_path"),  # pygit2's surrogate for byte 0xe9
    (_c(files=(("data/model.py", False, ""),), oversized=True), "file_too_large"),
    (_c(files=tuple((f"src/m{i}.py", False, "+x\n") for i in range(21))), "too_many_files"),
    (_c(files=(("src/big.py", False, "+" + "x" * 70_000),)), "patch_too_large"),
    (_c(files=(("package-lock.json", False, "+x"), ("yarn.lock", False, "+y"))), "lockfile_only"),
    (_c(files=(("third_party/zlib/inflate.c", False, "+x"),)), "vendored_only"),
    (_c(files=(("api/service_pb2.py", False, "+x"),)), "generated_only"),
    (_c(files=(("static/app.min.js", False, "+x"),)), "minified_only"),
    (_c(files=(("logo.png", True, ""),)), "binary_only"),
    (_c(files=(("README.md", False, "+x"), ("docs/conf.yaml", False, "+y"))), "no_code_file"),
    (_c(files=(("README.md", False, "+x"), ("src/a.go", False, "+y"))), None),  # a code file among them
])
def test_each_commit_filter_names_its_reason(commit, reason) -> None:
    from seedcoder_assets.core.commits.filters import CommitFilters, commit_rejection

    assert commit_rejection(commit, CommitFilters()) == reason


@pytest.mark.skipif(not GIT.is_dir(), reason="../shared/data/git is not beside the project")
def test_on_real_histories_no_merge_or_bot_survives_and_most_kept_commits_touch_code(tmp_path: Path) -> None:
    from seedcoder_assets.core.commits.filters import BOT, CommitFilters, commit_rejection, file_kind

    kept = 0
    for name in BUNDLES:
        for c in iter_commits(open_repository(GIT / f"{name}.bundle", tmp_path)):
            if commit_rejection(c, CommitFilters()) is None:
                kept += 1
                assert not c.is_merge and not BOT.search(c.author)
                assert any(file_kind(f) == "code" for f in c.files)
    assert 1000 < kept < 3904  # most commits of maintained projects are real changes; far from all
