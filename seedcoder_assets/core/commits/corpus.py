"""A commit crawl, landed, to code-change samples: the two per-shard stages of the commits corpus.

A commit crawl is a folder `<commits landing>/<crawl>/` with `git_repos.jsonl` (written last) and the
repositories it names, each a git bundle or a bare mirror folder:

    {"name": "spf13/cobra", "git": "spf13+cobra.bundle", "stars": 39000, "forks": 2900, "license": "Apache-2.0"}

`select_repos` reads each repository's history (commit count, first and last commit; no diff) and keeps
those the selection rule passes (core/commits/select.py); `extract_samples` turns every commit of the kept
repositories into a sample or a named drop. Records: a repository's lineage id is its name; a commit's is
`<repo>@<sha>` (a fork and its upstream share commits, so the sha alone would not be one record).
Re-crawling is incremental: a commit whose sha has a lineage row in an earlier commit crawl (of any
repository: forks share history) is dropped as `seen_in_earlier_crawl` before any diff is computed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pygit2
from pydantic import BaseModel

from seedcoder_assets.core import object_store
from seedcoder_assets.core.commits.context import SnapshotIndex
from seedcoder_assets.core.commits.filters import CommitFilters, commit_rejection
from seedcoder_assets.core.commits.history import BadRepository, iter_commits, open_repository
from seedcoder_assets.core.commits.sample import SampleBudget, build_sample
from seedcoder_assets.core.commits.select import RepoHistory, RepoSelection, rejection
from seedcoder_assets.core.dedup.index import PriorCrawlsNotIndexed
from seedcoder_assets.core.ingest.archives import safe_member_path
from seedcoder_assets.core.parquet_io import PartWriter, duckdb_source, is_complete, read_table
from seedcoder_assets.core.stats import LineageWriter, StageStats

COMMITS_MANIFEST = "git_repos.jsonl"

COMMIT_REPO_SCHEMA = pa.schema([
    ("crawl", pa.string()), ("repo", pa.string()), ("git", pa.string()), ("stars", pa.int64()),
    ("forks", pa.int64()), ("license", pa.string()), ("commits", pa.int64()),
    ("first_commit_at", pa.int64()), ("last_commit_at", pa.int64()), ("head", pa.string()),
])

# One row per kept commit. No author names or e-mails: the corpus needs none, and they are personal data.
COMMIT_SAMPLE_SCHEMA = pa.schema([
    ("id", pa.string()), ("crawl", pa.string()), ("repo", pa.string()), ("commit", pa.string()),
    ("parent", pa.string()), ("committed_at", pa.int64()), ("message", pa.string()), ("language", pa.string()),
    ("n_files", pa.int32()), ("additions", pa.int64()), ("deletions", pa.int64()),
    ("changed_paths", pa.list_(pa.string())), ("retrieved_paths", pa.list_(pa.string())),
    ("changed_in_snapshot", pa.int32()), ("changed_retrieved", pa.int32()), ("readme_path", pa.string()),
    ("patch_hash", pa.string()), ("prompt_chars", pa.int64()), ("size", pa.int64()), ("text", pa.large_string()),
])


class CommitSampleParams(BaseModel, frozen=True):
    filters: CommitFilters = CommitFilters()
    budget: SampleBudget = SampleBudget()
    max_file_bytes: int = 1_000_000  # a file over this in a commit: no patch is built, the commit is dropped


def commit_id(repo: str, sha: str) -> str:
    return f"{repo}@{sha}"


def parse_commit_manifest_line(line: str) -> tuple[dict[str, Any] | None, str | None]:
    """One manifest line -> (entry with `repo` and `archive` like a code crawl's, None) or (None, reason)."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return None, "bad_manifest_json"
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not isinstance(obj.get("git"), str):
        return None, "bad_manifest_fields"
    name = obj["name"].strip()
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return None, "bad_manifest_fields"
    if not name or "@" in name or not name.isprintable() or name.startswith("manifest:"):
        # `@` separates a commit's repository and sha; `manifest:N` names a manifest line in the lineage
        return None, "bad_manifest_fields"
    git = safe_member_path(obj["git"].rstrip("/"))
    if git is None or git == ".":
        return None, "unsafe_path"
    entry: dict[str, Any] = {"repo": name, "archive": git}
    for key in ("stars", "forks"):
        value = obj.get(key)
        entry[key] = int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    licence = obj.get("license")
    entry["license"] = str(licence).encode("utf-8", "backslashreplace").decode() if licence is not None else None
    return entry, None


def manifest_entries(crawl_uri: str, lines: frozenset[int] | None = None
                     ) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """(line number, entry, reason) of every non-blank manifest line, or of those in `lines` (a shard's)."""
    text = object_store.read_text(f"{crawl_uri.rstrip('/')}/{COMMITS_MANIFEST}")
    for number, line in enumerate(text.lstrip("\ufeff").splitlines(), 1):
        if line.strip() and (lines is None or number in lines):
            yield (number, *parse_commit_manifest_line(line))


def local_repository(crawl_uri: str, git: str, work: str | Path) -> pygit2.Repository:
    """The repository `git` of a crawl opened in place, or copied from S3 into `work` first."""
    src = f"{crawl_uri.rstrip('/')}/{git}"
    if object_store.is_s3(src):
        dest = Path(work) / "landed" / git
        if not dest.exists():
            fs, path = object_store.resolve(src)
            kind = fs.get_file_info(path).type
            if kind == pafs.FileType.NotFound:
                raise FileNotFoundError(src)
            (object_store.copy_file if kind == pafs.FileType.File else object_store.copy_tree)(src, str(dest))
        src = str(dest)
    elif not Path(src).exists():
        raise FileNotFoundError(src)
    # a bundle is cloned bare once per work folder, under a name no other repository of the crawl shares
    return open_repository(src, Path(work) / "bare" / hashlib.sha1(git.encode()).hexdigest()[:16])


def history_of(repo: pygit2.Repository) -> tuple[RepoHistory, list[str]]:
    """Commit count, first and last committer time on HEAD, and the shas oldest first; no diff read."""
    shas, times = [], []
    try:
        for c in repo.walk(repo.head.target, pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.REVERSE):
            shas.append(str(c.id))
            times.append(c.commit_time)
    except pygit2.GitError as exc:
        raise BadRepository(f"{repo.path}: history walk stopped after {len(shas)} commits: {exc}") from exc
    return RepoHistory(len(shas), min(times, default=0), max(times, default=0)), shas


def select_repos(crawl: str, crawl_uri: str, dst_uri: str, lineage: LineageWriter, rule: RepoSelection,
                 work: str | Path, lines: frozenset[int] | None = None) -> StageStats:
    """The repositories of a crawl (or of one shard's manifest lines) that the selection rule keeps."""
    seen: set[str] = set()
    with PartWriter(dst_uri, COMMIT_REPO_SCHEMA) as out:
        for number, entry, reason in manifest_entries(crawl_uri, lines):
            if entry is None:
                lineage.dropped(f"manifest:{number}", reason or "bad_manifest_fields", detail=f"manifest line {number}")
                continue
            name = entry["repo"]
            if name in seen:
                lineage.dropped(f"manifest:{number}", "duplicate_repo", detail=f"{name}, manifest line {number}")
                continue
            seen.add(name)
            try:
                repo = local_repository(crawl_uri, entry["archive"], work)
                history, _ = history_of(repo)
            except FileNotFoundError:
                lineage.dropped(name, "missing_repository", detail=entry["archive"])
                continue
            except BadRepository as exc:
                lineage.dropped(name, "bad_repository", detail=str(exc)[:500])
                continue
            why = rejection(entry["stars"], entry["forks"], history, rule)
            if why is not None:
                lineage.dropped(name, why, detail=f"{history.commits} commits, {history.days:.0f} days")
                continue
            lineage.kept(name, detail=f"{history.commits} commits, {history.days:.0f} days")
            out.write_rows([{"crawl": crawl, "repo": name, "git": entry["archive"], "stars": entry["stars"],
                             "forks": entry["forks"], "license": entry["license"], "commits": history.commits,
                             "first_commit_at": history.first_commit_at, "last_commit_at": history.last_commit_at,
                             "head": str(repo.head.target)}])
    stats = lineage.close()
    stats.extra["repos_kept"] = stats.rows_out
    return stats


# Drops that say nothing about the commit itself, only about the copy a crawl had: a later, sound copy of the
# repository gets the commit processed again.
NOT_DECIDED = ("missing_object", "shallow_boundary", "history_unreadable", "repository_unreadable",
               "unreadable_snapshot")


def seen_before(candidates: Sequence[str], prior_lineage: Sequence[tuple[str, str]], conn: Any) -> set[str]:
    """The shas among `candidates` that an earlier commit crawl (crawl, its lineage URI) decided (a semi-join
    in DuckDB: memory follows this shard's commits, not the history's). Every earlier crawl must be
    complete, or whether a commit is new would depend on which run finished first."""
    missing = [crawl for crawl, uri in prior_lineage if not is_complete(uri)]
    if missing:
        raise PriorCrawlsNotIndexed("commit_samples lineage", missing)
    if not candidates or not prior_lineage:
        return set()
    conn.register("candidates", pa.table({"sha": pa.array(sorted(set(candidates)), pa.string())}))
    skip = ", ".join(f"'{r}'" for r in NOT_DECIDED)
    union = " UNION ALL ".join(f"SELECT split_part(id, '@', 2) AS sha FROM {duckdb_source(u)} "
                               f"WHERE reason IS NULL OR reason NOT IN ({skip})" for _, u in prior_lineage)
    rows = conn.execute(f"SELECT DISTINCT p.sha FROM ({union}) p SEMI JOIN candidates c USING (sha)").fetchall()
    conn.unregister("candidates")
    return {r[0] for r in rows}


def _sample_row(crawl: str, repo_name: str, commit, sample) -> dict[str, Any]:
    return {"id": commit_id(repo_name, commit.sha), "crawl": crawl, "repo": repo_name, "commit": commit.sha,
            "parent": commit.parents[0] if commit.parents else None, "committed_at": commit.committed_at,
            "message": commit.message.strip(), "language": sample.language, "n_files": len(commit.files),
            "additions": sum(f.additions for f in commit.files), "deletions": sum(f.deletions for f in commit.files),
            "changed_paths": [f.path for f in commit.files], "retrieved_paths": list(sample.retrieved),
            "changed_in_snapshot": sample.changed_in_snapshot, "changed_retrieved": sample.changed_retrieved,
            "readme_path": sample.readme_path, "patch_hash": sample.patch_hash, "prompt_chars": sample.prompt_chars,
            "size": len(sample.text.encode()), "text": sample.text}


def extract_samples(crawl: str, crawl_uri: str, repos_uri: str, dst_uri: str, lineage: LineageWriter,
                    filters: CommitFilters, budget: SampleBudget, prior_lineage: Sequence[tuple[str, str]], conn: Any,
                    work: str | Path, max_file_bytes: int = 1_000_000) -> StageStats:
    """Every commit of the selected repositories -> a sample, or a lineage row with its one reason."""
    repos = read_table(repos_uri, ["repo", "git"]).to_pylist()
    histories: dict[str, list[str]] = {}
    for r in repos:  # pass 1: which commits there are (cheap), to ask the earlier crawls about them at once
        try:
            histories[r["repo"]] = history_of(local_repository(crawl_uri, r["git"], work))[1]
        except (FileNotFoundError, BadRepository) as exc:  # gone since selection: one record says so
            lineage.dropped(commit_id(r["repo"], ""), "repository_unreadable", detail=str(exc)[:500])
    seen = seen_before([s for shas in histories.values() for s in shas], prior_lineage, conn)
    retrieved = in_snapshot = unreadable_blobs = 0
    git = {r["repo"]: r["git"] for r in repos}
    pending: list[dict[str, Any]] = []  # written 256 at a time: a row group per sample would bloat the footer
    with PartWriter(dst_uri, COMMIT_SAMPLE_SCHEMA, rows_per_part=20_000) as out:
        for name, shas in histories.items():
            repo = local_repository(crawl_uri, git[name], work)  # one repository open at a time
            for sha in shas:
                if sha in seen:
                    lineage.dropped(commit_id(name, sha), "seen_in_earlier_crawl")
            index = SnapshotIndex(repo)
            done = set(seen)
            try:
                for commit in iter_commits(repo, skip=seen, max_file_bytes=max_file_bytes, max_files=filters.max_files,
                                           max_patch_bytes=filters.max_patch_bytes):
                    done.add(commit.sha)
                    cid = commit_id(name, commit.sha)
                    reason = commit_rejection(commit, filters)
                    sample = None
                    if reason is None:
                        try:
                            sample = build_sample(repo, commit, index, budget)
                        except Exception as exc:  # a corrupt snapshot costs this commit, never the partition
                            index.reset()
                            lineage.dropped(cid, "unreadable_snapshot", detail=f"{type(exc).__name__}: {exc}"[:300])
                            continue
                        reason = None if sample is not None else "sample_over_budget"
                    if reason is not None:
                        lineage.dropped(cid, reason)
                        continue
                    row = _sample_row(crawl, name, commit, sample)
                    pending.append(row)
                    if len(pending) >= 256:
                        out.write_rows(pending)
                        pending = []
                    lineage.kept(cid, row["size"])
                    lineage.stats.languages[sample.language or "(none)"] += 1
                    retrieved += sample.changed_retrieved
                    in_snapshot += sample.changed_in_snapshot
            except BadRepository as exc:  # the walk broke off: the commits it did not reach are one record
                missing = [s for s in shas if s not in done]
                for sha in missing:
                    lineage.dropped(commit_id(name, sha), "history_unreadable", detail=str(exc)[:300])
            unreadable_blobs += index.unreadable
            del index, repo
        out.write_rows(pending)
    shutil.rmtree(Path(work) / "bare", ignore_errors=True)
    stats = lineage.close()
    stats.extra.update({"repos": len(repos), "commits_seen_before": len(seen),
                        "snapshot_blobs_unreadable": unreadable_blobs,
                        "changed_files_in_snapshot": in_snapshot, "changed_files_retrieved": retrieved,
                        "retrieval_recall": round(retrieved / in_snapshot, 4) if in_snapshot else None})
    return stats
