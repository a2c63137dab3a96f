"""A landed crawl (archives + `repos.jsonl`, or Parquet files of rows) -> file rows and repo rows."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from seedcoder_assets.core.ingest.archives import (
    ARCHIVE_DATA_ERRORS,
    CorruptArchive,
    ExtractParams,
    FileRow,
    Member,
    file_id,
    open_archive,
    safe_member_path,
    strip_common_root,
    to_row,
)
from seedcoder_assets.core.ingest.notebooks import is_notebook, without_outputs
from seedcoder_assets.core.object_store import resolve
from seedcoder_assets.core.parquet_io import PartWriter
from seedcoder_assets.core.schemas import FILE_SCHEMA, REPO_SCHEMA
from seedcoder_assets.core.stats import LineageWriter, StageStats

MANIFEST = "repos.jsonl"
ARCHIVE_READ_BUFFER = 8 << 20
_INT_FIELDS = ("stars", "forks", "commits")
_STR_FIELDS = ("license", "created_at", "pushed_at")


def parse_manifest_line(line: str) -> tuple[dict[str, Any] | None, str | None]:
    """One manifest line -> (repo entry, None) or (None, reason). Needs `name` and `archive`."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return None, "bad_manifest_json"
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not isinstance(obj.get("archive"), str):
        return None, "bad_manifest_fields"
    if not (_is_text(obj["name"]) and _is_text(obj["archive"])):  # JSON may escape lone surrogates
        return None, "bad_manifest_fields"
    entry: dict[str, Any] = {"repo": obj["name"], "archive": obj["archive"]}
    for key in _INT_FIELDS:
        value = obj.get(key)
        entry[key] = int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    for key in _STR_FIELDS:
        value = obj.get(key)
        entry[key] = str(value).encode("utf-8", "backslashreplace").decode() if value is not None else None
    return entry, None


def _is_text(value: str) -> bool:
    """True when `value` is valid Unicode text (no lone surrogates), so it can be hashed and stored."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return bool(value)


@dataclass(frozen=True)
class ShardSelection:
    """Which part of a landed crawl one shard ingests (core/ingest/shards.py plans it): the manifest lines of
    an archives crawl, or, for a Parquet crawl, the repositories whose name hashes to this shard."""

    lines: frozenset[int] | None = None
    repo_hash: tuple[int, int] | None = None  # (this shard, shards)

    def takes_line(self, number: int) -> bool:
        return self.lines is None or number in self.lines

    def takes_repo(self, repo: str) -> bool:
        return self.repo_hash is None or repo_shard(repo, self.repo_hash[1]) == self.repo_hash[0]


def repo_shard(repo: str, shards: int) -> int:
    """A stable shard of a repository name (the same on every machine and run)."""
    return int.from_bytes(hashlib.sha256(repo.encode("utf-8", "surrogatepass")).digest()[:8], "big") % shards


def repo_hash(file_hashes: list[str]) -> str:
    """Exact repository identity: hash of its sorted file hashes (paths and order do not matter)."""
    return hashlib.sha256("\n".join(sorted(file_hashes)).encode()).hexdigest()


class CrawlIngest:
    """Streams one crawl into the `raw_repo_files` and `crawl_repos` partitions.

    Kept: every archive member that is a regular, decodable UTF-8 text file within the size limit.
    Dropped with a reason: path_traversal, symlink, special_file, oversized, empty, binary,
    undecodable, duplicate_path; whole repositories: missing_archive, bad_archive; manifest lines:
    bad_manifest_json, bad_manifest_fields, duplicate_repo.
    """

    def __init__(self, crawl: str, crawl_uri: str, files_uri: str, repos_uri: str,
                 lineage: LineageWriter, params: ExtractParams, batch_rows: int = 512,
                 shard: ShardSelection | None = None) -> None:
        self.crawl, self.crawl_uri, self.params = crawl, crawl_uri.rstrip("/"), params
        self.shard = shard or ShardSelection()
        self.files = PartWriter(files_uri, FILE_SCHEMA)
        self.repos = PartWriter(repos_uri, REPO_SCHEMA)
        self.lineage = lineage
        self.batch: list[dict[str, Any]] = []
        self.batch_rows = batch_rows
        self.bad_rows = 0
        self.fs, self.root = resolve(self.crawl_uri)

    def run(self) -> StageStats:
        manifest = f"{self.root}/{MANIFEST}"
        if self.fs.get_file_info(manifest).type == pafs.FileType.File:
            self._ingest_archives(manifest)
        else:
            self._ingest_parquet()
        self._flush()
        self.files.close()
        self.repos.close()
        stats = self.lineage.close()
        stats.extra.update(repos=self.repos.rows, files_written=self.files.rows)
        return stats

    # -- archives + manifest ------------------------------------------------------------------
    def _ingest_archives(self, manifest: str) -> None:
        seen: set[str] = set()
        with self.fs.open_input_stream(manifest) as f:  # utf-8-sig: editors on Windows write a byte-order mark
            lines = f.read().decode("utf-8-sig", errors="replace").splitlines()
        for lineno, line in enumerate(lines, 1):
            if not line.strip() or not self.shard.takes_line(lineno):
                continue
            entry, reason = parse_manifest_line(line)
            if entry is None:
                self.lineage.dropped(f"manifest:{lineno}", reason, detail=line[:200])
                continue
            if entry["repo"] in seen:
                self.lineage.dropped(f"manifest:{lineno}", "duplicate_repo", detail=entry["repo"])
                continue
            seen.add(entry["repo"])
            self._ingest_repo(entry)

    def _ingest_repo(self, entry: dict[str, Any]) -> None:
        repo = entry["repo"]
        archive = safe_member_path(entry["archive"])
        repo_id = file_id(self.crawl, repo, "")
        if archive is None or self.fs.get_file_info(f"{self.root}/{archive}").type != pafs.FileType.File:
            self.lineage.dropped(repo_id, "missing_archive", detail=f"{repo}: {entry['archive']}")
            return
        members: list[Member] = []
        try:  # one repository's members at a time: memory is bounded by max repo size, not crawl size
            for member in open_archive(self.fs, f"{self.root}/{archive}", self.params):
                if member.data and is_notebook(member.path):  # outputs are most of a notebook: not kept in memory
                    member.data = without_outputs(member.data)
                members.append(member)
        except ARCHIVE_DATA_ERRORS as exc:  # the archive's bytes are wrong: data, not a crash of the partition
            reason = exc.reason if isinstance(exc, CorruptArchive) else "bad_archive"
            self._drop_repo(repo, repo_id, members, reason, f"{type(exc).__name__}: {exc}")
            return
        hashes: list[str] = []
        nbytes = 0
        for fid, copy, m in self._identified(repo, members):
            detail = f"{repo}/{m.path}"
            if m.data is None:
                self.lineage.dropped(fid, m.reason or "unreadable", detail=detail)
                continue
            if copy > 1:
                self.lineage.dropped(fid, "duplicate_path", len(m.data), detail=detail)
                continue
            row, reason = to_row(self.crawl, repo, m.path, m.data, self.params)
            if row is None:
                self.lineage.dropped(fid, reason, len(m.data), detail=detail)
                continue
            hashes.append(row.sha256)
            nbytes += row.size
            self._emit(row, detail)
        self.repos.write_rows([{**entry, "crawl": self.crawl, "n_files": len(hashes), "n_bytes": nbytes,
                                "repo_sha256": repo_hash(hashes)}])

    def _identified(self, repo: str, members: list[Member]) -> Iterator[tuple[str, int, Member]]:
        """(record id, copy number, member): a repeated name is a record of its own, the n-th copy
        gets an id of its own."""
        if self.params.strip_top_dir:
            members = strip_common_root(members)
        seen_paths: Counter[str] = Counter()
        for m in members:
            seen_paths[m.path] += 1
            copy = seen_paths[m.path]
            yield file_id(self.crawl, repo, m.path if copy == 1 else f"{m.path}\x00copy{copy}"), copy, m

    def _drop_repo(self, repo: str, repo_id: str, members: list[Member], reason: str, why: str) -> None:
        """A repository whose archive is unreadable or cut short: one row for it and one for every member
        read before the fault, so neither the partial repository nor its files go on silently."""
        for fid, _, m in self._identified(repo, members):
            self.lineage.dropped(fid, reason, len(m.data or b""), detail=f"{repo}/{m.path}")
        self.lineage.dropped(repo_id, reason, detail=f"{repo}: {why} ({len(members)} members read)"[:300])

    # -- Parquet crawls (one row per file, as public code datasets ship) --------------------
    def _ingest_parquet(self) -> None:
        parts = sorted(i.path for i in self.fs.get_file_info(pafs.FileSelector(self.root))
                       if i.path.endswith(".parquet"))
        if not parts:
            raise FileNotFoundError(f"crawl {self.crawl}: no {MANIFEST} and no Parquet files under {self.crawl_uri}")
        repo_info: dict[str, dict[str, Any]] = {}
        for part in parts:
            pf = pq.ParquetFile(self.fs.open_input_file(part))
            names = set(pf.schema_arrow.names)
            repo_col = "repo_name" if "repo_name" in names else "repo"
            for batch in pf.iter_batches(batch_size=1024):
                for rec in batch.to_pylist():
                    self._ingest_parquet_row(rec, repo_col, repo_info)
        for repo, info in sorted(repo_info.items()):
            self.repos.write_rows([{"crawl": self.crawl, "repo": repo, "archive": None,
                                    **{k: info.get(k) for k in (*_INT_FIELDS, *_STR_FIELDS)},
                                    "n_files": len(info["hashes"]), "n_bytes": info["bytes"],
                                    "repo_sha256": repo_hash(info["hashes"])}])

    def _ingest_parquet_row(self, rec: dict[str, Any], repo_col: str, repo_info: dict[str, dict[str, Any]]) -> None:
        repo, raw_path, content = rec.get(repo_col), rec.get("path"), rec.get("content")
        if not isinstance(repo, str) or not isinstance(raw_path, str) or content is None:
            self.bad_rows += 1  # no usable repo/path: the row number is its identity (counted in every shard)
            if self.shard.takes_repo(repo if isinstance(repo, str) else ""):  # no repository: the one shard of ""
                self.lineage.dropped(f"row:{self.bad_rows}", "bad_row_fields", detail=f"{repo}/{raw_path}")
            return
        if not self.shard.takes_repo(repo):
            return
        path = safe_member_path(raw_path)
        info = repo_info.setdefault(repo, {"hashes": [], "bytes": 0, "paths": Counter(),
                                           **{k: rec.get(k) for k in (*_INT_FIELDS, *_STR_FIELDS)}})
        # Ids and repeats go by the normalised path, as in archives: `a//b.py` and `a/b.py` are one file.
        key = path if path is not None else raw_path
        info["paths"][key] += 1
        copy = info["paths"][key]
        fid = file_id(self.crawl, repo, key if copy == 1 else f"{key}\x00copy{copy}")
        if path is None:
            self.lineage.dropped(fid, "path_traversal", detail=f"{repo}/{raw_path}")
            return
        if copy > 1:
            self.lineage.dropped(fid, "duplicate_path", detail=f"{repo}/{path}")
            return
        data = content.encode("utf-8", errors="surrogatepass") if isinstance(content, str) else bytes(content)
        row, reason = to_row(self.crawl, repo, path, data, self.params)
        if row is None:
            self.lineage.dropped(fid, reason, len(data), detail=f"{repo}/{path}")
            return
        info["hashes"].append(row.sha256)
        info["bytes"] += row.size
        self._emit(row, f"{repo}/{path}")

    # -- output -------------------------------------------------------------------------------
    def _emit(self, row: FileRow, detail: str) -> None:
        self.lineage.kept(row.id, row.size, detail=detail)
        self.batch.append(asdict(row))
        if len(self.batch) >= self.batch_rows:
            self._flush()

    def _flush(self) -> None:
        self.files.write_rows(self.batch)
        self.batch = []
