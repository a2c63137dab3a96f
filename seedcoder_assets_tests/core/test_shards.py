"""Shards of a landed crawl: the plan owns every manifest line once, stays within its byte budget, and the
shards' ingests add up to the unsharded ingest, record for record (a real crawl plus bad lines)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from seedcoder_assets.core import paths
from seedcoder_assets.core.ingest.archives import ExtractParams
from seedcoder_assets.core.ingest.crawl import CrawlIngest, ShardSelection
from seedcoder_assets.core.ingest.shards import ShardPlan, plan_shards
from seedcoder_assets.core.stats import LineageWriter


def _with_bad_lines(small_crawl: Path, dest: Path) -> Path:
    """The small real crawl (archives linked) with a repeated repository, a missing archive and unreadable lines."""
    dest.mkdir(parents=True)
    for archive in small_crawl.iterdir():
        if archive.name != "repos.jsonl":
            (dest / archive.name).symlink_to(archive)
    lines = (small_crawl / "repos.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    lines[3:3] = ["{not json", json.dumps({"name": "gone/repo", "archive": "missing.tar.gz"})]
    lines += ["", json.dumps(first), json.dumps({"archive": "no-name.tar.gz"})]
    (dest / "repos.jsonl").write_text("\n".join(lines) + "\n")
    return dest


def _ingest(crawl_dir: Path, lake: Path, crawl: str, shard: ShardSelection | None) -> tuple[pl.DataFrame, ...]:
    files = paths.partition_uri(str(lake), ["ingest", "raw_repo_files"], crawl)
    repos = paths.partition_uri(str(lake), ["ingest", "crawl_repos"], crawl)
    CrawlIngest(crawl, str(crawl_dir), files, repos, LineageWriter(str(lake), "ingest", crawl, "t"), ExtractParams(),
                shard=shard).run()
    return (pl.read_parquet(files + "/*.parquet"), pl.read_parquet(repos + "/*.parquet"),
            pl.read_parquet(paths.lineage_uri(str(lake), "ingest", crawl) + "/*.parquet"))


def _manifest_lines(crawl: Path) -> set[int]:
    return {n for n, line in enumerate((crawl / "repos.jsonl").read_text().splitlines(), 1) if line.strip()}


@pytest.mark.parametrize(("shards", "shard_bytes"), [(1, 1 << 40), (3, 1 << 40), (4, 400_000), (2, 1)])
def test_the_plan_owns_every_line_once_within_its_budget(small_crawl: Path, tmp_path: Path, shards: int,
                                                         shard_bytes: int) -> None:
    crawl = _with_bad_lines(small_crawl, tmp_path / "c")
    plan = plan_shards("c", str(crawl), shards, shard_bytes)
    owned = [n for p in plan.parts for s in p.shards for n in s.lines]
    assert Counter(owned) == Counter(_manifest_lines(crawl))  # every non-blank line, once
    assert all(len(p.shards) == shards for p in plan.parts)
    assert [p.key for p in plan.parts] == ["c"] + [f"c.p{n:02d}" for n in range(1, len(plan.parts))]
    sizes = {json.loads(x)["archive"]: (crawl / json.loads(x)["archive"]).stat().st_size
             for x in (small_crawl / "repos.jsonl").read_text().splitlines()}
    for p in plan.parts:
        total = sum(s.bytes for s in p.shards)
        largest = max((sizes.get(a, 0) for a in sizes), default=0)
        assert total <= shards * shard_bytes or total <= largest  # over budget only by one repository alone
        mean = total / shards
        assert max(s.bytes for s in p.shards) <= mean + largest  # longest-processing-time bound
    if shard_bytes == 1:  # every repository its own part
        assert len(plan.parts) >= len(sizes)
    again = plan_shards("c", str(crawl), shards, shard_bytes)
    assert again == plan and ShardPlan.from_json(plan.to_json()) == plan


def test_the_shards_ingest_what_the_whole_crawl_ingests(small_crawl: Path, tmp_path: Path) -> None:
    crawl = _with_bad_lines(small_crawl, tmp_path / "c")
    whole_files, whole_repos, whole_lineage = _ingest(crawl, tmp_path / "whole", "c", None)
    plan = plan_shards("c", str(crawl), 3, 1 << 40)
    assert len(plan.parts) == 1 and all(s.lines for s in plan.parts[0].shards)
    parts = [_ingest(crawl, tmp_path / f"shard{n}", "c", plan.selection("c", n)) for n in range(3)]
    files = pl.concat([p[0] for p in parts])
    repos = pl.concat([p[1] for p in parts])
    lineage = pl.concat([p[2] for p in parts])
    assert sorted(files["id"].to_list()) == sorted(whole_files["id"].to_list())
    assert sorted(repos["repo"].to_list()) == sorted(whole_repos["repo"].to_list())
    rows = ["id", "decision", "reason"]
    assert sorted(lineage.select(rows).rows(), key=str) == sorted(whole_lineage.select(rows).rows(), key=str)
    reasons = Counter(lineage["reason"].drop_nulls().to_list())
    assert {"duplicate_repo", "missing_archive", "bad_manifest_json", "bad_manifest_fields"} <= set(reasons)
    assert all(p[0].height for p in parts)  # the real crawl's three shards all hold files


def test_a_parquet_crawl_is_sharded_by_repository(tmp_path: Path) -> None:
    crawl = tmp_path / "pq"
    crawl.mkdir()
    repos = [f"org{i}/repo{i}" for i in range(40)]
    pq.write_table(pa.table({
        "repo_name": [*repos, *repos, None, "org1/repo1"],
        "path": [*(f"m{i}.py" for i in range(40)), *(f"n{i}.py" for i in range(40)), "x.py", "../up.py"],
        "content": [f"x = {i}\n" for i in range(82)],
    }), crawl / "part-0.parquet")
    whole_files, whole_repos, whole_lineage = _ingest(crawl, tmp_path / "whole", "pq", None)
    plan = plan_shards("pq", str(crawl), 4, 1 << 30)
    parts = [_ingest(crawl, tmp_path / f"s{n}", "pq", plan.selection("pq", n)) for n in range(4)]
    assert sorted(pl.concat([p[0] for p in parts])["id"].to_list()) == sorted(whole_files["id"].to_list())
    per_shard = [set(p[1]["repo"].to_list()) for p in parts]
    assert sum(len(s) for s in per_shard) == whole_repos.height == 40 and all(per_shard)  # each repo once
    rows = ["id", "decision", "reason"]
    lineage = pl.concat([p[2] for p in parts])
    assert sorted(lineage.select(rows).rows(), key=str) == sorted(whole_lineage.select(rows).rows(), key=str)
