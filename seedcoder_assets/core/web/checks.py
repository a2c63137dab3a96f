"""Checks of the web corpus, measured on what was written with other tools than the ones that wrote it:
warcio (not FastWARC) re-reads the WARC files, Python's own html.parser (not lexbor) finds the `<pre>`
blocks, DuckDB's RE2 counts words and hashes texts. Each has a test that feeds it bad output."""

from __future__ import annotations

import random
from html.parser import HTMLParser
from typing import Any

from seedcoder_assets.core import object_store
from seedcoder_assets.core.checks import CheckOutcome
from seedcoder_assets.core.object_store import duckdb_connect
from seedcoder_assets.core.parquet_io import duckdb_source, is_complete, read_table

FILE_LEVEL = ("missing_warc", "unreadable_warc")  # lineage rows of a whole file (or its rest), not of a record


def _warcio_ids(dump_uri: str, rel: str) -> tuple[list[str], str | None]:
    """The ids of the response and revisit records warcio reads from one file, and why it stopped early."""
    from warcio.archiveiterator import ArchiveIterator

    ids: list[str] = []
    fs, path = object_store.resolve(f"{dump_uri.rstrip('/')}/{rel}")
    try:
        with fs.open_input_stream(path) as f:
            for record in ArchiveIterator(f):
                if record.rec_type in ("response", "revisit"):
                    ids.append((record.rec_headers.get_header("WARC-Record-ID") or "").strip("<>"))
    except Exception as exc:  # noqa: BLE001 - any damage ends warcio's reading of this file
        return ids, f"{type(exc).__name__}: {exc}"[:200]
    return ids, None


def records_accounted(lineage_uri: str, dump_uri: str, files: list[str]) -> CheckOutcome:
    """Every response and revisit record warcio reads in the shard's WARC files has exactly one lineage row,
    and every other lineage row is a file-level one or lies past damage that stopped warcio."""
    con = duckdb_connect()
    rows = con.execute(f"SELECT id, reason FROM {duckdb_source(lineage_uri)}").fetchall()
    con.close()
    counts: dict[str, int] = {}
    for id_, _ in rows:
        counts[id_] = counts.get(id_, 0) + 1
    file_rows = {id_ for id_, reason in rows if reason in FILE_LEVEL}
    seen: set[str] = set()
    stopped: dict[str, str] = {}
    for rel in files:
        ids, why = _warcio_ids(dump_uri, rel)
        seen.update(ids)
        if why:
            stopped[rel] = why
    missing = sorted(seen - counts.keys())
    twice = sorted(i for i, n in counts.items() if n > 1)
    unexplained = sorted(set(counts) - seen - file_rows)
    ok = not missing and not twice and (not unexplained or bool(stopped))
    return CheckOutcome(ok, {"records_read_by_warcio": len(seen), "lineage_rows": len(rows),
                             "without_lineage": len(missing), "twice": len(twice),
                             "beyond_what_warcio_read": len(unexplained), "files_warcio_stopped_in": stopped,
                             "examples": (missing + twice + ([] if stopped else unexplained))[:5]})


WORDS_SQL = r"len(regexp_extract_all(text, '[\p{L}\p{N}_]+'))"  # RE2, not Python's re


def no_short_page(pages_uri: str, min_words: int) -> CheckOutcome:
    """No page with fewer than `min_words` words (counted by DuckDB)."""
    con = duckdb_connect()
    short, n = con.execute(f"SELECT count(*) FILTER (WHERE {WORDS_SQL} < ?), count(*) FROM {duckdb_source(pages_uri)}",
                           [min_words]).fetchone()
    examples = con.execute(f"SELECT url, {WORDS_SQL} FROM {duckdb_source(pages_uri)} WHERE {WORDS_SQL} < ? LIMIT 5",
                           [min_words]).fetchall()
    con.close()
    return CheckOutcome(short == 0, {"pages": n, "under_min_words": short, "min_words": min_words,
                                     "examples": [f"{u} ({w} words)" for u, w in examples]})


class _PreBlocks(HTMLParser):
    """The text of every outermost `<pre>` element, as the HTML standard reads it (line ends normalised to
    LF; a newline right after the start tag is not content)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth, self.blocks, self._current = 0, [], []

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "pre":
            self.depth += 1
            if self.depth == 1:
                self._current = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre" and self.depth:
            self.depth -= 1
            if not self.depth:
                text = "".join(self._current)
                self.blocks.append(text[1:] if text.startswith("\n") else text)

    def handle_data(self, data: str) -> None:
        if self.depth:
            self._current.append(data)


def pre_blocks(html: str) -> list[str]:
    parser = _PreBlocks()
    parser.feed(html.replace("\r\n", "\n").replace("\r", "\n"))  # the standard's input preprocessing
    parser.close()
    return [b for b in parser.blocks if b.strip()]


def _html_at(dump_uri: str, rel: str, offset: int) -> bytes:
    """The decoded HTTP payload of the record at `offset` of a WARC file, read by warcio."""
    from warcio.archiveiterator import ArchiveIterator

    fs, path = object_store.resolve(f"{dump_uri.rstrip('/')}/{rel}")
    with fs.open_input_file(path) as f:
        f.seek(offset)
        record = next(iter(ArchiveIterator(f)))
        return record.content_stream().read()


def code_blocks_verbatim(pages_uri: str, dump_uri: str, k: int = 40, seed: int = 0,
                         min_share: float = 0.95) -> CheckOutcome:
    """A seeded sample of code-tagged pages, each re-read from its WARC record by warcio and parsed by
    html.parser: the `<pre>` blocks stored are the page's, whitespace and all (`min_share` of pages: the
    two parsers differ on broken markup)."""
    t = read_table(pages_uri, ["id", "warc_file", "warc_offset", "charset", "code_tag", "code_blocks"])
    rows = [r for r in t.to_pylist() if r["code_tag"] and r["code_blocks"]]
    picked = random.Random(seed).sample(rows, min(k, len(rows)))
    differing = []
    for r in picked:
        html = _html_at(dump_uri, r["warc_file"], r["warc_offset"]).decode(r["charset"] or "utf-8", errors="replace")
        if pre_blocks(html) != list(r["code_blocks"]):
            differing.append(r["id"])
    share = 1 - len(differing) / len(picked) if picked else 1.0
    return CheckOutcome(share >= min_share, {"checked": len(picked), "same_blocks": len(picked) - len(differing),
                                             "share": round(share, 4), "bound": min_share, "examples": differing[:5]})


def no_exact_duplicate_left(pages_uri: str, earlier_uris: list[str]) -> CheckOutcome:
    """No two kept pages with the same text (sha256 by DuckDB), in this dump or against the pages earlier
    dumps kept."""
    con = duckdb_connect()
    con.execute(f"CREATE TEMP TABLE h AS SELECT sha256(text) AS h, url FROM {duckdb_source(pages_uri)}")
    within = con.execute("SELECT count(*) FROM (SELECT h FROM h GROUP BY h HAVING count(*) > 1)").fetchone()[0]
    across = 0
    for uri in earlier_uris:
        if is_complete(uri):
            across += con.execute(f"SELECT count(*) FROM h SEMI JOIN (SELECT sha256(text) AS h FROM "
                                  f"{duckdb_source(uri)}) e USING (h)").fetchone()[0]
    examples = con.execute("SELECT list(url) FROM h GROUP BY h HAVING count(*) > 1 LIMIT 3").fetchall()
    con.close()
    return CheckOutcome(within == 0 and across == 0, {"duplicate_texts_within": within,
                                                      "pages_seen_in_earlier_dumps": across,
                                                      "examples": [e[0][:3] for e in examples]})


def recall_on_held_out(model_file: str, examples: list, check_sites: set[str], threshold: float, bound: float
                       ) -> CheckOutcome:
    """The stored fastText model, loaded by fastText itself, on the pages without code tags of the checking
    sites (which neither trained the model nor fitted its threshold): the share of code-related pages at
    or above the threshold reaches `bound`."""
    import fasttext

    model = fasttext.load_model(model_file)
    checked = [e for e in examples if e.host in check_sites and not e.tagged]
    positives = [e for e in checked if e.code] or [e for e in examples if e.host in check_sites and e.code]
    if not positives:
        return CheckOutcome(False, {"reason": "no code-related page among the checking sites", "pages": len(checked)})
    labels, probs = model.predict([e.line for e in positives], k=-1)
    p_code = [dict(zip(ls, ps)).get("__label__code", 0.0) for ls, ps in zip(labels, probs)]
    recall = sum(bool(p >= threshold) for p in p_code) / len(positives)
    return CheckOutcome(bool(recall >= bound), {"recall": float(recall), "bound": bound, "threshold": threshold,
                                                "code_related_pages": len(positives),
                                                "checking_sites": sorted(check_sites)})


def scores_cover_recalled(recalled_uri: str, scores_uri: str, max_unscored_share: float) -> CheckOutcome:
    """The scores partition has exactly one row per recalled page (none missing, none twice: stale scores
    after a new recall model, or a shard scored twice), and at most `max_unscored_share` of them lack a
    parsed answer (an oracle run that aborted, or a model that cannot follow the format)."""
    con = duckdb_connect()
    missing, doubled, unparsed, pages = con.execute(f"""
        WITH s AS (SELECT id, count(*) AS n, bool_or(status = 'ok') AS ok FROM {duckdb_source(scores_uri)} GROUP BY id)
        SELECT count(*) FILTER (WHERE s.id IS NULL), count(*) FILTER (WHERE s.n > 1),
               count(*) FILTER (WHERE s.id IS NOT NULL AND NOT s.ok), count(*)
        FROM (SELECT id FROM {duckdb_source(recalled_uri)}) r LEFT JOIN s USING (id)""").fetchone()
    extra = con.execute(f"""SELECT count(*) FROM {duckdb_source(scores_uri)}
                            WHERE id NOT IN (SELECT id FROM {duckdb_source(recalled_uri)})""").fetchone()[0]
    con.close()
    share = unparsed / pages if pages else 0.0
    return CheckOutcome(missing == 0 and doubled == 0 and extra == 0 and share <= max_unscored_share, {
        "recalled_pages": pages, "without_score_row": missing, "scored_twice": doubled,
        "scores_of_other_pages": extra, "unparsed_share": round(share, 4), "bound": max_unscored_share})


def corpus_respects_thresholds(corpus_uri: str, scores_uri: str, params: Any) -> CheckOutcome:
    """Every page of the corpus has an oracle answer in the scores partition whose rating, read out of the raw
    reply by DuckDB's RE2 (not by the parser that filled the columns), is at or above the threshold of the
    category that reply names."""
    con = duckdb_connect()
    rows = con.execute(f"""
        WITH answers AS (
            SELECT id, list_last(regexp_extract_all(raw, 'Rating:\\s*\\[\\[\\s*([0-9]+)\\s*\\]\\]', 1)) AS rating,
                   lower(list_last(regexp_extract_all(raw, 'Category:\\s*\\[\\[\\s*([a-zA-Z_]+)\\s*\\]\\]', 1)))
                       AS category
            FROM {duckdb_source(scores_uri)} WHERE status = 'ok')
        SELECT c.id, a.category, TRY_CAST(a.rating AS INTEGER)
        FROM {duckdb_source(corpus_uri)} c LEFT JOIN answers a USING (id)""").fetchall()
    con.close()
    unscored = [pid for pid, category, rating in rows if rating is None or not category]
    below = [pid for pid, category, rating in rows
             if rating is not None and category and rating < params.threshold(category)]
    return CheckOutcome(not unscored and not below, {
        "pages": len(rows), "unscored": len(unscored), "below_threshold": len(below),
        "examples": (unscored + below)[:5], "thresholds": dict(params.thresholds)})
