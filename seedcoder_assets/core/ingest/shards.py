"""Cutting a landed crawl into shards of bounded bytes, once, when it is registered.

A deployment has a fixed number of shard slots per crawl partition (`shards`, the static shard dimension of
the crawl x shard partitions, docs/shards.md). A landing bigger than `shards x shard_bytes` becomes several
crawl partitions (*parts*: `<crawl>`, `<crawl>.p01`, ...), in manifest order, each at most that size
(a repository is never split). Within a part, repositories go to the lightest shard, largest first
(longest-processing-time: no shard exceeds the mean by more than the largest repository).

The plan owns every manifest line exactly once: a repository's line goes to its shard, a repeated
repository's line to the shard of its first occurrence (which then drops it as `duplicate_repo`, as an
unsharded ingest does), and an unreadable line to the first shard of the first part (which counts it).
It is written next to the lake at registration and never changes, so every run of a shard reads the same
lines (core/ingest/crawl.py: `CrawlIngest(lines=...)`).
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow.fs as pafs

from seedcoder_assets.core.ingest.archives import safe_member_path
from seedcoder_assets.core.ingest.crawl import MANIFEST, ShardSelection, parse_manifest_line
from seedcoder_assets.core.object_store import resolve

PLAN_VERSION = 1
PART_SEPARATOR = ".p"


@dataclass(frozen=True)
class Shard:
    lines: tuple[int, ...]  # manifest line numbers (1-based) this shard reads
    bytes: int  # archive bytes of its repositories


@dataclass(frozen=True)
class Part:
    key: str  # the crawl partition key
    shards: tuple[Shard, ...]  # exactly the deployment's number of shard slots (some may be empty)


@dataclass(frozen=True)
class ShardPlan:
    crawl: str  # the landed crawl's name
    shards: int
    shard_bytes: int
    parts: tuple[Part, ...]
    by: str = "lines"  # "lines": manifest lines (archives crawl); "repo_hash": a hash of the repository name
    version: int = PLAN_VERSION

    def part(self, key: str) -> Part:
        for p in self.parts:
            if p.key == key:
                return p
        raise KeyError(f"{key} is not a part of crawl {self.crawl}")

    def selection(self, key: str, shard: int) -> ShardSelection:
        """What shard `shard` of part `key` ingests."""
        if not 0 <= shard < self.shards:
            raise KeyError(f"shard {shard} of {self.shards}")
        if self.by == "repo_hash":
            return ShardSelection(repo_hash=(shard, self.shards))
        return ShardSelection(lines=frozenset(self.part(key).shards[shard].lines))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ShardPlan:
        d = json.loads(text)
        if d.get("version") != PLAN_VERSION:
            raise ValueError(f"shard plan version {d.get('version')} (this code reads {PLAN_VERSION})")
        parts = tuple(Part(p["key"], tuple(Shard(tuple(s["lines"]), s["bytes"]) for s in p["shards"]))
                      for p in d["parts"])
        return cls(d["crawl"], d["shards"], d["shard_bytes"], parts, d["by"], d["version"])


def part_key(crawl: str, number: int) -> str:
    return crawl if number == 0 else f"{crawl}{PART_SEPARATOR}{number:02d}"


def balance(sizes: list[tuple[str, int, list[int]]], shards: int) -> tuple[Shard, ...]:
    """Repositories (name, bytes, their manifest lines) -> `shards` shards, largest first into the lightest
    (ties: by name, then by shard number), each shard's lines in manifest order."""
    heap = [(0, s) for s in range(shards)]
    owned: list[list[int]] = [[] for _ in range(shards)]
    load = [0] * shards
    for _, size, lines in sorted(sizes, key=lambda r: (-r[1], r[0])):
        total, s = heapq.heappop(heap)
        owned[s] += lines
        load[s] = total + size
        heapq.heappush(heap, (load[s], s))
    return tuple(Shard(tuple(sorted(o)), b) for o, b in zip(owned, load))


ParseLine = Callable[[str], tuple[dict[str, Any] | None, str | None]]


def manifest_of(source: str) -> tuple[str, ParseLine]:
    """A source's manifest file and line parser (entries name `repo` and `archive`)."""
    if source == "commits":
        from seedcoder_assets.core.commits.corpus import COMMITS_MANIFEST, parse_commit_manifest_line

        return COMMITS_MANIFEST, parse_commit_manifest_line
    if source == "web":  # each WARC file is a unit (`warc.paths`, one relative path per line)
        from seedcoder_assets.core.web.pages import PATHS_MANIFEST, parse_warc_path_line

        return PATHS_MANIFEST, parse_warc_path_line
    return MANIFEST, parse_manifest_line


def _sizes(fs: pafs.FileSystem, root: str) -> dict[str, int]:
    """Bytes under every file and folder of a landed crawl (a bare mirror is a folder), from one recursive
    listing (on S3 a request per 1,000 objects), not a request per repository."""
    size: dict[str, int] = {}
    for i in fs.get_file_info(pafs.FileSelector(root, recursive=True)):
        if i.type != pafs.FileType.File:
            continue
        rel = i.path[len(root) + 1:]
        size[rel] = i.size or 0
        while "/" in rel:
            rel = rel.rsplit("/", 1)[0]
            size[rel] = size.get(rel, 0) + (i.size or 0)
    return size


def plan_shards(crawl: str, crawl_uri: str, shards: int, shard_bytes: int, source: str = "github") -> ShardPlan:
    """The shard plan of a landed crawl. An archives crawl (`repos.jsonl` plus archives; a commit crawl:
    `git_repos.jsonl` plus bundles or mirrors) is cut by its repositories' sizes (one listing, nothing
    read; a missing one weighs nothing, its stage drops it with its reason). A Parquet crawl is one part
    whose rows go to shards by a hash of their repository (each shard reads every file; land a larger one
    as several crawls)."""
    if shards < 1 or shard_bytes < 1:
        raise ValueError("shards and shard_bytes must be positive")
    manifest, parse = manifest_of(source)
    fs, root = resolve(crawl_uri.rstrip("/"))
    if fs.get_file_info(f"{root}/{manifest}").type != pafs.FileType.File:  # a Parquet crawl: one part
        files = [i for i in fs.get_file_info(pafs.FileSelector(root)) if i.base_name.endswith(".parquet")]
        total = sum(i.size or 0 for i in files)
        return ShardPlan(crawl, shards, shard_bytes,
                         (Part(crawl, tuple(Shard((), total // shards) for _ in range(shards))),), by="repo_hash")
    with fs.open_input_stream(f"{root}/{manifest}") as f:  # as ingest reads it (a byte-order mark is fine)
        lines = f.read().decode("utf-8-sig", errors="replace").splitlines()
    repos: dict[str, tuple[str | None, list[int]]] = {}  # name -> (archive, lines), in manifest order
    unreadable: list[int] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        entry, _ = parse(line)
        if entry is None:
            unreadable.append(number)
            continue
        repos.setdefault(entry["repo"], (safe_member_path(entry["archive"]), []))[1].append(number)
    size = _sizes(fs, root)
    budget = shards * shard_bytes
    parts: list[list[tuple[str, int, list[int]]]] = [[]]
    used = 0
    for name, (archive, numbers) in repos.items():
        b = size.get(archive, 0) if archive else 0
        if parts[-1] and used + b > budget:  # a new part; a repository is never split
            parts.append([])
            used = 0
        parts[-1].append((name, b, numbers))
        used += b
    built = []
    for n, members in enumerate(parts):
        cut = list(balance(members, shards))
        if n == 0 and unreadable:
            cut[0] = Shard(tuple(sorted(cut[0].lines + tuple(unreadable))), cut[0].bytes)
        built.append(Part(part_key(crawl, n), tuple(cut)))
    return ShardPlan(crawl, shards, shard_bytes, tuple(built))


# -- where plans live: `<lake>/_shards/<crawl partition>.json` (another source's: `_shards/<source>/...`),
# written at registration, never changed ----------
def plan_uri(lake_root: str, partition: str, source: str = "github") -> str:
    where = "_shards" if source == "github" else f"_shards/{source}"
    return f"{lake_root.rstrip('/')}/{where}/{partition}.json"


def save_plan(lake_root: str, plan: ShardPlan, source: str = "github") -> None:
    """One copy per part, named by its crawl partition (a part finds its plan without parsing its key)."""
    for part in plan.parts:
        fs, path = resolve(plan_uri(lake_root, part.key, source))
        fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        with fs.open_output_stream(path) as out:
            out.write(plan.to_json().encode())


def load_plan(lake_root: str, partition: str, source: str = "github") -> ShardPlan | None:
    fs, path = resolve(plan_uri(lake_root, partition, source))
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(path) as f:
        return ShardPlan.from_json(f.read().decode())


def plan_for(lake_root: str, landing_root: str, partition: str, shards: int, shard_bytes: int,
             source: str = "github") -> ShardPlan:
    """The plan of a crawl partition: the one written at registration, or (a partition added by hand in the
    UI) the landed crawl of that name planned now and saved. Every shard computes the same plan, so
    shards that start together write the same file."""
    plan = load_plan(lake_root, partition, source)
    if plan is None:
        plan = plan_shards(partition, f"{landing_root.rstrip('/')}/{partition}", shards, shard_bytes, source)
        save_plan(lake_root, plan, source)
    if plan.shards != shards:
        raise ValueError(f"crawl partition {partition} was cut into {plan.shards} shards, this deployment has "
                         f"{shards} (SEEDCODER_SHARDS): set it back, or re-register the crawl under a new name")
    return plan
