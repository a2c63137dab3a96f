"""Dedup of commit samples: the same change in a fork (exact), a backport with a line drifted (near), the same
change again in a later crawl (against the index), and the earliest commit surviving."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pygit2
import pytest

from seedcoder_assets.core.commits.checks import no_same_change_left
from seedcoder_assets.core.commits.context import SnapshotIndex
from seedcoder_assets.core.commits.corpus import COMMIT_SAMPLE_SCHEMA, _sample_row
from seedcoder_assets.core.commits.dedup import changed_lines, dedup_samples
from seedcoder_assets.core.commits.history import iter_commits
from seedcoder_assets.core.commits.sample import SampleBudget, build_sample
from seedcoder_assets.core.dedup.index import DedupIndex, PriorCrawlsNotIndexed
from seedcoder_assets.core.dedup.minhash import MinHashParams
from seedcoder_assets.core.object_store import duckdb_connect
from seedcoder_assets.core.stats import LineageWriter

BASE = "".join(f"def helper_{i}(value):\n    return value * {i}\n\n" for i in range(20))
CHANGE = "".join(f"def feature_{i}(items, limit):\n    return [x for x in items if x < limit + {i}]\n\n"
                 for i in range(25))


def _history(path: Path, base: str, change: str, when: int) -> pygit2.Repository:
    """A repository whose second commit adds `change` to the end of its one module."""
    repo = pygit2.init_repository(str(path), bare=True)
    parents: list = []
    for i, (text, message) in enumerate([(base, "Start the module"), (base + change, "Add the filtering features")]):
        index = pygit2.Index()
        index.add(pygit2.IndexEntry("pkg/mod.py", repo.create_blob(text.encode()), pygit2.enums.FileMode.BLOB))
        who = pygit2.Signature("Dev", "dev@example.org", when + i, 0)
        parents = [repo.create_commit("refs/heads/main", who, who, message, index.write_tree(repo), parents)]
    repo.set_head("refs/heads/main")
    return repo


def _crawl(tmp_path: Path, crawl: str, repos: dict[str, pygit2.Repository]) -> str:
    rows = []
    for name, repo in repos.items():
        index = SnapshotIndex(repo)
        for c in iter_commits(repo):
            if c.parents:
                rows.append(_sample_row(crawl, name, c, build_sample(repo, c, index, SampleBudget())))
    uri = tmp_path / "lake" / "samples" / f"crawl={crawl}"
    uri.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, COMMIT_SAMPLE_SCHEMA), uri / "part-0.parquet")
    (uri / "_SUCCESS").touch()
    return str(uri)


def _dedup(tmp_path: Path, crawl: str, src: str, prior: list[str]) -> dict[str, tuple[str | None, str | None]]:
    lake = str(tmp_path / "lake")
    lineage = LineageWriter(lake, "deduped_commit_samples", crawl, "r", "commits")
    dst = f"{lake}/deduped/crawl={crawl}"
    dedup_samples(src, dst, lineage, MinHashParams(), DedupIndex(f"{lake}/_index/commits"), prior, duckdb_connect())
    t = pq.read_table(f"{lake}/lineage/stage=deduped_commit_samples/crawl={crawl}")
    assert no_same_change_left(dst).passed
    return {i: (r, s) for i, r, s in zip(t["id"].to_pylist(), t["reason"].to_pylist(), t["survivor"].to_pylist())}


def test_forks_backports_and_later_crawls_keep_the_earliest_commit(tmp_path: Path) -> None:
    drifted = CHANGE.replace("limit + 7]", "limit + 70]")  # one line of 75 differs
    first = _crawl(tmp_path, "c1", {
        "up/lib": _history(tmp_path / "up", BASE, CHANGE, 1_600_000_000),
        "fork/lib": _history(tmp_path / "fork", BASE.replace("* 3", "* 33"), CHANGE, 1_600_000_500),  # other context
        "back/lib": _history(tmp_path / "back", BASE, drifted, 1_600_000_900),
        "other/lib": _history(tmp_path / "other", BASE, CHANGE.replace("items", "rows").replace("limit", "cap"),
                              1_600_000_100)})
    fate = _dedup(tmp_path, "c1", first, [])
    up = next(i for i in fate if i.startswith("up/lib@"))
    assert fate[up] == (None, None)  # the earliest commit of the change survives
    assert fate[next(i for i in fate if i.startswith("fork/lib@"))] == ("exact_dup", up)
    assert fate[next(i for i in fate if i.startswith("back/lib@"))] == ("near_dup", up)
    assert fate[next(i for i in fate if i.startswith("other/lib@"))] == (None, None)  # another change

    later = _crawl(tmp_path, "c2", {"late/lib": _history(tmp_path / "late", BASE, CHANGE, 1_700_000_000),
                                    "late/drift": _history(tmp_path / "late2", BASE, drifted, 1_700_000_000)})
    with pytest.raises(PriorCrawlsNotIndexed):  # never decided without the earlier crawl's index
        _dedup(tmp_path / "elsewhere", "c2", later, ["c1"])
    again = _dedup(tmp_path, "c2", later, ["c1"])
    assert sorted(again.values()) == [("exact_dup_prior_crawl", up), ("near_dup_prior_crawl", up)]


def test_the_change_is_its_added_and_removed_lines_with_their_paths(tmp_path: Path) -> None:
    repo = _history(tmp_path / "r", BASE, CHANGE, 1_600_000_000)
    c = list(iter_commits(repo))[1]
    s = build_sample(repo, c, SnapshotIndex(repo), SampleBudget())
    lines = changed_lines(s.text, s.prompt_chars).splitlines()
    assert lines[0] == "a/pkg/mod.py b/pkg/mod.py" and all(x.startswith("+") for x in lines[1:])
    assert len(lines) == 1 + CHANGE.count("\n")


def test_no_same_change_left_fails_on_two_samples_of_one_change(tmp_path: Path) -> None:
    src = _crawl(tmp_path, "c1", {"a/x": _history(tmp_path / "a", BASE, CHANGE, 1_600_000_000),
                                  "b/x": _history(tmp_path / "b", BASE, CHANGE, 1_600_000_500)})  # a fork's copy
    bad = no_same_change_left(src)
    assert not bad.passed and bad.metadata["samples_sharing_a_patch_id"] == 2
