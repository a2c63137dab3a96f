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


# -- issue 9: nastier real-world input ------------------------------------------------------------

def _manifest(crawl: Path, entries: list[dict], bom: bool = False) -> None:
    text = "".join(json.dumps(e) + "\n" for e in entries)
    (crawl / "repos.jsonl").write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())


def _random_tar(path: Path, n: int, mode: str = "w:gz") -> None:
    """`n` Python files of incompressible content, so a cut lands inside the member list."""
    rng = __import__("random").Random(n)
    with tarfile.open(path, mode) as tar:
        for i in range(n):
            data = "".join(f"v{rng.getrandbits(64):x} = {rng.getrandbits(64)}\n" for _ in range(20)).encode()
            info = tarfile.TarInfo(f"r-1.0/f{i:02d}.py")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_a_member_name_that_is_not_utf8_costs_nothing(tmp_path: Path) -> None:
    crawl = tmp_path / "c1"
    crawl.mkdir()
    with tarfile.open(crawl / "latin.tar", "w", format=tarfile.GNU_FORMAT, encoding="latin-1") as tar:
        for name in ("odd-1.0/bad\xff\xfename.py", "odd-1.0/good.py"):
            info = tarfile.TarInfo(name)
            info.size = len(PY)
            tar.addfile(info, io.BytesIO(PY))
    _random_tar(crawl / "other.tar.gz", 3)
    _manifest(crawl, [{"name": "odd", "archive": "latin.tar"}, {"name": "other", "archive": "other.tar.gz"}])
    stats, files, lineage = _ingest(crawl, tmp_path / "lake")
    # Kept under a lossless escaped path: the bytes 0xff 0xfe are readable back from the text.
    assert sorted(files.filter(pl.col("repo") == "odd")["path"]) == ["bad\\xff\\xfename.py", "good.py"]
    assert files.filter(pl.col("repo") == "other").height == 3 and not stats.drops


def test_manifest_names_with_lone_surrogates_cost_their_line(tmp_path: Path) -> None:
    crawl = tmp_path / "c1"
    crawl.mkdir()
    _random_tar(crawl / "a.tar.gz", 2)
    (crawl / "repos.jsonl").write_text('{"name": "bad\\udcff", "archive": "a.tar.gz"}\n'
                                       '{"name": "ok", "archive": "a.tar.gz", "license": "MIT\\udcff"}\n')
    stats, files, _ = _ingest(crawl, tmp_path / "lake")
    assert dict(stats.drops) == {"bad_manifest_fields": 1} and files.height == 2


@pytest.mark.parametrize("mode", ["w:gz", "w:bz2", "w:xz", "w"])
@pytest.mark.parametrize("keep", [0.5, 0.999])
def test_a_truncated_archive_is_recorded_not_taken_for_a_whole_repository(tmp_path: Path, mode: str,
                                                                          keep: float) -> None:
    crawl = tmp_path / "c1"
    crawl.mkdir()
    _random_tar(crawl / "whole.tar", 30, mode)
    data = (crawl / "whole.tar").read_bytes()
    cut = int(len(data) * keep) if mode != "w" else int(30 * 1536 * keep)  # plain: inside the member list
    (crawl / "cut.tar").write_bytes(data[:cut])
    _random_tar(crawl / "fine.tar.gz", 2)
    _manifest(crawl, [{"name": "cut", "archive": "cut.tar"}, {"name": "fine", "archive": "fine.tar.gz"}])
    lake = tmp_path / "lake"
    stats, files, lineage = _ingest(crawl, lake)
    assert set(files["repo"]) == {"fine"}, "no file of a cut archive reaches the corpus"
    repos = pl.read_parquet(paths.partition_uri(str(lake), ["ingest", "crawl_repos"], "c1") + "/*.parquet")
    assert set(repos["repo"]) == {"fine"}, "a partial repository must not reach repository-level dedup"
    reasons = set(lineage.filter(pl.col("decision") == "dropped")["reason"])
    assert reasons <= {"truncated_archive", "bad_archive"} and stats.drops["truncated_archive"] >= 1, stats.drops
    assert stats.balanced and lineage["id"].n_unique() == lineage.height


def _plain_tar(names: list[str]) -> bytes:
    """An uncompressed tar of `names`, each holding PY."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = len(PY)
            tar.addfile(info, io.BytesIO(PY))
    return buf.getvalue()


def test_plain_tar_cut_at_a_member_boundary_is_truncated(tmp_path: Path) -> None:
    from seedcoder_assets.core.ingest.archives import TruncatedArchive, iter_tar
    whole = _plain_tar([f"r/f{i}.py" for i in range(3)])
    assert len(list(iter_tar(io.BytesIO(whole), ExtractParams()))) == 3
    with pytest.raises(TruncatedArchive):
        list(iter_tar(io.BytesIO(whole[:2048]), ExtractParams()))  # two whole members, no end block


def test_a_manifest_with_a_byte_order_mark_keeps_its_first_repository(tmp_path: Path) -> None:
    crawl = tmp_path / "c1"
    crawl.mkdir()
    _random_tar(crawl / "a.tar.gz", 2)
    _manifest(crawl, [{"name": "first", "archive": "a.tar.gz"}], bom=True)
    stats, files, _ = _ingest(crawl, tmp_path / "lake")
    assert not stats.drops and set(files["repo"]) == {"first"}


class _FlakyFS:
    """The local filesystem, except that archive streams fail after `after` bytes with `error`."""

    def __init__(self, error: BaseException, after: int = 4096) -> None:
        import pyarrow.fs as pafs
        self._fs, self.error, self.after = pafs.LocalFileSystem(), error, after

    def __getattr__(self, name: str):
        return getattr(self._fs, name)

    def open_input_stream(self, path: str, **kw):
        stream = self._fs.open_input_stream(path, **kw)
        if not path.endswith(".tar.gz"):
            return stream
        outer = self

        class Stream:
            def __init__(self) -> None:
                self.read_so_far = 0

            def read(self, n: int = -1) -> bytes:
                if self.read_so_far >= outer.after:
                    raise outer.error
                data = stream.read(min(n, outer.after) if n and n > 0 else outer.after)
                self.read_so_far += len(data)
                return data

            def __enter__(self):
                return self

            def __exit__(self, *exc) -> None:
                stream.close()

        return Stream()


@pytest.mark.parametrize("error", [ConnectionResetError("Connection reset by peer"),
                                   OSError("AWS Error SLOW_DOWN during GetObject: 503"), MemoryError()])
def test_storage_errors_fail_the_step_instead_of_dropping_the_repository(tmp_path: Path, monkeypatch,
                                                                          error: BaseException) -> None:
    from seedcoder_assets.core.ingest import crawl as crawl_mod
    from seedcoder_assets.core.ingest.archives import StorageReadError
    crawl = tmp_path / "c1"
    crawl.mkdir()
    _random_tar(crawl / "a.tar.gz", 30)
    _manifest(crawl, [{"name": "a", "archive": "a.tar.gz"}])
    real_resolve = crawl_mod.resolve
    monkeypatch.setattr(crawl_mod, "resolve", lambda uri: (_FlakyFS(error), real_resolve(uri)[1]))
    with pytest.raises(MemoryError if isinstance(error, MemoryError) else StorageReadError):
        _ingest(crawl, tmp_path / "lake")


def test_parquet_crawl_ids_follow_the_normalised_path(tmp_path: Path) -> None:
    from seedcoder_assets.core.ingest.archives import file_id
    crawl = tmp_path / "c1"
    crawl.mkdir()
    pq.write_table(pa.table({"repo": ["o/r", "o/r", "o/r"], "path": ["a//b.py", "a/b.py", "a/./c.py"],
                             "content": ["x = 1\n", "x = 2\n", "y = 3\n"]}), crawl / "part-0.parquet")
    stats, files, lineage = _ingest(crawl, tmp_path / "lake")
    assert sorted(files["path"]) == ["a/b.py", "a/c.py"] and dict(stats.drops) == {"duplicate_path": 1}
    assert set(files["id"]) == {file_id("c1", "o/r", "a/b.py"), file_id("c1", "o/r", "a/c.py")}
    assert lineage["id"].n_unique() == lineage.height == 3


def test_a_corrupt_header_in_the_middle_is_not_a_shorter_repository() -> None:
    from seedcoder_assets.core.ingest.archives import CorruptArchive, iter_tar
    data = bytearray(_plain_tar(["p/a.py", "p/b.py", "p/c.py"]))
    data[1024 + 148:1024 + 156] = b"99999999"  # the second header's checksum
    with pytest.raises(CorruptArchive, match="unreadable tar header"):
        list(iter_tar(io.BytesIO(bytes(data)), ExtractParams()))


def test_gzip_padding_after_the_stream_is_tolerated() -> None:
    import gzip

    from seedcoder_assets.core.ingest.archives import iter_tar
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("p/a.py")
        info.size = len(PY)
        tar.addfile(info, io.BytesIO(PY))
    padded = gzip.compress(buf.getvalue()) + b"\x00" * 4096  # as some writers pad to a block size
    assert [m.path for m in iter_tar(io.BytesIO(padded), ExtractParams())] == ["p/a.py"]
    two = gzip.compress(buf.getvalue()[:512 * 2]) + gzip.compress(buf.getvalue()[512 * 2:])  # concatenated members
    assert [m.path for m in iter_tar(io.BytesIO(two), ExtractParams())] == ["p/a.py"]


def test_a_file_saved_with_a_byte_order_mark_hashes_like_its_copy_without(tmp_path: Path) -> None:
    """Found on the large real crawl by `no_duplicate_content`: docutils ships utf8.rst and utf-8-sig.rst,
    the same text with and without a BOM; hashing the raw bytes kept both through exact dedup."""
    import hashlib

    crawl = tmp_path / "c1"
    crawl.mkdir()
    text = "Grüße\n"
    _tar(crawl / "a.tar.gz", [("r-1.0/utf8.rst", text.encode(), tarfile.REGTYPE),
                              ("r-1.0/utf-8-sig.rst", b"\xef\xbb\xbf" + text.encode(), tarfile.REGTYPE)])
    _manifest(crawl, [{"name": "r", "archive": "a.tar.gz"}])
    _, files, _ = _ingest(crawl, tmp_path / "lake")
    assert files["content"].to_list() == [text, text]
    assert set(files["sha256"]) == {hashlib.sha256(text.encode()).hexdigest()}
