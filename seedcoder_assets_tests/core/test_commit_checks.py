"""Each check of the commits corpus passes on good output and fails on output made bad on purpose."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pygit2

from seedcoder_assets.core.commits.checks import (
    commits_accounted,
    no_merge_or_bot_left,
    samples_within_budget,
    targets_apply,
)
from seedcoder_assets.core.commits.context import SnapshotIndex
from seedcoder_assets.core.commits.corpus import COMMIT_SAMPLE_SCHEMA, _sample_row
from seedcoder_assets.core.commits.history import iter_commits
from seedcoder_assets.core.commits.sample import SampleBudget, build_sample


def _repo(tmp_path: Path) -> tuple[pygit2.Repository, dict[str, str]]:
    """main: two edits by a person; a branch by a bot merged back (a merge commit)."""
    repo = pygit2.init_repository(str(tmp_path / "r"), bare=True)

    def commit(files: dict[str, bytes], message: str, author: str, parents: list, ref: str = "refs/heads/main"):
        index = pygit2.Index()
        if parents:
            index.read_tree(repo[parents[0]].tree)
        for path, data in files.items():
            index.add(pygit2.IndexEntry(path, repo.create_blob(data), pygit2.enums.FileMode.BLOB))
        who = pygit2.Signature(author, f"{author}@example.org", 1_600_000_000 + len(parents), 0)
        return repo.create_commit(ref, who, who, message, index.write_tree(repo), parents)

    body = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(30)).encode()
    root = commit({"src/calc.py": body, "README.md": b"# calc\n"}, "Start the calculator", "Ann", [])
    edit = commit({"src/calc.py": body.replace(b"x + 7", b"x + 70")}, "Fix the offset of f7 in calc", "Ann", [root])
    bot = commit({"requirements.txt": b"numpy==2\n"}, "Bump numpy to 2", "dependabot[bot]", [edit],
                 ref="refs/heads/deps")
    merge = commit({}, "Merge the dependency update", "Ann", [edit, bot])
    repo.set_head("refs/heads/main")
    return repo, {"root": str(root), "edit": str(edit), "bot": str(bot), "merge": str(merge)}


def _samples(tmp_path: Path, repo: pygit2.Repository, shas: list[str], name: str = "o/calc") -> str:
    rows = []
    index = SnapshotIndex(repo)
    for c in iter_commits(repo):
        if c.sha in shas:
            sample = build_sample(repo, c, index, SampleBudget())
            rows.append(_sample_row("c1", name, c, sample))
    uri = str(tmp_path / "samples")
    Path(uri).mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, COMMIT_SAMPLE_SCHEMA), f"{uri}/part-0.parquet")
    (Path(uri) / "_SUCCESS").touch()  # a finished partition
    return uri


def test_targets_apply_fails_on_a_target_git_cannot_apply(tmp_path: Path) -> None:
    repo, sha = _repo(tmp_path)
    good = _samples(tmp_path, repo, [sha["edit"]])
    assert targets_apply(good, lambda _: repo.path).passed
    t = pq.read_table(f"{good}/part-0.parquet").to_pylist()
    cut = t[0]["prompt_chars"]  # a context line of the target's diff that is not in the file
    t[0]["text"] = t[0]["text"][:cut] + t[0]["text"][cut:].replace("\n def f7(x):", "\n def f7(y):")
    assert t[0]["text"][cut:] != pq.read_table(f"{good}/part-0.parquet")["text"][0].as_py()[cut:]
    pq.write_table(pa.Table.from_pylist(t, COMMIT_SAMPLE_SCHEMA), f"{good}/part-0.parquet")
    bad = targets_apply(good, lambda _: repo.path)
    assert not bad.passed and bad.metadata["not_applying"] == 1


def test_no_merge_or_bot_left_looks_the_commits_up_in_git(tmp_path: Path) -> None:
    repo, sha = _repo(tmp_path)
    assert no_merge_or_bot_left(_samples(tmp_path / "a", repo, [sha["edit"]]), lambda _: repo.path).passed
    bad = no_merge_or_bot_left(_samples(tmp_path / "b", repo, [sha["edit"], sha["bot"], sha["merge"]]),
                               lambda _: repo.path)
    assert not bad.passed and (bad.metadata["merges"], bad.metadata["bots"]) == (1, 1)
    other = pygit2.init_repository(str(tmp_path / "other"), bare=True)  # the samples name another repository
    assert not no_merge_or_bot_left(_samples(tmp_path / "c", repo, [sha["edit"]]), lambda _: other.path).passed


def test_samples_within_budget_fails_on_a_long_or_malformed_sample(tmp_path: Path) -> None:
    repo, sha = _repo(tmp_path)
    uri = _samples(tmp_path, repo, [sha["edit"], sha["root"]])
    n = max(pq.read_table(uri, columns=["size"])["size"].to_pylist())
    assert samples_within_budget(uri, 128_000).passed
    assert not samples_within_budget(uri, n - 1).passed  # one sample over a tighter budget
    t = pq.read_table(f"{uri}/part-0.parquet").to_pylist()
    t[0]["prompt_chars"] += 1  # the target no longer starts where the row says
    pq.write_table(pa.Table.from_pylist(t, COMMIT_SAMPLE_SCHEMA), f"{uri}/part-0.parquet")
    bad = samples_within_budget(uri, 128_000)
    assert not bad.passed and bad.metadata["malformed"] == 1


def test_commits_accounted_counts_with_git_and_fails_on_a_missing_or_a_stray_commit(tmp_path: Path) -> None:
    repo, sha = _repo(tmp_path)  # HEAD (main) reaches root, edit, bot and the merge: 4 commits
    lineage, repos = tmp_path / "lineage", tmp_path / "repos"
    lineage.mkdir()
    repos.mkdir()
    pq.write_table(pa.table({"repo": ["o/calc"], "commits": [4]}), repos / "part-0.parquet")
    (repos / "_SUCCESS").touch()
    (lineage / "_SUCCESS").touch()

    def check(ids: list[str]):
        pq.write_table(pa.table({"id": ids, "decision": ["kept"] * len(ids)}), lineage / "part-0.parquet")
        return commits_accounted(str(lineage), str(repos), lambda _: repo.path)

    good = [f"o/calc@{s}" for s in sha.values()]
    assert check(good).passed and check(good).metadata["commits"] == 4
    assert not check(good[1:]).passed  # a commit without a fate
    assert not check([*good, good[0]]).passed  # one with two
    assert not check([*good, "o/zzz@5"]).passed  # a repository that was not selected
    unreadable = check(["o/calc@"])
    assert unreadable.passed and unreadable.metadata["repos_unreadable_at_extraction"] == 1


def test_sample_lengths_in_tokens_of_a_local_tokenizer_or_in_characters(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    from seedcoder_assets.core.commits.checks import sample_lengths

    repo, sha = _repo(tmp_path)
    uri = _samples(tmp_path, repo, [sha["edit"], sha["root"]])
    texts = pq.read_table(uri, columns=["text"])["text"].to_pylist()
    chars, unit = sample_lengths(uri)
    assert unit == "characters" and sorted(chars) == sorted(len(t) for t in texts)
    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=300, special_tokens=["[UNK]"]))
    tok.save(str(tmp_path / "tokenizer.json"))
    tokens, unit = sample_lengths(uri, str(tmp_path))  # a folder holding tokenizer.json
    assert unit == f"tokens ({tmp_path.name})"
    assert sorted(tokens) == sorted(len(tok.encode(t).ids) for t in texts) and max(tokens) < max(chars)
