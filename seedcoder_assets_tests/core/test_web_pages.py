"""Web pages from a real dump (Debian documentation packages as WARC files, built by `seedcoder sample-web`):
every record has one fate with a counted reason, code blocks stay verbatim, damage costs what it damages,
and each check of the web corpus fails on bad output."""

from __future__ import annotations

import gzip
import json
import shutil
import zlib
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from seedcoder_assets.core.parquet_io import PartWriter
from seedcoder_assets.core.stats import LineageWriter
from seedcoder_assets.core.web.checks import (
    code_blocks_verbatim,
    no_exact_duplicate_left,
    no_short_page,
    pre_blocks,
    records_accounted,
)
from seedcoder_assets.core.web.extract import depth_bound, extract
from seedcoder_assets.core.web.http import BadResponse, HttpHead, decode_body, decode_text, split_response
from seedcoder_assets.core.web.pages import WebPageParams, extract_pages, warc_files
from seedcoder_assets.sample_web import PATHS_MANIFEST, PROVENANCE, build_dump


@pytest.fixture(scope="module")
def dump(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_dump(tmp_path_factory.mktemp("web") / "w1", "small")


def _run(dump: Path, lake: Path, name: str = "w1", **params) -> tuple:
    lineage = LineageWriter(str(lake), "web_pages", name, "run-1", "web")
    stats = extract_pages(name, str(dump), f"{lake}/web/web_pages/dump={name}", lineage, WebPageParams(**params))
    pages = pl.read_parquet(f"{lake}/web/web_pages/dump={name}/*.parquet")
    rows = pl.read_parquet(f"{lake}/lineage/stage=web_pages/crawl={name}/*.parquet")
    return stats, pages, rows


@pytest.fixture(scope="module")
def pages(dump: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    lake = tmp_path_factory.mktemp("lake")
    return (lake, *_run(dump, lake))


def test_every_record_has_one_fate_and_each_fault_its_reason(dump: Path, pages) -> None:
    lake, stats, kept, lineage = pages
    provenance = [json.loads(x) for x in (dump / PROVENANCE).read_text().splitlines()]
    assert stats.balanced and lineage.height == stats.rows_in == lineage["id"].n_unique()
    assert kept.height == stats.rows_out > 600 and set(kept["id"]) == set(lineage.filter(pl.col("decision") == "kept")["id"])
    reason = dict(zip(lineage["detail"].str.split(" ").list.first(), lineage["reason"]))
    expected = {"broken_http_header": "bad_http_header", "redirect": "http_status", "not_found": "http_status",
                "huge_page": "too_large", "deeply_nested": "too_deep", "decompression_bomb": "decompression_bomb",
                "under_10_words": "too_few_words", "truncated_record": "truncated_record"}
    for p in provenance:
        if p["fault"] in expected:
            assert reason[p["url"]] == expected[p["fault"]], p
    assert stats.drops["revisit"] == 1 and stats.drops["truncated_record"] == 1  # the cut last record
    assert stats.drops["not_html"] >= 50  # the packages' stylesheets, scripts and pictures
    # The server that called EUC-KR pages UTF-8: decoded by the page's <meta> instead, not replaced.
    wrong = kept.filter(pl.col("url").str.ends_with("?wrong-charset"))
    assert wrong.height >= 1 and not wrong["text"].str.contains("\ufffd").any()
    assert kept["charset"].n_unique() >= 3  # UTF-8, Latin-1 and EUC-KR pages among them
    # Request and warcinfo records are counted, not pages.
    assert stats.extra["records_by_type"]["request"] > 1000 and stats.extra["records_by_type"]["warcinfo"] >= 1


def test_code_tagged_pages_keep_their_code_blocks_verbatim(dump: Path, pages) -> None:
    lake, stats, kept, _ = pages
    tagged = kept.filter(pl.col("code_tag"))
    assert 0.3 * kept.height < tagged.height < kept.height  # manuals and API references; help pages have none
    assert stats.extra["code_blocks_verbatim_in_text"] >= 0.98 * stats.extra["code_blocks"]
    indented = [b for blocks in tagged["code_blocks"] for b in blocks if "\n    " in b or "\n\t" in b]
    assert len(indented) > 100
    outcome = code_blocks_verbatim(f"{lake}/web/web_pages/dump=w1", str(dump), k=60)
    assert outcome.passed and outcome.metadata["checked"] == 60


def test_a_rerun_gives_the_same_pages(dump: Path, pages, tmp_path: Path) -> None:
    _, _, kept, lineage = pages
    _, again, rows = _run(dump, tmp_path)
    assert again.drop("fetched_at").equals(kept.drop("fetched_at")) and again["fetched_at"].equals(kept["fetched_at"])
    assert rows.drop("run_id").sort("id").equals(lineage.drop("run_id").sort("id"))


def test_damage_costs_the_damaged_part_only(dump: Path, tmp_path: Path) -> None:
    """A gzip member corrupted in the middle of a file loses the rest of that file (one counted row), a listed
    file that is missing costs one row, and every other file is read in full."""
    damaged = tmp_path / "w-bad"
    shutil.copytree(dump, damaged)
    files = [f for _, f in warc_files(str(damaged))]
    first = damaged / files[0]
    data = first.read_bytes()
    members, pos = [], 0
    while pos < len(data):  # the gzip members of the file (one per record)
        d = zlib.decompressobj(31)
        d.decompress(data[pos:])
        end = len(data) - len(d.unused_data)
        members.append((pos, end))
        pos = end
    cut = members[len(members) // 2][0]
    first.write_bytes(data[:cut] + b"\x1f\x8b\x08\x00garbage" + data[cut:])
    (damaged / PATHS_MANIFEST).write_text((damaged / PATHS_MANIFEST).read_text() + "w1-99999.warc.gz\n")
    stats, kept, lineage = _run(damaged, tmp_path / "lake", "wbad")
    assert stats.balanced and stats.drops["missing_warc"] == 1 and stats.drops["unreadable_warc"] == 1
    whole = _run(dump, tmp_path / "lake0")[1]
    lost = set(whole["url"]) - set(kept["url"])
    assert 0 < len(lost) < len(members)  # the second half of the first file, nothing of the others
    assert set(kept["warc_file"]) == set(whole["warc_file"])
    outcome = records_accounted(str(tmp_path / "lake/lineage/stage=web_pages/crawl=wbad"), str(damaged), files)
    assert outcome.passed and files[0] in outcome.metadata["files_warcio_stopped_in"]


def test_http_heads_are_parsed_strictly() -> None:
    head, body = split_response(b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=EUC-KR\r\n"
                                b"X-Folded: a\r\n b\r\n\r\n<p>x</p>")
    assert head.status == 200 and head.charset == "EUC-KR" and head.media_type == "text/html"
    assert head.headers["x-folded"] == "a b" and body == b"<p>x</p>"
    for broken in (b"HTTP/1.1 200 OK\r\nContent-Type text/html\r\n\r\nx", b"200 OK\r\n\r\nx",
                   b"HTTP/1.1 200 OK\r\nContent-Type: text/html", b"HTTP/1.1 200 OK\r\nX: \x00\r\n\r\nx"):
        with pytest.raises(BadResponse) as exc:
            split_response(broken)
        assert exc.value.reason == "bad_http_header"


def test_bodies_are_decoded_within_bounds() -> None:
    gz = HttpHead(200, {"content-encoding": "gzip"})
    assert decode_body(gz, gzip.compress(b"<p>hello</p>"), 1000) == b"<p>hello</p>"
    with pytest.raises(BadResponse) as exc:
        decode_body(gz, gzip.compress(bytes(10_000_000)), 1_000_000)
    assert exc.value.reason == "decompression_bomb"
    chunked = HttpHead(200, {"transfer-encoding": "chunked"})
    assert decode_body(chunked, b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", 100) == b"hello world"
    assert decode_body(chunked, b"<p>already de-chunked</p>", 100) == b"<p>already de-chunked</p>"
    with pytest.raises(BadResponse) as exc:
        decode_body(HttpHead(200, {"content-encoding": "br"}), b"x", 100)
    assert exc.value.reason == "unsupported_content_encoding"


def test_charsets_in_the_order_browsers_use() -> None:
    korean = "<meta charset='euc-kr'><p>한국어 문서</p>".encode("euc-kr")
    assert decode_text(korean, "utf-8")[1:] == ("euc_kr", "meta")  # the header is wrong: the meta decodes it
    assert decode_text("<p>café</p>".encode(), "iso-8859-1") == ("<p>café</p>", "utf-8", "http_latin1_was_utf8")
    assert decode_text("<p>café</p>".encode("latin-1"), "iso-8859-1")[1:] == ("iso8859-1", "http")
    assert decode_text(b"\xef\xbb\xbf<p>bom</p>", "iso-8859-1") == ("<p>bom</p>", "utf-8", "bom")
    assert decode_text("<p>naïve</p>".encode(), None)[2] == "utf8"


def test_extraction_keeps_code_and_bounds_depth() -> None:
    html = ("<html><head><title>T</title></head><body><nav>Home | About</nav><main><p>Call the function like "
            "this, with the arguments you need for your own program:</p><pre>\ndef f(x):\n\tif x:\n        "
            "return 1\n</pre></main></body></html>")
    page = extract(html)
    assert page.code_blocks == ["def f(x):\n\tif x:\n        return 1\n"] == pre_blocks(html)
    assert page.code_tags == 1 and page.code_blocks_in_text == 1 and "\tif x:\n        return 1" in page.text
    deep = "<html><body>" + "<div>" * 5000 + "<p>deep</p>" + "</div>" * 5000 + "</body></html>"
    assert depth_bound(deep) > 5000
    with pytest.raises(Exception, match="nested deeper"):
        extract(deep, max_depth=1024)
    assert depth_bound("<p>a<br>b<img src=x><p>c</p></p>") < 10  # void elements do not nest


def test_checks_fail_on_bad_output(dump: Path, pages, tmp_path: Path) -> None:
    lake, _, kept, _ = pages
    src = f"{lake}/web/web_pages/dump=w1"
    table = pq.read_table(src)
    files = [f for _, f in warc_files(str(dump))]

    def write(t: pa.Table, name: str) -> str:
        with PartWriter(str(tmp_path / name), t.schema) as out:
            out.write_table(t)
        return str(tmp_path / name)

    short = table.slice(0, 5).set_column(table.schema.get_field_index("text"), "text",
                                         pa.array(["only four words here"] * 5, pa.large_string()))
    assert not no_short_page(write(short, "short"), 10).passed
    assert no_short_page(src, 10).passed
    doubled = pa.concat_tables([table, table.slice(0, 3)])
    assert not no_exact_duplicate_left(write(doubled, "doubled"), []).passed
    assert not no_exact_duplicate_left(write(table.slice(0, 3), "again"), [src]).passed  # kept by an earlier dump
    tagged = table.filter(pa.compute.field("code_tag"))
    flattened = [[b.replace("    ", " ") for b in blocks] for blocks in tagged["code_blocks"].to_pylist()]
    bad = tagged.set_column(tagged.schema.get_field_index("code_blocks"), "code_blocks",
                            pa.array(flattened, tagged.schema.field("code_blocks").type))
    assert not code_blocks_verbatim(write(bad, "flattened"), str(dump), k=60).passed
    lineage = pq.read_table(f"{lake}/lineage/stage=web_pages/crawl=w1")
    lost = write(lineage.slice(10), "lineage_lost")  # ten records without a lineage row
    outcome = records_accounted(lost, str(dump), files)
    assert not outcome.passed and outcome.metadata["without_lineage"] == 10
