"""The LLM half of the web corpus (paper 2.2.3): which pages the oracle labels, the oracle's judgement of a
page (code-related, site category, 0-10), the recall model applied to the pages without code tags, and the
corpus: pages at or above their category's threshold, sampled at their category's rate.

One prompt (core/web/prompt.py) serves both the labels the recall model learns from and the quality scores
of the recalled pages, through the same cache: a sampled page that is recalled later is not asked twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, Field, ValidationInfo, field_validator

from seedcoder_assets.core.object_store import duckdb_connect
from seedcoder_assets.core.parquet_io import duckdb_source, iter_batches
from seedcoder_assets.core.quality.labels import (
    LABEL_SCHEMA,
    SAMPLE_SCHEMA,
    LabelCache,
    LabelRun,
    label_sample,
    stratified_sample,
)
from seedcoder_assets.core.quality.oracle import OracleSettings
from seedcoder_assets.core.runner import Verdicts, run_stage
from seedcoder_assets.core.stats import LineageWriter, StageStats
from seedcoder_assets.core.web.pages import WEB_PAGE_SCHEMA
from seedcoder_assets.core.web.prompt import CATEGORIES, parse_web_answer, render_web_prompt
from seedcoder_assets.core.web.recall import Example, RecallModel, page_line

STRATA: Final = ("code_tag", "other")  # the label sample's strata: pages with code tags, and the rest

# The oracle's answers about pages: the label cache's columns (`language` holds the page's stratum, `path`
# its URL, `sha256` its text hash) and what the answer says.
WEB_LABEL_SCHEMA: Final[pa.Schema] = LABEL_SCHEMA.append(pa.field("host", pa.string())).append(
    pa.field("code_related", pa.bool_())).append(pa.field("category", pa.string()))

RECALLED_SCHEMA: Final[pa.Schema] = WEB_PAGE_SCHEMA.append(pa.field("recall_branch", pa.string())).append(
    pa.field("recall_score", pa.float32())).append(pa.field("recall_version", pa.string()))

WEB_CORPUS_SCHEMA: Final[pa.Schema] = RECALLED_SCHEMA.append(pa.field("rating", pa.int8())).append(
    pa.field("category", pa.string())).append(pa.field("code_related", pa.bool_())).append(
    pa.field("judged_by", pa.string()))


def host_of(url: str | None) -> str:
    return (urlsplit(url or "").hostname or "").lower()


# -- the label sample ---------------------------------------------------------------------------------
# A page in the label sample's columns: its stratum as the "language", its URL as the path.
_SAMPLE_COLUMNS: Final = ("id, dump AS crawl, host AS repo, url AS path, text_hash AS sha256, size, "
                          "CASE WHEN code_tag THEN 'code_tag' ELSE 'other' END AS language")


def sample_pages(pages_uri: str, quotas: Mapping[str, int], seed: int, memory_limit: str = "1GB") -> pa.Table:
    """Up to `quotas[stratum]` pages per stratum (code_tag, other), ranked by md5(seed, id): the same pages
    for the same seed, and a larger quota extends a smaller one. Columns of SAMPLE_SCHEMA."""
    wanted = {s: int(n) for s, n in quotas.items() if s in STRATA and n > 0}
    return stratified_sample(pages_uri, wanted, seed, memory_limit, columns=_SAMPLE_COLUMNS)


# -- the oracle's judgement ---------------------------------------------------------------------------
def web_rating(reply: str) -> int | None:
    """The rating of a web answer, None unless all three lines parse (the oracle client's `parse`)."""
    judged = parse_web_answer(reply)
    return judged.rating if judged else None


PAGE_COLUMNS: Final = ["id", "dump", "host", "url", "title", "text", "text_hash", "code_tag", "size"]


def _render(batch: pa.RecordBatch | pa.Table, todo: set[str], max_chars: int, info: dict[str, dict[str, Any]]
            ) -> Iterator[tuple[str, str]]:
    mask = pc.is_in(batch.column("id"), pa.array(sorted(todo), pa.string()))
    if not pc.any(mask).as_py():
        return
    for row in batch.filter(mask).to_pylist():
        prompt, truncated = render_web_prompt(row["url"] or "", row["title"] or "", row["text"], max_chars)
        info[row["id"]] = {"crawl": row["dump"], "language": "code_tag" if row["code_tag"] else "other",
                           "path": row["url"], "sha256": row["text_hash"], "truncated": truncated,
                           "content_chars": min(len(row["text"]), max_chars)}
        yield row["id"], prompt


def _page_prompts(pages_uri: str, max_chars: int):
    def prompts(todo: set[str], info: dict[str, dict[str, Any]]) -> Iterator[tuple[str, str]]:
        for batch in iter_batches(pages_uri, PAGE_COLUMNS, batch_rows=256):
            yield from _render(batch, todo, max_chars, info)
    return prompts


def with_judgement(labels: pa.Table) -> pa.Table:
    """The label rows with what each answer says (host, code_related, category; null unless it parsed)."""
    parsed = [parse_web_answer(raw) if status == "ok" and raw else None
              for raw, status in zip(labels["raw"].to_pylist(), labels["status"].to_pylist())]
    return labels.append_column("host", pa.array([host_of(u) for u in labels["path"].to_pylist()], pa.string())) \
        .append_column("code_related", pa.array([j.code_related if j else None for j in parsed], pa.bool_())) \
        .append_column("category", pa.array([j.category if j else None for j in parsed], pa.string())) \
        .cast(WEB_LABEL_SCHEMA)


def judge_pages(pages: pa.Table, pages_uri: str, settings: OracleSettings, cache: LabelCache, run_id: str,
                max_chars: int, retry_parse_failures: bool = False) -> tuple[pa.Table, LabelRun]:
    """The oracle's answer for each page of `pages` (SAMPLE_SCHEMA columns, a bounded sample; the text is
    read from `pages_uri`): cached answers reused, the rest asked and cached as they arrive. WEB_LABEL_SCHEMA."""
    labels, run = label_sample(pages, pages_uri, settings, cache, run_id, max_chars, retry_parse_failures,
                               prompts=_page_prompts(pages_uri, max_chars), parse=web_rating)
    return with_judgement(labels), run


def as_sample(t: pa.Table | pa.RecordBatch) -> pa.Table:
    """Pages (PAGE_COLUMNS) in SAMPLE_SCHEMA's columns: what the oracle is asked about."""
    stratum = pc.if_else(t.column("code_tag"), "code_tag", "other")
    return pa.table({"id": t.column("id"), "crawl": t.column("dump"), "repo": t.column("host"), "path": t.column("url"),
                     "language": stratum, "sha256": t.column("text_hash"), "size": t.column("size"),
                     "sample_rank": pa.array(np.arange(1, t.num_rows + 1), pa.int64())}).cast(SAMPLE_SCHEMA)


def _add(total: LabelRun, run: LabelRun) -> None:
    for name in ("sampled", "cached", "asked", "truncated"):
        setattr(total, name, getattr(total, name) + getattr(run, name))
    total.statuses.update(run.statuses)
    o, r = total.oracle, run.oracle
    for name in ("asked", "retries", "not_asked", "seconds", "prompt_tokens", "completion_tokens"):
        setattr(o, name, getattr(o, name) + getattr(r, name))
    o.statuses.update(r.statuses)
    o.aborted = o.aborted or r.aborted


def score_pages(pages_uri: str, settings: OracleSettings, cache: LabelCache, run_id: str, max_chars: int,
                write: Callable[[pa.Table], None], retry_parse_failures: bool = False, chunk_rows: int = 2048
                ) -> LabelRun:
    """The oracle's answer for every page of a partition, streamed: `chunk_rows` pages at a time are
    looked up in the cache, the rest asked, and their rows handed to `write`. Memory holds one chunk.
    After the oracle is judged down, the pages left are not sent (the run says so; a re-run resumes)."""
    total = LabelRun()
    for batch in iter_batches(pages_uri, PAGE_COLUMNS, batch_rows=chunk_rows):
        def prompts(todo: set[str], info: dict[str, dict[str, Any]], batch=batch) -> Iterator[tuple[str, str]]:
            return _render(batch, todo, max_chars, info)

        answers, run = label_sample(as_sample(batch), pages_uri, settings, cache, run_id, max_chars,
                                    retry_parse_failures, prompts=prompts, parse=web_rating)
        write(with_judgement(answers))
        _add(total, run)
        if run.oracle.aborted:
            break
    return total


# -- the recall model's examples and its use ----------------------------------------------------------
def recall_examples(pairs: Sequence[tuple[str, str]], max_tokens: int, memory_limit: str = "1GB") -> list[Example]:
    """(labels, pages) partitions -> one example per page the oracle answered, labelled by its
    code-related answer; a page labelled in several dumps counts once (its first dump's answer). Only
    the head of each text is read: the model reads `max_tokens` tokens of it."""
    seen: dict[str, Example] = {}
    con = duckdb_connect(memory_limit=memory_limit)
    for labels_uri, pages_uri in pairs:
        result = con.execute(
            f"""SELECT l.id, l.host, l.code_related, p.code_tag, p.title, left(p.text, {int(max_tokens) * 24})
                FROM {duckdb_source(labels_uri)} l JOIN {duckdb_source(pages_uri)} p USING (id)
                WHERE l.status = 'ok' AND l.code_related IS NOT NULL ORDER BY l.id""")
        while rows := result.fetchmany(1024):
            for pid, host, code, tagged, title, text in rows:
                seen.setdefault(pid, Example(pid, host, page_line(title, text, max_tokens), bool(code), bool(tagged)))
    con.close()
    return list(seen.values())


class RecallApply(BaseModel, frozen=True):
    """The recall model a run applies (resolved by the asset from the model store)."""

    model_path: str = Field(..., description="The fastText model file")
    threshold: float = Field(..., description="P(code-related) at or above which a page is recalled")
    version: str = Field(..., description="The model's version (lineage and the pages' recall_version)")
    max_tokens: int = Field(2000, description="Tokens of a page the model reads (as in training)")


def recall_pages(pages_uri: str, dst_uri: str, lineage: LineageWriter, params: RecallApply) -> StageStats:
    """Pages with code tags pass by rule (branch code_tag); the others are recalled when the model's
    P(code-related) reaches the threshold (branch recalled), else dropped as `not_code_related`."""
    model = RecallModel(Path(params.model_path), params.threshold, params.max_tokens)

    def decide(batch: pa.RecordBatch) -> Verdicts:
        tagged = batch.column("code_tag").to_numpy(zero_copy_only=False).astype(bool)
        titles, texts = batch.column("title").to_pylist(), batch.column("text").to_pylist()
        todo = np.flatnonzero(~tagged)
        score = np.full(batch.num_rows, np.nan, np.float32)
        score[todo] = model.code_probability([page_line(titles[i], texts[i], params.max_tokens) for i in todo])
        keep = tagged | (score >= params.threshold)
        reasons = [None if k else "not_code_related" for k in keep]
        out = batch.filter(pa.array(keep))
        kept_score = score[keep]
        out = pa.RecordBatch.from_arrays(
            [*out.columns, pa.array(np.where(tagged[keep], "code_tag", "recalled")),
             pa.array(kept_score, pa.float32(), mask=np.isnan(kept_score)),
             pa.array([params.version] * out.num_rows, pa.string())], schema=RECALLED_SCHEMA)
        details = [None if tagged[i] else f"p={score[i]:.4f} threshold={params.threshold:.4f}"
                   for i in range(batch.num_rows)]
        return Verdicts(keep, reasons, detail=details,
                        score=pa.array(score, pa.float32(), mask=np.isnan(score)), output=out)

    return run_stage(iter_batches(pages_uri, batch_rows=256), dst_uri, lineage, decide, schema=RECALLED_SCHEMA)


# -- the corpus ---------------------------------------------------------------------------------------
# The paper: documentation and e-commerce pages were over-scored and forums under-scored, so each category
# gets its own bar and rate. These defaults lean that way; the before/after histograms say where to move them.
DEFAULT_THRESHOLDS: Final[dict[str, int]] = {"documentation": 6, "reference_api": 6, "qa_forum": 4,
                                             "blog_tutorial": 5, "ecommerce": 8, "other": 6}
DEFAULT_RATES: Final[dict[str, float]] = {"documentation": 1.0, "reference_api": 1.0, "qa_forum": 1.0,
                                          "blog_tutorial": 1.0, "ecommerce": 0.5, "other": 1.0}


class WebCorpusParams(BaseModel, frozen=True):
    thresholds: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_THRESHOLDS),
                                       description="Lowest oracle rating kept, per site category (the categories "
                                                   "not given keep their defaults)")
    rates: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_RATES),
                                    description="Share of the pages at or above the threshold kept, per category "
                                                "(the categories not given keep their defaults)")
    drop_not_code_related: bool = Field(True, description="Drop pages the oracle says are not code-related "
                                                          "(recall runs at high recall, low precision)")
    seed: int = Field(0, description="Seed of the per-category sampling (by page id: re-runs keep the same pages)")

    @field_validator("thresholds", "rates")
    @classmethod
    def _over_defaults(cls, value: dict, info: ValidationInfo) -> dict:
        """A partial setting changes only the categories it names; a category we do not have is an error
        (a typo would otherwise silently leave the default in force)."""
        unknown = sorted(set(value) - set(CATEGORIES))
        if unknown:
            raise ValueError(f"unknown site categories {unknown}; the categories are {list(CATEGORIES)}")
        defaults = DEFAULT_THRESHOLDS if info.field_name == "thresholds" else DEFAULT_RATES
        return {**defaults, **value}

    def threshold(self, category: str) -> int:
        return self.thresholds[category if category in self.thresholds else "other"]

    def rate(self, category: str) -> float:
        return self.rates[category if category in self.rates else "other"]


def sampled(page_id: str, seed: int) -> float:
    """A page's uniform draw in [0, 1) for the category sampling: a hash of seed and id."""
    return int.from_bytes(hashlib.blake2b(f"{seed}:{page_id}".encode(), digest_size=8).digest(), "big") / 2**64


def select_corpus(recalled_uri: str, scores_uri: str, dst_uri: str, lineage: LineageWriter, params: WebCorpusParams,
                  conn: duckdb.DuckDBPyConnection) -> StageStats:
    """Each recalled page with its oracle score: `not_scored` (no parsed answer), `not_code_related_by_oracle`,
    `below_category_threshold`, `sampled_out`, or kept with its rating and category."""
    names = [f.name for f in RECALLED_SCHEMA]
    rows = conn.execute(
        f"""SELECT {', '.join('p.' + n for n in names)}, s.rating, s.category, s.code_related,
                   s.model || '/' || s.prompt_version AS judged_by, s.status
            FROM {duckdb_source(recalled_uri)} p LEFT JOIN {duckdb_source(scores_uri)} s USING (id)
            ORDER BY p.id""").fetch_record_batch(256)

    def decide(batch: pa.RecordBatch) -> Verdicts:
        reasons: list[str | None] = []
        details: list[str | None] = []
        for pid, status, rating, category, code in zip(*(batch.column(c).to_pylist() for c in (
                "id", "status", "rating", "category", "code_related"))):
            detail = f"{category} rated {rating}" if rating is not None else None
            if status != "ok" or rating is None:
                reason, detail = "not_scored", f"oracle status {status or 'missing'}"
            elif params.drop_not_code_related and code is False:
                reason = "not_code_related_by_oracle"
            elif rating < params.threshold(category):
                reason, detail = "below_category_threshold", f"{detail} < {params.threshold(category)}"
            elif sampled(pid, params.seed) >= params.rate(category):
                reason, detail = "sampled_out", f"{category} rate {params.rate(category)}"
            else:
                reason = None
            reasons.append(reason)
            details.append(detail)
        keep = np.array([r is None for r in reasons], bool)
        out = pa.Table.from_batches([batch]).select([f.name for f in WEB_CORPUS_SCHEMA]).filter(pa.array(keep))
        return Verdicts(keep, reasons, detail=details, score=batch.column("rating").cast(pa.float32()),
                        output=out.cast(WEB_CORPUS_SCHEMA))

    return run_stage(rows, dst_uri, lineage, decide, schema=WEB_CORPUS_SCHEMA)


def histograms(scores: pa.Table) -> dict[str, dict[int, int]]:
    """Pages per rating 0-10, per category, of a table with `category` and `rating`."""
    out: dict[str, dict[int, int]] = {c: dict.fromkeys(range(11), 0) for c in CATEGORIES}
    for category, rating in zip(scores["category"].to_pylist(), scores["rating"].to_pylist()):
        if category is not None and rating is not None:
            out.setdefault(category, dict.fromkeys(range(11), 0))[int(rating)] += 1
    return {c: h for c, h in out.items() if any(h.values())}
