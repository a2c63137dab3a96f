"""Local folders and `s3://bucket/prefix` behind one interface: pyarrow filesystems and DuckDB connections.

Stages take URIs, never filesystems, so a root switches from a folder to S3 by configuration
alone. The S3 endpoint and credentials are process settings (set once by the storage resource),
so they never travel inside URIs, Dagster metadata or logs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow.fs as pafs


@dataclass(frozen=True)
class S3Settings:
    """How to reach S3 (or an S3-compatible server): endpoint, region and resolved credentials."""

    region: str = "us-east-1"
    endpoint_url: str | None = None  # e.g. http://127.0.0.1:9000 for MinIO/moto; None for AWS
    access_key: str | None = None
    secret_key: str | None = None
    session_token: str | None = None

    def __repr__(self) -> str:  # credentials stay out of logs
        return f"S3Settings(region={self.region!r}, endpoint_url={self.endpoint_url!r}, key={'***' if self.access_key else None})"

    @property
    def _scheme_and_host(self) -> tuple[str, str | None]:
        if not self.endpoint_url:
            return "https", None
        scheme, _, host = self.endpoint_url.partition("://")
        return (scheme, host.rstrip("/")) if host else ("https", scheme.rstrip("/"))


_settings = S3Settings()
_configured = False  # set once a storage root on S3 is in use: DuckDB connections then load httpfs


def configure_s3(settings: S3Settings) -> None:
    """Set how this process reaches S3; later `resolve` and `duckdb_connect` calls use it."""
    global _settings, _configured
    _configured = True
    if settings != _settings:
        _settings = settings
        _s3_filesystem.cache_clear()


def s3_settings() -> S3Settings:
    return _settings


def s3_in_use() -> bool:
    return _configured


@functools.lru_cache(maxsize=1)
def _s3_filesystem() -> pafs.S3FileSystem:
    s = _settings
    scheme, host = s._scheme_and_host
    return pafs.S3FileSystem(
        access_key=s.access_key, secret_key=s.secret_key, session_token=s.session_token, region=s.region,
        endpoint_override=host, scheme=scheme, allow_bucket_creation=False, check_directory_existence_before_creation=False,
    )


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """Filesystem and path (`bucket/key` for S3) for a local path or an `s3://` URI."""
    if is_s3(uri):
        return _s3_filesystem(), uri.removeprefix("s3://").rstrip("/")
    if "://" in uri:
        return pafs.FileSystem.from_uri(uri)
    return pafs.LocalFileSystem(), uri


def _httpfs_extension_dir() -> str:
    """DuckDB cannot download extensions here: httpfs comes from the `duckdb-ext-httpfs` wheel."""
    import duckdb_ext

    return str(Path(next(iter(duckdb_ext.__path__))) / "extensions")  # a namespace package


def duckdb_connect(database: str = ":memory:", memory_limit: str | None = None, temp_dir: str | None = None,
                   s3: bool | None = None) -> duckdb.DuckDBPyConnection:
    """DuckDB with a memory cap (group-bys and joins spill instead of growing) and S3 access when
    `s3`, or by default when S3 was configured."""
    conn = duckdb.connect(database, config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    if memory_limit:
        conn.execute(f"SET memory_limit = '{memory_limit}'")
    conn.execute("SET preserve_insertion_order = false")
    conn.execute("SET enable_progress_bar = false")
    if temp_dir:
        conn.execute(f"SET temp_directory = '{temp_dir}'")
    use_s3 = _configured if s3 is None else s3
    if use_s3:
        conn.execute(f"SET extension_directory = '{_httpfs_extension_dir()}'")
        conn.execute("LOAD httpfs")
        s = _settings
        scheme, host = s._scheme_and_host
        options = {"REGION": s.region, "USE_SSL": "true" if scheme == "https" else "false"}
        if host:
            options |= {"ENDPOINT": host, "URL_STYLE": "path"}
        if s.access_key:
            options |= {"KEY_ID": s.access_key, "SECRET": s.secret_key or ""}
        if s.session_token:
            options["SESSION_TOKEN"] = s.session_token
        body = ", ".join(f"{k} {v}" if k == "USE_SSL" else f"{k} '{_quote(v)}'" for k, v in options.items())
        conn.execute(f"CREATE OR REPLACE TEMPORARY SECRET seedcoder_s3 (TYPE S3, {body})")
    return conn


def _quote(value: str) -> str:
    return value.replace("'", "''")


def exists(uri: str) -> bool:
    fs, path = resolve(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def delete(uri: str) -> None:
    """Remove a file if it exists."""
    fs, path = resolve(uri)
    if fs.get_file_info(path).type == pafs.FileType.File:
        fs.delete_file(path)


def read_text(uri: str) -> str:
    fs, path = resolve(uri)
    with fs.open_input_stream(path) as handle:
        return handle.read().decode()


def write_text(uri: str, text: str) -> None:
    fs, path = resolve(uri)
    if not is_s3(uri):
        fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as handle:
        handle.write(text.encode())


def copy_tree(src_uri: str, dst_uri: str) -> None:
    """Copy a folder between any two roots (local to S3 to publish a model, S3 to local to load it)."""
    src_fs, src = resolve(src_uri)
    dst_fs, dst = resolve(dst_uri)
    if not is_s3(dst_uri):
        dst_fs.create_dir(dst, recursive=True)
    pafs.copy_files(src, dst, source_filesystem=src_fs, destination_filesystem=dst_fs, use_threads=True)


def copy_file(src_uri: str, dst_uri: str) -> None:
    """Copy one file between any two roots, streaming (never whole in memory)."""
    src_fs, src = resolve(src_uri)
    dst_fs, dst = resolve(dst_uri)
    if not is_s3(dst_uri):
        dst_fs.create_dir(dst.rsplit("/", 1)[0], recursive=True)
    with src_fs.open_input_stream(src) as reader, dst_fs.open_output_stream(dst) as writer:
        while chunk := reader.read(8 << 20):
            writer.write(chunk)


def list_dirs(uri: str) -> list[str]:
    """Names of the folders directly under `uri` (S3 "folders" are common prefixes); [] if absent."""
    fs, path = resolve(uri)
    try:
        infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    except FileNotFoundError:
        return []
    return sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory)
