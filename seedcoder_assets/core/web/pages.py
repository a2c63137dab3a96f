"""WARC files of a web dump to pages: one row per HTML response that has text, and one lineage row per
response or revisit record (kept, or dropped with its reason).

A dump lands as WARC files plus `warc.paths` (their relative paths, one per line, as Common Crawl lists a
crawl's files); the shard planner gives each shard some of those lines. Records are read with FastWARC
(benchmarks/bench_web.py: it reads several times faster than warcio), gzip member by member, so memory
holds one record at a time. Request, metadata and warcinfo records are counted, not pages.

Every failure costs its record (or, for damage FastWARC cannot read past, the rest of its file), never the
shard: `missing_warc`, `unreadable_warc` (the rest of a file past damage), `truncated_record`,
`too_large` (WARC block over the limit: not read), `bad_http_header`, `bad_http_body`, `http_status`,
`not_html`, `decompression_bomb`, `unsupported_content_encoding`, `undecodable`, `too_deep`, `extract_failed`,
`too_few_words` (the paper's under-10-words rule), and `revisit` (no payload of its own).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.fs as pafs
from fastwarc.warc import ArchiveIterator, WarcRecordType
from pydantic import BaseModel, Field

from seedcoder_assets.core import object_store
from seedcoder_assets.core.parquet_io import PartWriter
from seedcoder_assets.core.stats import LineageWriter, StageStats
from seedcoder_assets.core.web.extract import TooDeep, extract
from seedcoder_assets.core.web.http import HTML_TYPES, BadResponse, decode_body, decode_text, split_response

PATHS_MANIFEST: Final = "warc.paths"

WEB_PAGE_SCHEMA: Final[pa.Schema] = pa.schema([
    ("id", pa.string()),  # the WARC-Record-ID (urn:uuid:...), or <file>@<offset> for a record without one
    ("dump", pa.string()), ("warc_file", pa.string()), ("warc_offset", pa.int64()),
    ("url", pa.string()), ("host", pa.string()), ("fetched_at", pa.timestamp("s", tz="UTC")),
    ("http_status", pa.int16()), ("content_type", pa.string()),
    ("charset", pa.string()), ("charset_source", pa.string()),  # bom | http | meta | utf8 | detected | ...
    ("title", pa.string()), ("text", pa.large_string()),
    ("code_blocks", pa.list_(pa.large_string())),  # every non-empty <pre>, verbatim
    ("code_tag", pa.bool_()),  # a <pre> or <code> with text: the rule branch
    ("code_tags", pa.int32()), ("code_blocks_in_text", pa.int32()),
    ("words", pa.int32()), ("html_bytes", pa.int64()), ("size", pa.int64()),  # size: UTF-8 bytes of text
    ("text_hash", pa.string()),  # sha256 of the text: exact dedup
])


class WebPageParams(BaseModel, frozen=True):
    max_record_bytes: int = Field(16_000_000, description="A WARC block over this is dropped unread (too_large)")
    max_page_bytes: int = Field(8_000_000, description="Most bytes a body may inflate to (decompression_bomb)")
    max_depth: int = Field(1024, description="Deepest element nesting read (too_deep past it)")
    min_words: int = Field(10, description="Pages with fewer words are dropped (too_few_words; paper 2.2.3)")
    main_content: bool = Field(True, description="Drop navigation, headers and footers (Resiliparse)")


def warc_files(dump_uri: str, lines: frozenset[int] | None = None) -> list[tuple[int, str]]:
    """(line number, relative path) of the dump's WARC files, or of those in `lines` (a shard's)."""
    text = object_store.read_text(f"{dump_uri.rstrip('/')}/{PATHS_MANIFEST}")
    return [(n, line.strip()) for n, line in enumerate(text.lstrip("\ufeff").splitlines(), 1)
            if line.strip() and (lines is None or n in lines)]


def parse_warc_path_line(line: str) -> tuple[dict[str, Any] | None, str | None]:
    """A `warc.paths` line as the shard planner reads manifests: the file is its own unit of work."""
    path = line.strip()
    if not path or path.startswith("/") or ".." in path.split("/"):
        return None, "unsafe_path"
    return {"repo": path, "archive": path}, None


def _record_id(record, name: str) -> str:
    rid = record.headers.get("WARC-Record-ID") or ""
    return rid.strip("<>") or f"{name}@{record.stream_pos}"


def _fetched_at(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def page_row(block: bytes, params: WebPageParams) -> dict[str, Any]:
    """A response block -> the page's columns (raises BadResponse with the reason it is not a page)."""
    head, body = split_response(block)
    if head.status != 200:
        raise BadResponse("http_status", str(head.status))
    media = head.media_type
    if media and media not in HTML_TYPES:
        raise BadResponse("not_html", media[:80])
    data = decode_body(head, body, params.max_page_bytes)
    if not media and not data.lstrip()[:256].lower().startswith((b"<!doctype html", b"<html")):
        raise BadResponse("not_html", "no content type, and not HTML by its first bytes")
    html, charset, charset_source = decode_text(data, head.charset)
    if charset_source == "replaced" and html.count("\ufffd") > max(8, len(html) // 100):
        raise BadResponse("undecodable", f"no charset decodes it ({charset} replaces {html.count(chr(0xfffd))} bytes)")
    try:
        page = extract(html, params.max_depth, params.main_content)
    except TooDeep as exc:
        raise BadResponse("too_deep", f"over {exc.depth} levels") from None
    except Exception as exc:  # a parser failure on one page costs that page
        raise BadResponse("extract_failed", f"{type(exc).__name__}: {exc}"[:300]) from None
    if page.words < params.min_words:
        raise BadResponse("too_few_words", f"{page.words} words")
    text = page.text
    return {"http_status": head.status, "content_type": media or "text/html", "charset": charset,
            "charset_source": charset_source, "title": page.title, "text": text, "code_blocks": page.code_blocks,
            "code_tag": page.code_tags > 0, "code_tags": page.code_tags,
            "code_blocks_in_text": page.code_blocks_in_text, "words": page.words, "html_bytes": len(data),
            "size": len(text.encode("utf-8", "surrogatepass")),
            "text_hash": hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()}


@dataclass
class Item:
    """What one response or revisit record gave: its page columns, or the reason it gave none."""

    id: str
    url: str | None
    fetched_at: str | None
    offset: int
    nbytes: int
    row: dict[str, Any] | None = None
    reason: str | None = None
    detail: str = ""


def read_records(stream, name: str, params: WebPageParams, counts: Counter) -> Iterator[Item]:
    """An Item per response or revisit record of one WARC file; other record types go to `counts`. Damage
    FastWARC cannot read past (a corrupt gzip member, bytes that are not a WARC header) ends the file with one
    (`<file>`, unreadable_warc) item: what it read before stands."""
    records = ArchiveIterator(stream, parse_http=False)
    last = 0
    while True:
        try:
            record = next(records)
        except StopIteration:
            return
        except OSError as exc:  # the rest of the file is lost: one item says so, with where it stopped
            yield Item(name, None, None, last, 0, reason="unreadable_warc", detail=f"after byte {last}: {exc}")
            return
        kind, last = record.record_type, record.stream_pos
        counts[str(kind).rsplit(".", 1)[-1]] += 1
        if kind not in (WarcRecordType.response, WarcRecordType.revisit):
            continue
        item = Item(_record_id(record, name), record.headers.get("WARC-Target-URI"), record.headers.get("WARC-Date"),
                    record.stream_pos, record.content_length)
        if kind == WarcRecordType.revisit:
            item.reason = "revisit"
        elif record.headers.get("Content-Length") is None:  # WARC requires it: the record's header was cut
            item.reason, item.detail = "truncated_record", "no Content-Length"
        elif item.nbytes > params.max_record_bytes:  # not read: the iterator skips it
            item.reason, item.detail = "too_large", f"{item.nbytes} bytes"
        else:
            try:
                block = record.reader.read(item.nbytes + 1)
            except OSError as exc:
                block, item.detail = b"", str(exc)
            if len(block) < item.nbytes:
                item.reason = "truncated_record"
                item.detail = item.detail or f"{len(block)} of {item.nbytes} bytes"
            else:
                try:
                    item.row = page_row(block, params)
                except BadResponse as exc:
                    item.reason, item.detail = exc.reason, exc.detail
        yield item


def extract_pages(dump: str, dump_uri: str, dst_uri: str, lineage: LineageWriter, params: WebPageParams,
                  lines: frozenset[int] | None = None) -> StageStats:
    """The pages of a dump's WARC files (or of one shard's), streamed record by record."""
    counts: Counter = Counter()
    charset_sources: Counter = Counter()
    code_blocks = code_blocks_in_text = code_tag_pages = 0
    buffer: list[dict[str, Any]] = []
    with PartWriter(dst_uri, WEB_PAGE_SCHEMA, rows_per_part=100_000) as out:
        for _, rel in warc_files(dump_uri, lines):
            src = f"{dump_uri.rstrip('/')}/{rel}"
            fs, path = object_store.resolve(src)
            info = fs.get_file_info(path)
            if info.type != pafs.FileType.File:
                lineage.dropped(rel, "missing_warc", detail=src)
                continue
            try:
                stream = fs.open_input_file(path)  # FastWARC asks where it is (tell)
            except OSError as exc:
                lineage.dropped(rel, "unreadable_warc", detail=str(exc)[:300])
                continue
            with stream:
                for item in read_records(stream, rel, params, counts):
                    if item.reason is not None:
                        lineage.dropped(item.id, item.reason, item.nbytes,
                                        detail=f"{item.url or rel} {item.detail}".strip()[:500])
                        continue
                    row = item.row
                    url = item.url or ""
                    buffer.append({"id": item.id, "dump": dump, "warc_file": rel, "warc_offset": item.offset,
                                   "url": url, "host": urlsplit(url).hostname or "",
                                   "fetched_at": _fetched_at(item.fetched_at), **row})
                    lineage.kept(item.id, row["size"], detail=url[:500])
                    charset_sources[row["charset_source"]] += 1
                    code_blocks += len(row["code_blocks"])
                    code_blocks_in_text += row["code_blocks_in_text"]
                    code_tag_pages += row["code_tag"]
                    if len(buffer) >= 256:
                        out.write_rows(buffer)
                        buffer.clear()
        out.write_rows(buffer)
    stats = lineage.close()
    stats.extra.update(records_by_type=dict(sorted(counts.items())), charset_sources=dict(charset_sources),
                       code_tag_pages=code_tag_pages, code_blocks=code_blocks,
                       code_blocks_verbatim_in_text=code_blocks_in_text)
    return stats
