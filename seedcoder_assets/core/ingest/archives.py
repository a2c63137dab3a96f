"""Repository archives and file-row crawls -> decoded source-file rows, with a reason for every drop.

Archives are read member by member from the archive stream; nothing is extracted to disk,
so a crafted archive (`../` names, absolute paths, symlinks, devices) cannot write anywhere.
"""

from __future__ import annotations

import hashlib
import posixpath
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from pydantic import BaseModel

from seedcoder_assets.core.languages import language_of


class ExtractParams(BaseModel, frozen=True):
    """Limits for turning archive members into file rows."""

    max_file_bytes: int = 1_000_000  # StarCoder/The Stack drop files over ~1 MB: generated or data
    binary_probe_bytes: int = 8192  # a NUL byte in the first 8 KiB marks a binary file
    strip_top_dir: bool = True  # sdists and GitHub archives wrap everything in one `name-version/` folder


@dataclass(slots=True)
class Member:
    """One archive entry: either file content, or the reason it was not read."""

    path: str
    data: bytes | None
    reason: str | None = None


@dataclass(slots=True)
class FileRow:
    id: str
    crawl: str
    repo: str
    path: str
    language: str | None
    size: int
    sha256: str
    content: str


def file_id(crawl: str, repo: str, path: str) -> str:
    """Stable record id: the same file of the same crawl always gets the same id."""
    return hashlib.sha256(f"{crawl}\x00{repo}\x00{path}".encode()).hexdigest()[:24]


def safe_member_path(name: str) -> str | None:
    """Normalised relative path, or None for absolute or parent-escaping names."""
    name = name.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return None
    norm = posixpath.normpath(name)
    if norm == ".." or norm.startswith("../") or norm.startswith("/"):
        return None
    return norm


def _read_limited(stream: IO[bytes], size: int, limit: int) -> bytes | None:
    return None if size > limit else stream.read(limit + 1)


def iter_tar(path_or_file: str | IO[bytes], params: ExtractParams) -> Iterator[Member]:
    """Members of a tar / tar.gz / tar.bz2 / tar.xz archive, streamed front to back (a file object is
    never seeked, so it may be a network stream)."""
    with tarfile.open(path_or_file if isinstance(path_or_file, str) else None,
                      fileobj=None if isinstance(path_or_file, str) else path_or_file,
                      mode="r:*" if isinstance(path_or_file, str) else "r|*") as tar:
        for info in tar:
            if info.isdir():
                continue
            path = safe_member_path(info.name)
            if path is None:
                yield Member(info.name, None, "path_traversal")
            elif info.issym() or info.islnk():
                yield Member(path, None, "symlink")
            elif not info.isfile():
                yield Member(path, None, "special_file")
            elif info.size > params.max_file_bytes:
                yield Member(path, None, "oversized")
            else:
                f = tar.extractfile(info)
                yield Member(path, f.read() if f else b"")


def iter_zip(path_or_file: str | IO[bytes], params: ExtractParams) -> Iterator[Member]:
    """Members of a zip archive; zip symlinks are marked by the unix mode in external_attr."""
    with zipfile.ZipFile(path_or_file) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            path = safe_member_path(info.filename)
            mode = info.external_attr >> 16
            if path is None:
                yield Member(info.filename, None, "path_traversal")
            elif (mode & 0o170000) == 0o120000:
                yield Member(path, None, "symlink")
            elif info.file_size > params.max_file_bytes:
                yield Member(path, None, "oversized")
            else:
                with zf.open(info) as f:
                    yield Member(path, f.read(params.max_file_bytes + 1))


def strip_common_root(members: list[Member]) -> list[Member]:
    """Drop a single top-level folder shared by every member (`pkg-1.0/src/x.py` -> `src/x.py`)."""
    inside = [m for m in members if m.reason != "path_traversal"]  # those keep their raw name for the record
    tops = {m.path.split("/", 1)[0] for m in inside if "/" in m.path}
    if len(tops) == 1 and all("/" in m.path for m in inside):
        for m in inside:
            m.path = m.path.split("/", 1)[1]
    return members


def decode(data: bytes, params: ExtractParams) -> tuple[str | None, str | None]:
    """(text, None) for a usable text file, else (None, reason)."""
    if len(data) == 0:
        return None, "empty"
    if len(data) > params.max_file_bytes:
        return None, "oversized"
    if b"\x00" in data[: params.binary_probe_bytes]:
        return None, "binary"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None, "undecodable"
    text = text.removeprefix("\ufeff")
    if not text.strip():
        return None, "empty"
    return text, None


def to_row(crawl: str, repo: str, path: str, data: bytes, params: ExtractParams) -> tuple[FileRow | None, str | None]:
    text, reason = decode(data, params)
    if text is None:
        return None, reason
    return (
        FileRow(
            id=file_id(crawl, repo, path), crawl=crawl, repo=repo, path=path, language=language_of(path),
            size=len(data), sha256=hashlib.sha256(data).hexdigest(), content=text,
        ),
        None,
    )
