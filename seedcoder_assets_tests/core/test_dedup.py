"""The survivor rule decides which copy of a duplicate set is kept, and it is data, not code."""

from pathlib import Path

import pytest

from seedcoder_assets.core import paths
from seedcoder_assets.core.dedup.exact import connect, exact_dedup
from seedcoder_assets.core.dedup.index import DedupIndex
from seedcoder_assets.core.dedup.survivor import SurvivorRule
from seedcoder_assets.core.ingest.archives import file_id
from seedcoder_assets.core.parquet_io import PartWriter, read_table
from seedcoder_assets.core.schemas import FILE_SCHEMA, REPO_SCHEMA
from seedcoder_assets.core.stats import LineageWriter

CODE = "def shared(x):\n    return x * 2\n"


@pytest.mark.parametrize(("rule", "winner"), [(SurvivorRule.stars_newest_lexical, "b/popular"),
                                              (SurvivorRule.newest_lexical, "c/recent"),
                                              (SurvivorRule.lexical, "a/first")])
def test_survivor_rule_picks_the_copy(tmp_path: Path, rule: SurvivorRule, winner: str) -> None:
    root = str(tmp_path)
    files, repos = (paths.partition_uri(root, k, "c1") for k in (["files"], ["repos"]))
    meta = {"a/first": (1, "2020-01-01"), "b/popular": (900, "2021-01-01"), "c/recent": (5, "2024-01-01")}
    with PartWriter(files, FILE_SCHEMA) as w:
        w.write_rows([{"id": file_id("c1", r, "m.py"), "crawl": "c1", "repo": r, "path": "m.py", "language": "Python",
                       "size": len(CODE), "sha256": "same", "content": CODE} for r in meta])
    with PartWriter(repos, REPO_SCHEMA) as w:
        w.write_rows([{"crawl": "c1", "repo": r, "stars": s, "pushed_at": p} for r, (s, p) in meta.items()])
    out = paths.partition_uri(root, ["out"], "c1")
    index = DedupIndex(str(tmp_path / "index"))
    stats = exact_dedup(files, repos, out, LineageWriter(root, "exact", "c1", "t"), index, [], rule, connect())
    assert read_table(out, ["repo"]).column("repo").to_pylist() == [winner]
    assert dict(stats.drops) == {"exact_dup": 2} and stats.balanced


def test_each_source_declares_its_survivor_columns() -> None:
    import duckdb

    from seedcoder_assets.core.dedup.survivor import SURVIVOR_ORDERS, SurvivorRule, survivor_order

    # The GitHub rules order exactly as they did when they were written out by hand.
    assert SurvivorRule.stars_newest_lexical.order_by() == \
        "stars DESC NULLS LAST, pushed_at DESC NULLS LAST, repo, path"
    assert SurvivorRule.lexical.order_by() == "repo, path"
    con = duckdb.connect()
    web = con.execute(f"""SELECT url FROM (VALUES ('b', '2024-01-02'), ('a', '2024-01-01'), ('c', NULL))
                          t(url, fetched_at) ORDER BY {SURVIVOR_ORDERS['web'].order_by()}""").fetchall()
    assert [r[0] for r in web] == ["b", "a", "c"]  # the latest fetch survives; undated pages last
    commits = con.execute(f"""SELECT commit FROM (VALUES ('a-fork', '2024-02-01', 'y'), ('z-origin', '2024-01-01', 'x'))
                              t(repo, committed_at, commit) ORDER BY {SURVIVOR_ORDERS['commits'].order_by()}""")
    assert [r[0] for r in commits.fetchall()] == ["x", "y"]  # the earliest commit, whatever the fork is called
    assert survivor_order("web") is SURVIVOR_ORDERS["web"]
    assert survivor_order("github", SurvivorRule.lexical).order_by() == "repo, path"
