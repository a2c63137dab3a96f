"""Commit samples: the moving BM25 index against a bm25s index rebuilt per commit, the sample's layout and
budget, and its target checked by git itself; on repositories built here and on the five real histories
in ../shared/data/git (skipped where shared/ is absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pygit2
import pytest

from seedcoder_assets.core.commits.context import SnapshotIndex, code_terms, rebuilt_top
from seedcoder_assets.core.commits.filters import CommitFilters, commit_rejection
from seedcoder_assets.core.commits.history import iter_commits, open_repository
from seedcoder_assets.core.commits.sample import SampleBudget, build_sample, cut
from seedcoder_assets.core.commits.verify import patch_applies, target_diff

GIT = Path(__file__).resolve().parents[3] / "shared" / "data" / "git"
BUNDLES = ["pallets+itsdangerous", "spf13+cobra", "tj+commander.js", "BurntSushi+walkdir", "google+snappy"]


def _commit(repo: pygit2.Repository, files: dict[str, bytes | None], message: str, parents: list | None = None,
            ref: str = "HEAD") -> pygit2.Oid:
    index = pygit2.Index()
    if parents is None:
        parents = [] if repo.head_is_unborn else [repo.head.target]
    if parents:
        index.read_tree(repo[parents[0]].tree)
    for path, data in files.items():
        if data is None:
            index.remove(path)
        else:
            index.add(pygit2.IndexEntry(path, repo.create_blob(data), pygit2.enums.FileMode.BLOB))
    who = pygit2.Signature("Dev", "dev@example.org", 1_600_000_000 + len(parents), 0)
    return repo.create_commit(ref, who, who, message, index.write_tree(repo), parents)


def _same(a: list[tuple[str, float]], b: list[tuple[str, float]]) -> None:
    """The same ranking; bm25s scores in float32, so equal scores may only differ in the last bits."""
    assert [p for p, _ in a] == [p for p, _ in b]
    assert all(abs(x - y) <= 1e-4 * max(1.0, abs(y)) for (_, x), (_, y) in zip(a, b, strict=True))


def test_code_words_meet_prose_words() -> None:
    assert code_terms("Fix parseHTTPFlags2 in cmd_line.go for the NewCommand() API") == [
        "fix", "parse", "http", "flags", "cmd", "line", "go", "new", "command", "api"]


def test_the_index_follows_adds_edits_deletes_renames_and_branch_switches_like_a_rebuild(tmp_path: Path) -> None:
    repo = pygit2.init_repository(str(tmp_path / "r"), bare=True)
    trees = []
    steps = [
        {"src/parser.py": b"def parse_flags(argv):\n    return argv\n", "src/cli.py": b"import parser\nrun()\n",
         "README.md": b"parse flags\n", "vendor/lib/flags.py": b"def parse_flags(): pass\n"},
        {"src/parser.py": b"def parse_flags(argv):\n    flags = {}\n    return flags\n", "src/help.py": b"HELP = 1\n"},
        {"src/cli.py": None, "src/main.py": b"import parser\nrun()\n"},  # a rename, as git stores it
        {"src/big.py": b"flags = 1\n" * 50_000},  # over the document size limit
    ]
    for files in steps:
        trees.append(repo[_commit(repo, files, "step")].tree)
    index = SnapshotIndex(repo, max_doc_bytes=100_000)
    queries = ["Parse flags from argv", "help text", "run the main module", "nothing matches zzz"]
    for tree in [*trees, trees[1], trees[0], trees[3], None, trees[2]]:  # forwards, back, jumps, empty
        index.move_to(tree)
        for q in queries:
            _same(index.top(q), rebuilt_top(repo, tree, q, max_doc_bytes=100_000))
    index.move_to(trees[3])
    assert "src/big.py" not in index and "vendor/lib/flags.py" not in index and "README.md" not in index
    assert index.top("parse flags")[0][0] == "src/parser.py"
    assert index.patched >= 1  # parser.py's second version was counted from its first and the line diff
    tokenized = index.tokenized
    index.move_to(trees[0])
    index.move_to(trees[3])
    assert index.tokenized == tokenized  # blobs seen before are not tokenized again


@pytest.mark.skipif(not GIT.is_dir(), reason="../shared/data/git is not beside the project")
@pytest.mark.parametrize("name", BUNDLES)
def test_on_a_real_history_the_moving_index_ranks_as_a_rebuild_per_commit(name: str, tmp_path: Path) -> None:
    repo = open_repository(GIT / f"{name}.bundle", tmp_path)
    index = SnapshotIndex(repo)
    compared = 0
    for i, c in enumerate(iter_commits(repo)):
        if c.is_merge:
            continue
        raw = repo[c.sha]
        tree = raw.parents[0].tree if raw.parents else None
        index.move_to(tree)
        if i % 9 == 0:  # the rebuild is the slow path; every 9th commit keeps this test short
            _same(index.top(c.message), rebuilt_top(repo, tree, c.message))
            compared += 1
    assert compared > 15 and index.size > 5


def test_cut_marks_what_is_missing() -> None:
    text = "".join(f"line {i}\n" for i in range(100))
    out = cut(text, 50)
    assert out.startswith("line 0\n") and out.endswith(" more characters]\n") and len(out) < 90
    assert out.splitlines()[-2] == "line 6"  # whole lines only: 7 lines of 7 characters fit in 50
    assert cut("short\n", 50) == "short\n"


def _toy(tmp_path: Path) -> tuple[pygit2.Repository, pygit2.Oid]:
    repo = pygit2.init_repository(str(tmp_path / "toy"), bare=True)
    body = "".join(f"    value_{i} = compute_{i}(value_{i - 1})\n" for i in range(200))
    _commit(repo, {"README.md": b"# Toy\n\nA toy tokenizer.\n", "toy/tokenizer.py":
                   f"def tokenize(text):\n{body}    return text.split()\n".encode(),
                   "toy/__init__.py": b"", "docs/guide.md": b"how to\n", "toy/cache.py": b"CACHE = {}\n"}, "Start")
    change = _commit(repo, {"toy/tokenizer.py": f"def tokenize(text):\n{body}    return text.lower().split()\n"
                            .encode(), "toy/new.py": b"X = 1\n"}, "Lowercase text in the tokenizer")
    return repo, change


def test_a_sample_has_the_documented_layout_and_its_target_applies(tmp_path: Path) -> None:
    repo, sha = _toy(tmp_path)
    commit = next(c for c in iter_commits(repo) if c.sha == str(sha))
    assert commit_rejection(commit, CommitFilters()) is None
    s = build_sample(repo, commit, SnapshotIndex(repo), SampleBudget())
    prompt, target = s.text[: s.prompt_chars], s.text[s.prompt_chars:]
    sections = [line for line in prompt.splitlines() if line.startswith("<") and not line.startswith("</")]
    assert sections == ["<commit_message>", '<readme path="README.md">', "<tree>",
                        *(f'<file path="{p}">' for p in s.retrieved)]
    assert prompt.startswith("<commit_message>\nLowercase text in the tokenizer\n</commit_message>\n")
    assert "<tree>\nREADME.md\ndocs/\n  guide.md\ntoy/\n  __init__.py\n  cache.py\n  tokenizer.py\n</tree>\n" in prompt
    assert s.retrieved[0] == "toy/tokenizer.py" and "toy/new.py" not in prompt  # the snapshot is before the commit
    assert target.startswith("<changed_files>\nA toy/new.py\nM toy/tokenizer.py\n</changed_files>\n<diff>\n")
    assert target.endswith("</diff>\n") and (s.changed_in_snapshot, s.changed_retrieved) == (1, 1)
    assert s.language == "Python" and s.readme_path == "README.md"
    assert patch_applies(repo.path, commit.parents[0], target_diff(s.text, s.prompt_chars)) is None


def test_the_budget_cuts_the_context_never_the_target(tmp_path: Path) -> None:
    repo, sha = _toy(tmp_path)
    commit = next(c for c in iter_commits(repo) if c.sha == str(sha))
    full = build_sample(repo, commit, SnapshotIndex(repo), SampleBudget())
    target = full.text[full.prompt_chars:]
    for max_chars in (len(full.text) - 1, len(target) + 2_000, len(target) + 300):
        s = build_sample(repo, commit, SnapshotIndex(repo), SampleBudget(max_chars=max_chars))
        assert len(s.text) <= max_chars and s.text[s.prompt_chars:] == target
        assert s.text.startswith("<commit_message>\n")
    small = build_sample(repo, commit, SnapshotIndex(repo), SampleBudget(max_chars=len(target) + 2_000))
    assert "more characters]\n</file>" in small.text  # the retrieved file was cut, and says so
    assert build_sample(repo, commit, SnapshotIndex(repo), SampleBudget(max_chars=len(target))) is None


def test_git_rejects_a_target_that_does_not_apply(tmp_path: Path) -> None:
    repo, sha = _toy(tmp_path)
    commit = next(c for c in iter_commits(repo) if c.sha == str(sha))
    s = build_sample(repo, commit, SnapshotIndex(repo), SampleBudget())
    diff = target_diff(s.text, s.prompt_chars)
    assert patch_applies(repo.path, commit.parents[0], diff) is None
    broken = diff.replace(" value_199 = compute_199(", " value_199 = compute_1999(", 1)  # context git cannot find
    assert broken != diff
    assert patch_applies(repo.path, commit.parents[0], broken) is not None
    assert patch_applies(repo.path, None, diff) is not None  # not against the empty tree either


@pytest.mark.skipif(not GIT.is_dir(), reason="../shared/data/git is not beside the project")
def test_on_real_histories_every_checked_target_applies_and_fits(tmp_path: Path) -> None:
    budget = SampleBudget()
    for name in BUNDLES:
        repo = open_repository(GIT / f"{name}.bundle", tmp_path)
        index = SnapshotIndex(repo)
        samples = [(c, s) for c in iter_commits(repo) if commit_rejection(c, CommitFilters()) is None
                   if (s := build_sample(repo, c, index, budget)) is not None]
        assert len(samples) > 50 and all(len(s.text) <= budget.max_chars for _, s in samples)
        for c, s in samples[::25]:
            assert patch_applies(repo.path, c.parents[0] if c.parents else None,
                                 target_diff(s.text, s.prompt_chars)) is None, (name, c.sha)
        existing = sum(s.changed_in_snapshot for _, s in samples)
        assert 0.3 < sum(s.changed_retrieved for _, s in samples) / existing <= 1  # BM25 finds a fair share


def test_oversized_files_missing_objects_and_undecodable_paths_cost_one_commit(tmp_path: Path) -> None:
    repo = pygit2.init_repository(str(tmp_path / "bad"), bare=True)
    _commit(repo, {"src/a.py": b"A = 1\n", "src/b.py": b"B = 1\n"}, "Start the project")
    big = _commit(repo, {"data/model.py": b"W = [0]\n" * 200_000}, "Add the weights as a module")
    lost = _commit(repo, {"src/b.py": b"B = 2\n"}, "Change b to two")
    odd = _commit(repo, {"src/caf\udce9.py".encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape"):
                         b"C = 1\n"}, "Add the cafe module")
    after = _commit(repo, {"src/a.py": b"A = 2\n"}, "Change a to two")
    blob = repo[lost].tree["src/b.py"].id  # the new blob of `lost` goes missing from the object store
    os.remove(Path(repo.path) / "objects" / str(blob)[:2] / str(blob)[2:])
    commits = {c.sha: c for c in iter_commits(repo, max_file_bytes=1_000_000)}
    assert len(commits) == 5  # the walk went on past the damage
    reasons = {sha: commit_rejection(c, CommitFilters()) for sha, c in commits.items()}
    assert reasons[str(big)] == "file_too_large" and commits[str(big)].files[0].patch == ""
    assert reasons[str(lost)] == "missing_object" and reasons[str(after)] is None
    assert reasons[str(odd)] == "undecodable_path"
    s = build_sample(repo, commits[str(after)], SnapshotIndex(repo), SampleBudget())
    assert "caf\ufffd.py" in s.text and s.text.encode("utf-8")  # the tree names it; the text stays UTF-8
