"""Bad input: every drop reason, and a crafted archive that must not write outside the work area."""

import io
import json
import os
import tarfile
import zipfile
from collections import Counter
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from seedcoder_assets.core import paths
from seedcoder_assets.core.ingest.archives import ExtractParams, safe_member_path
from seedcoder_assets.core.ingest.crawl import CrawlIngest, parse_manifest_line
from seedcoder_assets.core.stats import LineageWriter

PY = b"def add(a, b):\n    return a + b\n"


def _tar(path: Path, members: list[tuple[str, bytes | None, bytes]]) -> None:
    """members: (name, data or None, type) with type REGTYPE/SYMTYPE/LNKTYPE/FIFOTYPE."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data, kind in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = "../../../etc/passwd"
                tar.addfile(info)
            elif kind == tarfile.FIFOTYPE:
                tar.addfile(info)
            else:
                info.size = len(data or b"")
                tar.addfile(info, io.BytesIO(data or b""))


def _ingest(crawl_dir: Path, lake: Path, params: ExtractParams | None = None):
    lw = LineageWriter(str(lake), "ingest", "c1", "test")
    files = paths.partition_uri(str(lake), ["ingest", "raw_repo_files"], "c1")
    repos = paths.partition_uri(str(lake), ["ingest", "crawl_repos"], "c1")
    stats = CrawlIngest("c1", str(crawl_dir), files, repos, lw, params or ExtractParams(max_file_bytes=1000)).run()
    lineage = pl.read_parquet(paths.lineage_uri(str(lake), "ingest", "c1") + "/*.parquet")
    return stats, pl.read_parquet(files + "/*.parquet"), lineage


def test_every_drop_reason_is_counted_and_nothing_escapes(tmp_path: Path) -> None:
    crawl = tmp_path / "landing" / "c1"
    crawl.mkdir(parents=True)
    R, S, L, F = tarfile.REGTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE
    _tar(crawl / "evil.tar.gz", [
        ("evil-1.0/ok.py", PY, R),
        ("evil-1.0/../../escape.py", PY, R),
        ("/abs/escape.py", PY, R),
        ("evil-1.0/link.py", None, S),
        ("evil-1.0/hard.py", None, L),
        ("evil-1.0/fifo", None, F),
        ("evil-1.0/big.py", b"x = 1\n" * 500, R),
        ("evil-1.0/empty.py", b"", R),
        ("evil-1.0/blank.py", b"  \n\n", R),
        ("evil-1.0/blob.bin", b"\x89PNG\x00\x00\x01", R),
        ("evil-1.0/latin1.py", "caf\xe9 = 1\n".encode("latin-1"), R),
        ("evil-1.0/ok.py", PY, R),
    ])
    with zipfile.ZipFile(crawl / "z.zip", "w") as zf:
        zf.writestr("z/ok.js", "export const x = 1;\n")
        zf.writestr("../zip_escape.py", PY)
        link = zipfile.ZipInfo("z/link.py")
        link.external_attr = (0o120777 << 16)
        zf.writestr(link, "../../etc/passwd")
    (crawl / "broken.tar.gz").write_bytes(b"\x1f\x8b\x08 this is not really gzip")
    (crawl / "repos.jsonl").write_text("\n".join([
        json.dumps({"name": "evil", "archive": "evil.tar.gz", "stars": 5}),
        json.dumps({"name": "zipped", "archive": "z.zip"}),
        json.dumps({"name": "broken", "archive": "broken.tar.gz"}),
        json.dumps({"name": "gone", "archive": "missing.tar.gz"}),
        json.dumps({"name": "outside", "archive": "../../etc/passwd"}),
        json.dumps({"name": "evil", "archive": "evil.tar.gz"}),
        "{not json",
        json.dumps({"archive": "no-name.tar.gz"}),
    ]) + "\n")
    before = set(os.listdir(tmp_path)) | set(os.listdir(tmp_path / "landing"))
    stats, files, lineage = _ingest(crawl, tmp_path / "lake")

    assert sorted(files["path"].to_list()) == ["ok.js", "ok.py"]
    assert Counter(stats.drops) == Counter({
        "path_traversal": 3, "symlink": 3, "special_file": 1, "oversized": 1, "empty": 2, "binary": 1,
        "undecodable": 1, "duplicate_path": 1, "bad_archive": 1, "missing_archive": 2,
        "duplicate_repo": 1, "bad_manifest_json": 1, "bad_manifest_fields": 1,
    })
    assert stats.balanced and lineage.height == stats.rows_in and lineage["id"].n_unique() == lineage.height
    assert set(os.listdir(tmp_path)) | set(os.listdir(tmp_path / "landing")) == before | {"lake"}
    assert not (tmp_path / "escape.py").exists() and not Path("/abs/escape.py").exists()


def test_parquet_crawl_rows(tmp_path: Path) -> None:
    crawl = tmp_path / "c1"
    crawl.mkdir()
    pq.write_table(pa.table({
        "repo_name": ["o/r", "o/r", "o/r", None, "o/s"],
        "path": ["a.py", "a.py", "../x.py", "b.py", "c.go"],
        "content": ["x = 1\n", "x = 2\n", "y = 1\n", "z = 1\n", "package main\n"],
        "stars": [10, 10, 10, None, 3],
    }), crawl / "part-0.parquet")
    stats, files, _ = _ingest(crawl, tmp_path / "lake")
    assert files.select("repo", "path", "language").sort("path").rows() == [("o/r", "a.py", "Python"),
                                                                             ("o/s", "c.go", "Go")]
    assert dict(stats.drops) == {"duplicate_path": 1, "path_traversal": 1, "bad_row_fields": 1}


@pytest.mark.parametrize(("line", "reason"), [("[1,2]", "bad_manifest_fields"), ("{", "bad_manifest_json"),
                                              ('{"name": 1, "archive": "a"}', "bad_manifest_fields")])
def test_bad_manifest_lines(line: str, reason: str) -> None:
    assert parse_manifest_line(line) == (None, reason)


def test_manifest_metadata_may_be_missing_or_odd() -> None:
    entry, _ = parse_manifest_line('{"name": "a/b", "archive": "x.zip", "stars": "many", "forks": 3.0}')
    assert entry["stars"] is None and entry["forks"] == 3 and entry["license"] is None


@pytest.mark.parametrize("name", ["../x", "/x", "a/../../x", "C:/x", "..\\x"])
def test_unsafe_member_paths(name: str) -> None:
    assert safe_member_path(name) is None


def test_small_real_crawl_ingests(small_crawl: Path, tmp_path: Path) -> None:
    stats, files, lineage = _ingest(small_crawl, tmp_path / "lake", ExtractParams())
    assert stats.balanced and stats.extra["repos"] >= 25
    assert files.height > 2000 and files["id"].n_unique() == files.height
    langs = set(files["language"].drop_nulls())
    assert {"Python", "C", "HTML", "JavaScript", "CSS"} <= langs
    assert lineage.filter(pl.col("decision") == "dropped")["reason"].null_count() == 0
