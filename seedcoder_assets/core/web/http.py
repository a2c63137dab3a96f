"""The HTTP response inside a WARC response record: its head, parsed strictly, and its body, decoded.

A crawl stores the response as it came over the wire, so everything here can be broken: a head line
without a colon, a status line that is not one, a body compressed a thousandfold, chunked, or in a
charset other than the one its header names. Each problem is a `BadResponse` with the reason the page
stage records; nothing here raises anything else.
"""

from __future__ import annotations

import codecs
import re
import zlib
from dataclasses import dataclass

from resiliparse.parse.encoding import detect_encoding

STATUS_LINE = re.compile(rb"^HTTP/\d(?:\.\d)? (\d{3})(?: .*)?$")
HEADER_NAME = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 token
META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([a-zA-Z0-9_:.-]+)""", re.I)
CHUNK_SIZE = re.compile(rb"[0-9a-fA-F]{1,8}(;[^\r\n]*)?\r\n")
HTML_TYPES = ("text/html", "application/xhtml+xml")
LATIN = {"iso-8859-1", "latin-1", "latin1", "us-ascii", "ascii", "windows-1252", "cp1252", "iso8859-1"}


class BadResponse(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class HttpHead:
    status: int
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value

    @property
    def media_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    @property
    def charset(self) -> str | None:
        m = re.search(r"charset\s*=\s*[\"']?([^\s;\"']+)", self.headers.get("content-type", ""), re.I)
        return m.group(1) if m else None


def split_response(block: bytes) -> tuple[HttpHead, bytes]:
    """A response record's block -> (head, body). The head ends at the first empty line; every line of it
    must be a status line or `name: value` (a continuation line is folded into the one before)."""
    end, sep = block.find(b"\r\n\r\n"), 4
    if end < 0 or (0 <= block.find(b"\n\n") < end):
        end, sep = block.find(b"\n\n"), 2
    if end < 0:
        raise BadResponse("bad_http_header", "no end of the HTTP head")
    lines = block[:end].replace(b"\r\n", b"\n").split(b"\n")
    m = STATUS_LINE.match(lines[0])
    if not m:
        raise BadResponse("bad_http_header", f"status line {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    last = None
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t") and last is not None:  # obsolete folding
            headers[last] += " " + line.strip().decode("latin-1")
            continue
        name, colon, value = line.partition(b":")
        if not colon or not HEADER_NAME.match(name) or any(c < 0x20 and c != 0x09 for c in value):
            raise BadResponse("bad_http_header", f"header line {line[:80]!r}")
        last = name.decode("ascii").lower()
        headers[last] = value.strip().decode("latin-1")
    return HttpHead(int(m.group(1)), headers), block[end + sep:]


def dechunk(body: bytes) -> bytes:
    out, pos = [], 0
    while True:
        eol = body.find(b"\r\n", pos)
        if eol < 0:
            raise BadResponse("bad_http_body", "chunked body without a chunk size line")
        try:
            size = int(body[pos:eol].split(b";", 1)[0], 16)
        except ValueError:
            raise BadResponse("bad_http_body", f"chunk size {body[pos:eol][:20]!r}") from None
        if size == 0:
            return b"".join(out)
        out.append(body[eol + 2:eol + 2 + size])
        pos = eol + 2 + size + 2
        if pos > len(body):
            raise BadResponse("bad_http_body", "chunked body cut short")


def decode_body(head: HttpHead, body: bytes, max_bytes: int) -> bytes:
    """The payload as the page's bytes: de-chunked and decompressed, never beyond `max_bytes` (a
    decompression bomb stops at the cap; it is not inflated to find out how big it is)."""
    # Crawlers often store the body de-chunked but keep the header: only a body that starts with a chunk
    # size line is de-chunked.
    if "chunked" in head.headers.get("transfer-encoding", "").lower() and CHUNK_SIZE.match(body):
        body = dechunk(body)
    encoding = head.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity", "none"):
        return body
    if encoding in ("gzip", "x-gzip", "deflate"):
        inflater = zlib.decompressobj(47 if encoding != "deflate" else zlib.MAX_WBITS)  # 47: gzip or zlib header
        try:
            out = inflater.decompress(body, max_bytes + 1)
        except zlib.error:
            if encoding != "deflate":
                raise BadResponse("bad_http_body", f"{encoding} body does not inflate") from None
            try:  # raw deflate, as some servers send
                inflater = zlib.decompressobj(-zlib.MAX_WBITS)
                out = inflater.decompress(body, max_bytes + 1)
            except zlib.error:
                raise BadResponse("bad_http_body", "deflate body does not inflate") from None
        if len(out) > max_bytes:
            raise BadResponse("decompression_bomb", f"{len(body)} bytes inflate past {max_bytes}")
        return out
    raise BadResponse("unsupported_content_encoding", encoding[:40])


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name.strip().lower()).name
    except LookupError:
        return None


def _strict(data: bytes, codec: str | None) -> str | None:
    if codec is None:
        return None
    try:
        return data.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


def decode_text(data: bytes, http_charset: str | None) -> tuple[str, str, str]:
    """Bytes -> (text, codec, where the codec came from), in the order browsers use: a byte-order mark,
    the HTTP header, the page's `<meta>`, then a guess. A declared charset is taken only if the bytes
    decode under it; a Latin-1 declaration over bytes that are valid UTF-8 with non-ASCII in them is the
    most common server misconfiguration, and is read as UTF-8."""
    for bom, codec in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
                       (codecs.BOM_UTF16_BE, "utf-16-be")):
        if data.startswith(bom):
            text = _strict(data[len(bom):], codec)
            if text is not None:
                return text, codec, "bom"
    m = META_CHARSET.search(data[:8192])
    declared = [("http", _codec(http_charset)), ("meta", _codec(m.group(1).decode("ascii", "replace")) if m else None)]
    for source, codec in declared:
        if codec is None:
            continue
        if codec in {_codec(x) for x in LATIN} and not data.isascii():
            text = _strict(data, "utf-8")
            if text is not None:
                return text, "utf-8", f"{source}_latin1_was_utf8"
        text = _strict(data, codec)
        if text is not None:
            return text, codec, source
    text = _strict(data, "utf-8")
    if text is not None:
        return text, "utf-8", "utf8"
    guess = _codec(detect_encoding(data[:65536]))
    text = _strict(data, guess)
    if text is not None:
        return text, guess or "", "detected"
    return data.decode(guess or "utf-8", errors="replace"), guess or "utf-8", "replaced"
