"""Repository archives and file-row crawls -> decoded source-file rows, with a reason for every drop.

Archives are read member by member from the archive stream; nothing is extracted to disk,
so a crafted archive (`../` names, absolute paths, symlinks, devices) cannot write anywhere.
"""

from __future__ import annotations

import bz2
import hashlib
import io
import lzma
import posixpath
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

import pyarrow.fs as pafs
from pydantic import BaseModel

from seedcoder_assets.core.ingest.notebooks import is_notebook, notebook_script
from seedcoder_assets.core.languages import language_of


class ExtractParams(BaseModel, frozen=True):
    """Limits for turning archive members into file rows."""

    max_file_bytes: int = 1_000_000  # StarCoder/The Stack drop files over ~1 MB: generated or data
    # A notebook's JSON is mostly outputs (images): the limit above applies to its script (core/ingest/notebooks.py)
    max_notebook_bytes: int = 25_000_000
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


class StorageReadError(Exception):
    """Reading an archive's bytes from storage failed (S3 5xx, reset connection, disk error).

    Not the archive's fault: it must fail the step so that Dagster retries it, never become a drop.
    """


class CorruptArchive(Exception):
    """The archive's bytes are wrong (bad compressed data, bad headers): a property of the data."""

    reason = "bad_archive"


class TruncatedArchive(CorruptArchive):
    """The archive ends before its end marker (an interrupted upload): its member list is partial."""

    reason = "truncated_archive"


def escape_name(name: str) -> str:
    """A member name as valid UTF-8 text: bytes that were not UTF-8 become `\\xNN`.

    tarfile decodes names with `surrogateescape`, so a name written on a Latin-1 system holds lone
    surrogates that no UTF-8 writer accepts. After `safe_member_path` no backslash is left in a
    path, so the escape is lossless: the original bytes can be read back from the text.
    """
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def safe_member_path(name: str) -> str | None:
    """Normalised relative path (non-UTF-8 bytes escaped), or None for absolute or parent-escaping names."""
    name = name.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return None
    norm = posixpath.normpath(name)
    if norm == ".." or norm.startswith("../") or norm.startswith("/"):
        return None
    return escape_name(norm)


class _GuardedRaw(io.RawIOBase):
    """A storage stream whose failures surface as `StorageReadError`, so that everything raised
    while parsing the archive above it is about the archive's bytes."""

    def __init__(self, raw: IO[bytes], name: str) -> None:
        self._raw, self._name = raw, name

    def _guard(self, fn, *args):
        try:
            return fn(*args)
        except MemoryError:
            raise
        except Exception as exc:
            raise StorageReadError(f"reading {self._name}: {type(exc).__name__}: {exc}") from exc

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self._guard(self._raw.read, len(b))
        b[: len(data)] = data
        return len(data)

    def seekable(self) -> bool:
        return bool(self._guard(getattr(self._raw, "seekable", lambda: False)))

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._guard(self._raw.seek, offset, whence)

    def tell(self) -> int:
        return self._guard(self._raw.tell)


_MAGIC = ((b"\x1f\x8b", "gz"), (b"BZh", "bz2"), (b"\xfd7zXZ\x00", "xz"))


def _decompressor(kind: str):
    if kind == "gz":
        return zlib.decompressobj(wbits=31)
    return bz2.BZ2Decompressor() if kind == "bz2" else lzma.LZMADecompressor()


class _Decompressed(io.RawIOBase):
    """The decompressed bytes of a gzip/bz2/xz stream; raises `TruncatedArchive` when the input ends
    before the compressed stream's end marker (Python's tarfile in stream mode would stop silently)."""

    def __init__(self, raw: IO[bytes], kind: str, chunk: int = 64 << 10) -> None:
        self._raw, self._kind, self._chunk = raw, kind, chunk
        self._d = _decompressor(kind)
        self._pending = memoryview(b"")  # a view, so handing out small reads never copies the rest
        self.total_out = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._pending:
            if self._d.eof:
                rest = self._d.unused_data or self._raw.read(self._chunk)
                if not rest:
                    return 0
                if not any(rest.startswith(magic) for magic, kind in _MAGIC if kind == self._kind):
                    # After a complete stream, padding (NUL blocks, as gzip and tar tolerate) or junk: the
                    # end of the data; a missing tar end block is still caught by iter_tar.
                    while self._raw.read(self._chunk):
                        pass
                    return 0
                self._d = _decompressor(self._kind)  # concatenated members (gzip allows several)
            else:
                rest = self._raw.read(self._chunk)
                if not rest:
                    raise TruncatedArchive(f"{self._kind} stream ends before its end marker after "
                                           f"{self.total_out} bytes")
            try:
                self._pending = memoryview(self._d.decompress(rest))
            except (OSError, EOFError, zlib.error, lzma.LZMAError) as exc:  # the bytes themselves are wrong
                raise CorruptArchive(f"bad {self._kind} data: {exc}") from exc
        n = min(len(b), len(self._pending))
        b[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        self.total_out += n
        return n


class _Counting(io.RawIOBase):
    """Counts the bytes read and keeps the last megabyte or so, so that the block where tarfile
    stopped can be looked at after the fact (tarfile reads ahead in 10 KB records)."""

    _KEEP = 1 << 20

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw, self.total, self.tar_end = raw, 0, 0
        self._window, self._window_start = bytearray(), 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self._raw.read(len(b))
        b[: len(data)] = data
        self.total += len(data)
        self._window += data
        if len(self._window) > 2 * self._KEEP:
            drop = len(self._window) - self._KEEP
            del self._window[:drop]
            self._window_start += drop
        return len(data)

    def block_at(self, offset: int) -> bytes | None:
        """The 512 bytes at `offset` if they were read and are still kept."""
        lo = offset - self._window_start
        return bytes(self._window[lo: lo + tarfile.BLOCKSIZE]) if lo >= 0 else None


def iter_tar(fileobj: IO[bytes], params: ExtractParams) -> Iterator[Member]:
    """Members of a tar / tar.gz / tar.bz2 / tar.xz stream, read front to back (never seeked).

    Raises `TruncatedArchive` when the stream ends before the compressed stream's end marker or
    before the tar end-of-archive block, so a cut upload is never taken for a whole repository.
    """
    buffered = fileobj if isinstance(fileobj, io.BufferedReader) else io.BufferedReader(fileobj, 1 << 20)  # type: ignore[arg-type]
    head = buffered.peek(6)[:6]
    kind = next((k for magic, k in _MAGIC if head.startswith(magic)), None)
    body = _Counting(_Decompressed(buffered, kind) if kind else buffered)
    try:
        yield from _tar_members(body, params)
    except tarfile.ReadError as exc:
        if "unexpected end of data" in str(exc):  # a member cut in its middle
            raise TruncatedArchive(f"tar stream ends inside a member after {body.total} bytes") from exc
        raise
    while body.read(1 << 20):  # the rest: zero padding; reading it checks the compressed end marker
        pass
    if body.total < body.tar_end + tarfile.BLOCKSIZE:
        raise TruncatedArchive(f"tar stream ends at byte {body.total} without its end-of-archive block")
    block = body.block_at(body.tar_end)
    if block is None or block.count(0) != tarfile.BLOCKSIZE:
        # tarfile also stops, silently, at a header it cannot read after the first one
        raise CorruptArchive(f"unreadable tar header at byte {body.tar_end}: the member list stops there")


def member_limit(path: str, params: ExtractParams) -> int:
    """The most bytes a member may have to be read: a notebook's limit is its script's, checked after."""
    return params.max_notebook_bytes if is_notebook(path) else params.max_file_bytes


def _tar_members(body: _Counting, params: ExtractParams) -> Iterator[Member]:
    with tarfile.open(fileobj=body, mode="r|") as tar:  # type: ignore[call-overload]
        for info in tar:
            if info.isdir():
                continue
            path = safe_member_path(info.name)
            if path is None:
                yield Member(escape_name(info.name), None, "path_traversal")
            elif info.issym() or info.islnk():
                yield Member(path, None, "symlink")
            elif not info.isfile():
                yield Member(path, None, "special_file")
            elif info.size > member_limit(path, params):
                yield Member(path, None, "oversized")
            else:
                f = tar.extractfile(info)
                yield Member(path, f.read() if f else b"")
        body.tar_end = tar.offset  # where tarfile met the end-of-archive block, or ran out of bytes


def iter_zip(fileobj: IO[bytes], params: ExtractParams) -> Iterator[Member]:
    """Members of a zip archive. A member that cannot be read (corrupt, encrypted, an unsupported
    compression) costs that member; zip symlinks are marked by the unix mode in external_attr."""
    with zipfile.ZipFile(fileobj) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            path = safe_member_path(info.filename)
            mode = info.external_attr >> 16
            if path is None:
                yield Member(escape_name(info.filename), None, "path_traversal")
            elif (mode & 0o170000) == 0o120000:
                yield Member(path, None, "symlink")
            elif info.file_size > member_limit(path, params):
                yield Member(path, None, "oversized")
            elif info.flag_bits & 0x1:
                yield Member(path, None, "encrypted")
            else:
                try:
                    with zf.open(info) as f:
                        data = f.read(member_limit(path, params) + 1)
                except NotImplementedError:
                    yield Member(path, None, "unsupported_compression")
                except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError):
                    yield Member(path, None, "corrupt_member")  # bad CRC, bad deflate data, cut member
                else:
                    yield Member(path, data)


ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")

# Errors that describe the archive's bytes. Storage failures arrive as `StorageReadError`, which is
# none of these, and everything else (MemoryError, a bug of ours) propagates and fails the step.
ARCHIVE_DATA_ERRORS = (CorruptArchive, tarfile.TarError, zipfile.BadZipFile, zipfile.LargeZipFile,
                       UnicodeDecodeError, EOFError, zlib.error, lzma.LZMAError)


def open_archive(fs: pafs.FileSystem, path: str, params: ExtractParams,
                 buffer_size: int = 8 << 20) -> Iterator[Member]:
    """Members of a .zip or tar archive on `fs`. An unsupported type raises `CorruptArchive`."""
    lower = path.lower()
    if not lower.endswith(ARCHIVE_SUFFIXES):
        raise CorruptArchive(f"unsupported archive type: {posixpath.basename(path)}")
    name = posixpath.basename(path)
    if lower.endswith(".zip"):  # random access (central directory at the end), through a large buffer
        try:
            raw = fs.open_input_file(path)
        except OSError as exc:
            raise StorageReadError(f"opening {name}: {exc}") from exc
        with raw:
            yield from iter_zip(io.BufferedReader(_GuardedRaw(raw, name), buffer_size), params)
    else:  # tar is read front to back: one ranged request per buffer on S3, not one per 512-byte block
        try:
            stream = fs.open_input_stream(path, compression=None, buffer_size=buffer_size)
        except OSError as exc:
            raise StorageReadError(f"opening {name}: {exc}") from exc
        with stream:
            yield from iter_tar(io.BufferedReader(_GuardedRaw(stream, name), 1 << 20), params)


def strip_common_root(members: list[Member]) -> list[Member]:
    """Drop a single top-level folder shared by every member (`pkg-1.0/src/x.py` -> `src/x.py`)."""
    inside = [m for m in members if m.reason != "path_traversal"]  # those keep their raw name for the record
    tops = {m.path.split("/", 1)[0] for m in inside if "/" in m.path}
    if len(tops) == 1 and all("/" in m.path for m in inside):
        for m in inside:
            m.path = m.path.split("/", 1)[1]
    return members


def decode(data: bytes, params: ExtractParams, max_bytes: int | None = None) -> tuple[str | None, str | None]:
    """(text, None) for a usable text file, else (None, reason)."""
    if len(data) == 0:
        return None, "empty"
    if len(data) > (max_bytes or params.max_file_bytes):
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
    if is_notebook(path):
        return _notebook_row(crawl, repo, path, data, params)
    text, reason = decode(data, params)
    if text is None:
        return None, reason
    # The hash is of the text as stored (the UTF-8 bytes without a byte-order mark), so a file saved with
    # a BOM and its copy without one are one file to exact dedup; text and bytes differ in nothing else.
    stored = data[len(BOM):] if data.startswith(BOM) else data
    return (
        FileRow(
            id=file_id(crawl, repo, path), crawl=crawl, repo=repo, path=path, language=language_of(path),
            size=len(data), sha256=hashlib.sha256(stored).hexdigest(), content=text,
        ),
        None,
    )


def _notebook_row(crawl: str, repo: str, path: str, data: bytes, params: ExtractParams
                  ) -> tuple[FileRow | None, str | None]:
    """A notebook is stored as its script (code cells plus markdown) in its kernel's language. Size, hash
    and the size limit are the script's: two runs of one notebook differ in outputs, not in code."""
    text, reason = decode(data, params, params.max_notebook_bytes)
    if text is None:
        return None, reason
    script, language, reason = notebook_script(text)
    if script is None:
        return None, reason
    stored = script.encode("utf-8", "replace")  # a JSON escape can hold a lone surrogate: Parquet takes UTF-8 only
    if len(stored) > params.max_file_bytes:
        return None, "oversized"
    return FileRow(id=file_id(crawl, repo, path), crawl=crawl, repo=repo, path=path, language=language,
                   size=len(stored), sha256=hashlib.sha256(stored).hexdigest(), content=stored.decode()), None


BOM = "\ufeff".encode()
