"""The landing area: which crawls have fully landed, whether their manifests are sound, and what is new.

A crawl is a folder `<landing>/<crawl>/`. It has landed when its manifest is there: `repos.jsonl`
(archives crawl; uploaders write it last) or `_READY` (Parquet crawl); a commit crawl, in its own landing
root, when `git_repos.jsonl` is. Folders without one are still uploading and are looked at again on the
next tick.
"""

from __future__ import annotations

import codecs
import itertools
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow.fs as pafs

from seedcoder_assets.core.ingest.crawl import MANIFEST
from seedcoder_assets.core.object_store import list_dirs, resolve

READY_MARKER = "_READY"
CRAWL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
MANIFEST_PROBE_LINES = 1_000  # a manifest is judged on its head: ingest itself counts every bad line
REGISTERED = "registered"


@dataclass(frozen=True)
class LandedCrawl:
    name: str
    manifest: str  # path within the landing filesystem
    fingerprint: str  # size and mtime of the manifest: a changed manifest is looked at again


def _markers(source: str) -> tuple[str, ...]:
    """The files whose presence says a crawl of `source` has landed (uploaders write them last)."""
    if source == "commits":
        from seedcoder_assets.core.commits.corpus import COMMITS_MANIFEST

        return (COMMITS_MANIFEST,)
    if source == "web":
        from seedcoder_assets.core.web.pages import PATHS_MANIFEST

        return (PATHS_MANIFEST,)
    return (MANIFEST, READY_MARKER)


def _landed(fs: pafs.FileSystem, root: str, name: str, source: str = "github") -> LandedCrawl | None:
    for marker in _markers(source):
        info = fs.get_file_info(f"{root}/{name}/{marker}")
        if info.type == pafs.FileType.File:
            mtime = info.mtime.timestamp() if info.mtime else 0
            return LandedCrawl(name, info.path, f"{info.size}:{mtime:.0f}")
    return None


def landed_crawls(landing_root: str, skip: frozenset[str] = frozenset(), workers: int = 16,
                  source: str = "github") -> list[LandedCrawl]:
    """Crawls whose manifest has landed, except those in `skip` (already decided: no I/O for them).

    One listing, then one metadata request per undecided folder, `workers` at a time (on S3 each
    is a round trip).
    """
    fs, root = resolve(landing_root)
    names = [n for n in list_dirs(landing_root) if n not in skip]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return [c for c in pool.map(lambda n: _landed(fs, root, n, source), names) if c is not None]


def crawl_name_problem(name: str) -> str | None:
    """Why `name` cannot be a crawl partition (it becomes a folder name under every asset), or None."""
    if not CRAWL_NAME.match(name) or ".." in name:
        return f"crawl name {name!r} is not a valid partition key (letters, digits, '.', '_', '-'; ≤100; no '..')"
    return None


def manifest_problem(landing_root: str, crawl: LandedCrawl, source: str = "github") -> str | None:
    """Why a landed crawl must not be registered, or None when it is sound."""
    from seedcoder_assets.core.ingest.shards import manifest_of

    if problem := crawl_name_problem(crawl.name):
        return problem
    manifest, parse = manifest_of(source)
    fs, root = resolve(landing_root)
    if crawl.manifest.endswith(READY_MARKER):
        parts = [i for i in fs.get_file_info(pafs.FileSelector(f"{root}/{crawl.name}"))
                 if i.base_name.endswith(".parquet") and i.size]
        return None if parts else f"{READY_MARKER} is present but there is no non-empty .parquet file"
    reasons: Counter[str] = Counter()
    valid = 0
    try:
        with fs.open_input_stream(crawl.manifest) as handle:  # the head only; a cut character is fine
            head = codecs.getincrementaldecoder("utf-8")().decode(handle.read(4 << 20), final=False)
    except UnicodeDecodeError:
        return f"{manifest} is not UTF-8 text"
    for line in itertools.islice((x for x in head.splitlines() if x.strip()), MANIFEST_PROBE_LINES):
        entry, reason = parse(line)
        if entry is None:
            reasons[reason or "bad_line"] += 1
        else:
            valid += 1
    if valid:
        return None
    if not reasons:
        return f"{manifest} is empty"
    detail = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
    if source == "web":
        return f"{manifest} lists no WARC file by a relative path in its first lines: {detail}"
    needs = "'name' and 'git'" if source == "commits" else "'name' and 'archive'"
    return f"{manifest} has no valid repository entry (needs {needs}) in its first lines: {detail}"


@dataclass
class TickPlan:
    """What one sensor tick does: crawls to register (and run), things to report, the next cursor."""

    register: list[str] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)
    cursor: dict[str, str] = field(default_factory=dict)


def plan_tick(landing_root: str, cursor: dict[str, str], registered: set[str], max_new: int = 500,
              workers: int = 16, source: str = "github") -> TickPlan:
    """Decide each newly landed crawl once, at most `max_new` per tick (the rest on the next ticks,
    so a first tick over a large landing area stays within the sensor's time limit).

    The cursor maps a crawl to `registered` (never looked at again) or to the fingerprint of a
    rejected manifest (looked at again only when the manifest changes, e.g. after a fix).
    """
    plan = TickPlan(cursor=dict(cursor))
    done = frozenset(c for c, state in cursor.items() if state == REGISTERED)
    undecided = [c for c in landed_crawls(landing_root, done, workers, source)
                 if cursor.get(c.name) != c.fingerprint]
    undecided = undecided[:max_new]  # rejected before and unchanged ones were dropped: reported once is enough
    fresh = [c for c in undecided if c.name not in registered]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        problems = dict(zip((c.name for c in fresh),
                            pool.map(lambda c: manifest_problem(landing_root, c, source), fresh)))
    for crawl in undecided:
        if crawl.name in registered:
            plan.reports.append(f"{crawl.name}: already registered (not registered twice)")
            plan.cursor[crawl.name] = REGISTERED
        elif problems[crawl.name]:
            plan.reports.append(f"{crawl.name}: malformed, not registered: {problems[crawl.name]}")
            plan.cursor[crawl.name] = crawl.fingerprint
        else:
            plan.register.append(crawl.name)
            plan.cursor[crawl.name] = REGISTERED
    return plan
