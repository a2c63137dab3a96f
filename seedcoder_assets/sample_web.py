"""Build a real web dump from Debian documentation packages: WARC files as Common Crawl ships them.

Nothing third-party is committed: the packages are fetched at run time with `apt-get download` (the
machine's Debian mirror), unpacked with `dpkg-deb`, and every file under a package's HTML root becomes a
fetch of that page from the site that publishes it (python3.11-doc's pages as https://docs.python.org/3.11/...).
Programming manuals and API references are the code-related pages; application help pages and Debian's
non-programming manuals are the rest. The charsets are the pages' own (UTF-8, EUC-KR, ISO-8859-x,
windows-1251, ISO-2022-JP, Big5 ...), and so are the stylesheets, scripts and pictures (non-HTML records).

Layout of a dump folder (what `new_web_dump_sensor` and `register-web-dump` read):

    <dump>/<dump>-00000.warc.gz ...   one gzip member per record (request, response, revisit, ...)
    <dump>/provenance.jsonl           per page: url, package, version, path, kind, fault (the sample's labels)
    <dump>/warc.paths                 the WARC files, one relative path per line (written last: "landed")

What real crawls do to a pipeline is in it too, each record named in `provenance.jsonl`: the same page
fetched again (identical, or with its footer date changed), symlinked pages (one body, two URLs), redirects
and 404s, a revisit record, a response whose HTTP header is broken, a page whose header charset is wrong,
a 50 MB page, a page nested 100,000 elements deep, a gzip bomb, and a last file cut mid-record.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import mimetypes
import random
import re
import shutil
import subprocess
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from seedcoder_assets import settings

PATHS_MANIFEST = "warc.paths"
PROVENANCE = "provenance.jsonl"


@dataclass(frozen=True)
class DocPackage:
    name: str  # the Debian package
    site: str  # where its pages are published (the URL prefix of its fetches)
    kind: str  # "programming" (manuals, API references) or "other" (application help, non-programming manuals)


SMALL = [
    DocPackage("python3.11-doc", "https://docs.python.org/3.11/", "programming"),
    DocPackage("postgresql-doc-15", "https://www.postgresql.org/docs/15/", "programming"),
    DocPackage("git-doc", "https://git-scm.com/docs/", "programming"),
    DocPackage("nodejs-doc", "https://nodejs.org/docs/v18/api/", "programming"),
    DocPackage("apache2-doc", "https://httpd.apache.org/docs/2.4/", "programming"),
    DocPackage("debian-faq", "https://www.debian.org/doc/manuals/debian-faq/", "other"),
    DocPackage("debian-history", "https://www.debian.org/doc/manuals/project-history/", "other"),
    DocPackage("homebank-data", "https://www.gethomebank.org/help/", "other"),
    DocPackage("xsane-common", "http://www.xsane.org/doc/", "other"),
    DocPackage("tuxpaint-data", "https://tuxpaint.org/docs/", "other"),
    DocPackage("hugin-data", "https://hugin.sourceforge.io/docs/manual/", "other"),
    DocPackage("grisbi-common", "https://www.grisbi.org/help/", "other"),
]
LARGE = SMALL + [
    DocPackage("python-django-doc", "https://docs.djangoproject.com/en/3.2/", "programming"),
    DocPackage("cmake-doc", "https://cmake.org/cmake/help/v3.25/", "programming"),
    DocPackage("installation-guide-amd64", "https://www.debian.org/releases/bookworm/amd64/", "other"),
    DocPackage("aptitude-doc-en", "https://www.debian.org/doc/manuals/aptitude/", "other"),
]
PAGES_PER_PACKAGE = {"small": 120, "large": None}  # None: every page
ASSETS_PER_PACKAGE = 8  # stylesheets, scripts, pictures: non-HTML records
HTML_SUFFIX = re.compile(r"\.x?html?(\.[a-z]{2}(-[a-z]{2})?)?(\.(?!gz$)[a-z0-9-]+)?(\.gz)?$", re.I)
META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([a-zA-Z0-9_:.-]+)""", re.I)


def deb_cache() -> Path:
    return Path(settings.current().sdist_cache).parent / "debs"


def fetch_packages(names: list[str], cache: Path) -> dict[str, Path]:
    """`apt-get download` each package into the cache once; name -> .deb."""
    cache.mkdir(parents=True, exist_ok=True)
    have = {p.name.split("_", 1)[0]: p for p in cache.glob("*.deb")}
    missing = [n for n in names if n not in have]
    if missing:
        if not shutil.which("apt-get"):
            raise RuntimeError("sample-web fetches Debian packages with apt-get, which this machine lacks")
        fetch = ["apt-get", "download", *missing]
        if subprocess.run(fetch, cwd=cache, capture_output=True).returncode != 0:  # a fresh machine: no lists yet
            subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
            subprocess.run(fetch, cwd=cache, check=True, capture_output=True)
        have = {p.name.split("_", 1)[0]: p for p in cache.glob("*.deb")}
    return {n: have[n] for n in names}


def unpack(deb: Path, dest: Path) -> Path:
    if not dest.exists():
        tmp = dest.with_name(dest.name + ".part")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], check=True)
        tmp.rename(dest)
    return dest


def html_root(tree: Path) -> Path:
    """The deepest folder holding every HTML page of an unpacked package."""
    pages = [p for p in tree.rglob("*") if p.is_file() and HTML_SUFFIX.search(p.name)]
    if not pages:
        raise ValueError(f"{tree}: no HTML pages")
    common = Path(*[parts[0] for parts in zip(*(p.parent.parts for p in pages)) if len(set(parts)) == 1])
    return common


def _uuid(*parts: object) -> str:
    return f"<urn:uuid:{uuid.UUID(bytes=hashlib.md5(repr(parts).encode()).digest())}>"


def _content_type(path: str, body: bytes) -> str:
    if HTML_SUFFIX.search(path):
        return "text/html"
    return mimetypes.guess_type(path)[0] or "application/octet-stream"


class _Writer:
    """WARC files of a dump, one gzip member per record, a new file every `file_records` responses."""

    def __init__(self, dest: Path, dump: str, file_records: int) -> None:
        from warcio.warcwriter import WARCWriter

        self.dest, self.dump, self.file_records, self._writer_cls = dest, dump, file_records, WARCWriter
        self.files: list[str] = []
        self._out: io.BufferedWriter | None = None
        self._responses = 0

    def _open(self) -> None:
        if self._out is None or self._responses >= self.file_records:
            if self._out is not None:
                self._out.close()
            name = f"{self.dump}-{len(self.files):05d}.warc.gz"
            self.files.append(name)
            self._out = open(self.dest / name, "wb")
            self._responses = 0
            self.writer = self._writer_cls(self._out, gzip=True)
            info = self.writer.create_warcinfo_record(name, {
                "software": "seedcoder sample-web", "format": "WARC File Format 1.1",
                "description": "pages of Debian documentation packages, fetched as their sites publish them"})
            info.rec_headers.replace_header("WARC-Record-ID", _uuid(self.dump, name))
            info.rec_headers.replace_header("WARC-Date", "2026-09-01T00:00:00Z")
            self.writer.write_record(info)

    def response(self, url: str, when: datetime, status: str, headers: list[tuple[str, str]], body: bytes,
                 raw_http: bytes | None = None) -> None:
        from warcio.statusandheaders import StatusAndHeaders

        self._open()
        stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
        w = self.writer
        request = StatusAndHeaders(f"GET /{url.split('/', 3)[-1]} HTTP/1.1",
                                   [("Host", url.split("/")[2]), ("User-Agent", "seedcoder-sample/1.0")],
                                   is_http_request=True)
        w.write_record(w.create_warc_record(url, "request", payload=io.BytesIO(b""), http_headers=request,
                                            warc_headers_dict={"WARC-Date": stamp,
                                                               "WARC-Record-ID": _uuid(url, stamp, "request")}))
        ids = {"WARC-Date": stamp, "WARC-Record-ID": _uuid(url, stamp, "response")}
        media = dict(headers).get("Content-Type", "").split(";")[0].strip()
        if media:  # Common Crawl's own sniffed type of the payload (readers filter on it)
            ids["WARC-Identified-Payload-Type"] = media
        if raw_http is not None:  # the HTTP head as given, however broken: warcio would repair it
            w.write_record(w.create_warc_record(url, "response", payload=io.BytesIO(raw_http + body),
                                                warc_headers_dict=ids))
        else:
            w.write_record(w.create_warc_record(url, "response", payload=io.BytesIO(body), warc_headers_dict=ids,
                                                http_headers=StatusAndHeaders(status, headers, protocol="HTTP/1.1")))
        self._responses += 1

    def revisit(self, url: str, when: datetime, original: datetime) -> None:
        from warcio.statusandheaders import StatusAndHeaders

        self._open()
        stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
        self.writer.write_record(self.writer.create_revisit_record(
            url, digest="sha1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", refers_to_uri=url,
            refers_to_date=original.strftime("%Y-%m-%dT%H:%M:%SZ"),
            http_headers=StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1"),
            warc_headers_dict={"WARC-Date": stamp, "WARC-Record-ID": _uuid(url, stamp, "revisit")}))

    def close(self, cut_last_bytes: int = 0) -> None:
        if self._out is not None:
            self._out.close()
        if cut_last_bytes and self.files:  # an interrupted transfer: the last record's member is cut short
            last = self.dest / self.files[-1]
            data = last.read_bytes()
            last.write_bytes(data[:max(0, len(data) - cut_last_bytes)])


def _headers(content_type: str, charset: str | None, extra: list[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    ct = f"{content_type}; charset={charset}" if charset else content_type
    return [("Content-Type", ct), ("Server", "Apache"), *extra]


def build_dump(dest: Path, which: str = "small", epoch: int = 0, cache: Path | None = None,
               packages: list[DocPackage] | None = None, file_records: int = 200) -> Path:
    """Write a dump folder (see the module docstring). `epoch` is a later crawl of the same sites: other
    fetch dates, the same pages (a re-crawl: mostly duplicates of the earlier dump)."""
    packages = packages or {"small": SMALL, "large": LARGE}[which]
    limit = PAGES_PER_PACKAGE.get(which)
    cache = cache or deb_cache()
    debs = fetch_packages([p.name for p in packages], cache)
    dest.mkdir(parents=True, exist_ok=True)
    for stale in list(dest.glob("*.warc.gz")) + [dest / PATHS_MANIFEST, dest / PROVENANCE]:
        stale.unlink(missing_ok=True)
    rng = random.Random(f"{dest.name}:{epoch}")
    base = datetime(2026, 9, 1, tzinfo=UTC) + timedelta(days=61 * epoch)
    writer = _Writer(dest, dest.name, file_records)
    provenance: list[dict] = []

    def fetched(url: str, package: DocPackage, version: str, path: str, fault: str | None, when: datetime,
                status: str, headers: list[tuple[str, str]], body: bytes, raw_http: bytes | None = None) -> None:
        writer.response(url, when, status, headers, body, raw_http)
        provenance.append({"url": url, "fetched_at": when.isoformat(), "package": package.name, "version": version,
                           "path": path, "kind": package.kind, "fault": fault})

    pages_seen: list[tuple[str, DocPackage, str, str, bytes, datetime]] = []
    for package in packages:
        deb = debs[package.name]
        version = deb.name.split("_")[1]
        root = html_root(unpack(deb, cache / "unpacked" / deb.stem))
        files = sorted(p for p in root.rglob("*") if p.is_file())
        pages = [p for p in files if HTML_SUFFIX.search(p.name)]
        if limit is not None:  # a seeded choice that does not depend on the machine's file order
            pages = sorted(pages, key=lambda p: hashlib.md5(f"{package.name}/{p.relative_to(root)}".encode()).digest())
            pages = sorted(pages[:limit])
        assets = [p for p in files if not HTML_SUFFIX.search(p.name)][:ASSETS_PER_PACKAGE]
        for p in sorted(pages + assets):
            rel = p.relative_to(root).as_posix()
            url = package.site + rel
            body = p.read_bytes()
            when = base + timedelta(seconds=rng.randrange(30 * 86400))
            ctype = _content_type(rel, body)
            # A compressed page goes out as itself, gzip-encoded, as a server with precompressed files sends it
            extra = [("Content-Encoding", "gzip")] if rel.endswith(".gz") and ctype == "text/html" else []
            plain = gzip.decompress(body) if extra else body
            declared = META_CHARSET.search(plain[:4096]) if ctype == "text/html" else None
            charset = declared.group(1).decode() if declared and rng.random() < 0.7 else None  # servers often omit it
            fetched(url, package, version, rel, "symlink" if p.is_symlink() else None, when, "200 OK",
                    _headers(ctype, charset, extra), body)
            if ctype == "text/html" and not extra:
                pages_seen.append((url, package, version, rel, body, when))
    _faults(pages_seen, fetched, writer, rng)
    if pages_seen:  # the last file ends in the middle of this record, as an interrupted transfer leaves it
        url, package, version, rel, body, when = pages_seen[0]
        fetched(url + "?cut", package, version, rel, "truncated_record", when, "200 OK",
                _headers("text/html", "utf-8"), body)
    writer.close(cut_last_bytes=200)
    (dest / PROVENANCE).write_text("".join(json.dumps(r) + "\n" for r in provenance))
    (dest / PATHS_MANIFEST).write_text("".join(f + "\n" for f in writer.files))  # last: the dump has landed
    return dest


def _faults(pages: list, fetched, writer: _Writer, rng: random.Random) -> None:
    """What real crawls hold besides plain pages; each record's `fault` in provenance says which it is."""
    if not pages:
        return
    html = [p for p in pages if b"<body" in p[4].lower()]
    picks = rng.sample(html, min(len(html), max(8, len(html) // 30)))
    for i, (url, package, version, rel, body, when) in enumerate(picks):  # re-fetched a month later
        later = when + timedelta(days=30)
        if i % 2:  # the footer's date changed: a near duplicate of the first fetch
            body = re.sub(rb"(</body>)", b"<p>Last updated on " + later.strftime("%B %d, %Y").encode()
                          + b".</p>\\1", body, count=1, flags=re.I)
        fetched(url, package, version, rel, "refetch_changed" if i % 2 else "refetch_same", later, "200 OK",
                _headers("text/html", "utf-8"), body)
    url, package, version, rel, body, when = html[0]
    fetched(url.rsplit("/", 1)[0] + "/moved", package, version, rel, "redirect", when, "301 Moved Permanently",
            [("Location", url), ("Content-Type", "text/html")], b"<html><body>Moved <a href=x>here</a></body></html>")
    fetched(url.rsplit("/", 1)[0] + "/missing.html", package, version, rel, "not_found", when, "404 Not Found",
            _headers("text/html", "utf-8"), b"<html><body><h1>Not Found</h1></body></html>")
    writer.revisit(url, when + timedelta(days=3), when)
    fetched(url + "?broken", package, version, rel, "broken_http_header", when, "", [], body,
            raw_http=b"HTTP/1.1 200 OK\r\nContent-Type text/html\r\nX-Cache: \x00\x01\r\n\r\n")
    # A server that says UTF-8 for every page: an EUC-KR or Latin-1 page then fails to decode as UTF-8.
    legacy = [p for p in html if (m := META_CHARSET.search(p[4][:4096])) and m.group(1).lower() not in (b"utf-8", b"us-ascii")]
    for url, package, version, rel, body, when in legacy[:3]:
        fetched(url + "?wrong-charset", package, version, rel, "wrong_http_charset", when, "200 OK",
                _headers("text/html", "utf-8"), body)
    url, package, version, rel, body, when = html[-1]
    unit = body if len(body) > 1000 else body * 50
    fetched(url + "?huge", package, version, rel, "huge_page", when, "200 OK", _headers("text/html", "utf-8"),
            unit * (50_000_000 // len(unit) + 1))
    text = b"<p>" + re.sub(rb"<[^>]*>", b" ", body)[:2000] + b"</p>"
    fetched(url + "?deep", package, version, rel, "deeply_nested", when, "200 OK", _headers("text/html", "utf-8"),
            b"<html><body>" + b"<div>" * 100_000 + text + b"</div>" * 100_000 + b"</body></html>")
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip: 200 MB of zeros in ~200 KB, never held whole
    bomb = packer.compress(b"<html><body>") + b"".join(packer.compress(bytes(1 << 20)) for _ in range(200))
    bomb += packer.flush()
    fetched(url + "?bomb", package, version, rel, "decompression_bomb", when, "200 OK",
            _headers("text/html", "utf-8", [("Content-Encoding", "gzip")]), bomb)
    fetched(url + "?short", package, version, rel, "under_10_words", when, "200 OK", _headers("text/html", "utf-8"),
            b"<html><head><title>Redirecting</title></head><body><p>This page has moved.</p></body></html>")
