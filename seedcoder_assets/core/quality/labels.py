"""Oracle labels: a seeded, language-stratified sample, and a cache so nothing is asked twice.

The cache is a folder of append-only Parquet parts, keyed by (file id, oracle model, prompt
version); an answer is used only while the file's content hash is the one it was given for. Replies are flushed as they arrive, so a run killed mid-way keeps what was answered
and the next run asks only for what is missing; widening the sample keeps the earlier picks
(each language's files are ranked by a seeded hash, and a bigger quota takes a longer prefix).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from seedcoder_assets.core.object_store import duckdb_connect, resolve
from seedcoder_assets.core.parquet_io import duckdb_source, iter_batches
from seedcoder_assets.core.quality.oracle import OracleReply, OracleRunStats, OracleSettings, Parse, label
from seedcoder_assets.core.quality.prompt import PROMPT_VERSION, render_prompt

# Table 17 of the paper: files per language in the scorer's training set (222,066 in all).
TABLE17_QUOTAS: Final[dict[str, int]] = {
    "Python": 26924, "Shell": 10194, "Ruby": 10187, "Go": 10185, "TypeScript": 10179, "MATLAB": 10165,
    "Java": 10161, "C#": 10112, "SQL": 10110, "JavaScript": 10110, "CSS": 10053, "Kotlin": 10051, "PHP": 10049,
    "C": 10020, "reStructuredText": 9951, "C++": 9938, "HTML": 9422, "R": 9379, "TeX": 9156, "Markdown": 8845,
    "RMarkdown": 6875,
}

SAMPLE_SCHEMA: Final[pa.Schema] = pa.schema([
    ("id", pa.string()), ("crawl", pa.string()), ("repo", pa.string()), ("path", pa.string()),
    ("language", pa.string()), ("sha256", pa.string()), ("size", pa.int64()), ("sample_rank", pa.int64()),
])

LABEL_SCHEMA: Final[pa.Schema] = pa.schema([
    ("id", pa.string()), ("crawl", pa.string()), ("language", pa.string()), ("path", pa.string()),
    ("sha256", pa.string()), ("model", pa.string()), ("prompt_version", pa.string()),
    ("status", pa.string()),  # ok | parse_failure | error | not_asked
    ("rating", pa.int8()),  # null unless status == ok: a reply without a rating is never turned into one
    ("raw", pa.large_string()), ("error", pa.string()),
    ("truncated", pa.bool_()), ("content_chars", pa.int64()), ("attempts", pa.int16()), ("latency_s", pa.float32()),
    ("prompt_tokens", pa.int32()), ("completion_tokens", pa.int32()),
    ("answered_at", pa.timestamp("ms", tz="UTC")), ("run_id", pa.string()),
])

ANSWERED: Final[tuple[str, ...]] = ("ok", "parse_failure")


def scaled_quotas(quotas: Mapping[str, int], scale: float) -> dict[str, int]:
    """Per-language counts times `scale` (at least 1 file for every language with a positive quota)."""
    return {lang: max(1, round(n * scale)) for lang, n in quotas.items() if n > 0}


def stratified_sample(src_uri: str, quotas: Mapping[str, int], seed: int,
                      memory_limit: str = "1GB", columns: str = "id, crawl, repo, path, language, sha256, size"
                      ) -> pa.Table:
    """Up to `quotas[language]` records per language (or stratum), the same ones for the same seed.

    Records are ranked within their language by md5(seed, id), so the sample does not depend on
    record order and a larger quota extends a smaller one. `columns` selects SAMPLE_SCHEMA's columns from
    the source (other records name them otherwise: a web page's stratum, URL, text hash).
    """
    if not quotas:
        return SAMPLE_SCHEMA.empty_table()
    con = duckdb_connect(memory_limit=memory_limit)
    con.register("quotas", pa.table({"language": list(quotas), "quota": list(quotas.values())}))
    table = con.execute(
        f"""
        SELECT id, crawl, repo, path, language, sha256, size, sample_rank FROM (
            SELECT s.*, q.quota,
                   row_number() OVER (PARTITION BY s.language ORDER BY md5(? || s.id)) AS sample_rank
            FROM (SELECT {columns} FROM {duckdb_source(src_uri)}) s JOIN quotas q USING (language)
        ) WHERE sample_rank <= quota ORDER BY language, sample_rank
        """,
        [str(seed)],
    ).fetch_arrow_table()
    con.close()
    return table.cast(SAMPLE_SCHEMA)


def request_fingerprint(settings: OracleSettings, max_content_chars: int) -> str:
    """Everything besides the model and the prompt template that changes what the oracle is asked or
    how it may answer: where files are cut, the structured-output pattern (explanation or rating only),
    the endpoint kind, temperature and the answer's length limit. Answers to other requests are
    other cache entries."""
    shape = {"max_content_chars": max_content_chars, "structured_regex": settings.structured_regex,
             "api": settings.api, "temperature": settings.temperature, "max_tokens": settings.max_tokens}
    return hashlib.blake2b(json.dumps(shape, sort_keys=True).encode(), digest_size=6).hexdigest()


class LabelCache:
    """Append-only Parquet parts under `uri`, one folder per (model, prompt version, request shape)."""

    def __init__(self, uri: str, model: str, prompt_version: str = PROMPT_VERSION, request: str = "default") -> None:
        self.model, self.prompt_version, self.request = model, prompt_version, request
        safe_model = "".join(c if c.isalnum() or c in "-._" else "_" for c in model)
        self.uri = f"{uri.rstrip('/')}/model={safe_model}/prompt={prompt_version}/request={request}"
        self.fs, self.path = resolve(self.uri)
        self._token = uuid.uuid4().hex[:12]
        self._parts = 0

    def append(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        self.fs.create_dir(self.path, recursive=True)
        name = f"{self.path}/part-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{self._token}-{self._parts:05d}.parquet"
        pq.write_table(pa.Table.from_pylist(rows, schema=LABEL_SCHEMA), name, filesystem=self.fs, compression="zstd")
        self._parts += 1

    def load(self, ids: pa.Array | None = None) -> pa.Table:
        """The latest answer per file id (an answered row beats any error row), optionally only for `ids`."""
        if self.fs.get_file_info(self.path).type == pafs.FileType.NotFound:
            return LABEL_SCHEMA.empty_table()
        dataset = ds.dataset(self.path, format="parquet", filesystem=self.fs, schema=LABEL_SCHEMA)
        if ids is not None:  # one typed array: an empty table's column has no chunks, and reads as null
            ids = (ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids).cast(pa.string())
        table = dataset.to_table(filter=ds.field("id").isin(ids) if ids is not None else None)
        if table.num_rows == 0:
            return table
        answered = pc.is_in(table["status"], pa.array(ANSWERED)).cast(pa.int8())
        order = pc.sort_indices(table.append_column("_answered", answered),
                                [("id", "ascending"), ("_answered", "descending"), ("answered_at", "descending")])
        table = table.take(order)
        ids_sorted = table["id"].to_numpy(zero_copy_only=False)
        keep = [0] + [i for i in range(1, len(ids_sorted)) if ids_sorted[i] != ids_sorted[i - 1]]
        return table.take(pa.array(keep, pa.int64()))


@dataclass
class LabelRun:
    """What one labelling run did: cache hits, what was asked, and the oracle client's figures."""

    sampled: int = 0
    cached: int = 0
    asked: int = 0
    truncated: int = 0
    oracle: OracleRunStats = field(default_factory=OracleRunStats)
    statuses: Counter[str] = field(default_factory=Counter)


def _prompts(src_uri: str, todo: set[str], max_chars: int, info: dict[str, dict[str, Any]]
             ) -> Iterator[tuple[str, str]]:
    wanted = pa.array(sorted(todo), pa.string())
    for batch in iter_batches(src_uri, ["id", "crawl", "language", "path", "sha256", "content"], batch_rows=512):
        mask = pc.is_in(batch.column("id"), wanted)
        if not pc.any(mask).as_py():
            continue
        for row in batch.filter(mask).to_pylist():
            rendered = render_prompt(row["language"], row["content"], max_chars)
            info[row["id"]] = {k: row[k] for k in ("crawl", "language", "path", "sha256")} | {
                "truncated": rendered.truncated, "content_chars": rendered.content_chars}
            yield row["id"], rendered.text


# (ids still to ask, per-id info to fill) -> (id, prompt) pairs, rendered lazily as they are sent
Prompts = Callable[[set[str], dict[str, dict[str, Any]]], Iterator[tuple[str, str]]]


def label_sample(sample: pa.Table, src_uri: str, settings: OracleSettings, cache: LabelCache, run_id: str,
                 max_content_chars: int, retry_parse_failures: bool = False, flush_every: int = 256,
                 prompts: Prompts | None = None, parse: Parse | None = None) -> tuple[pa.Table, LabelRun]:
    """Labels for every sampled file: cached answers reused, the rest asked now and cached as they arrive.

    Returns one row per sampled file (status ok, parse_failure, error or not_asked) and the run's figures.
    `prompts` and `parse` default to the A.2.1 prompt of a file and its rating; the web corpus passes its
    own (a page's prompt, its three-line answer). The sample has the columns of SAMPLE_SCHEMA.
    """
    run = LabelRun(sampled=sample.num_rows)
    known = cache.load(sample["id"])
    done_status = ("ok",) if retry_parse_failures else ANSWERED
    expected = dict(zip(sample["id"].to_pylist(), sample["sha256"].to_pylist()))

    def fresh(row_id: str, sha256: str | None) -> bool:  # an answer about other content is no answer
        return sha256 is None or expected.get(row_id) in (None, sha256)

    done = {i for i, sha, status in zip(*(known[c].to_pylist() for c in ("id", "sha256", "status")))
            if status in done_status and fresh(i, sha)}
    todo = set(sample["id"].to_pylist()) - done
    run.cached = len(done)
    info: dict[str, dict[str, Any]] = {}
    buffer: list[dict[str, Any]] = []

    def on_reply(file_id: str, reply: OracleReply) -> None:
        buffer.append({
            "id": file_id, **info.pop(file_id), "model": settings.model, "prompt_version": cache.prompt_version,
            "status": reply.status, "rating": reply.rating, "raw": reply.raw, "error": reply.error,
            "attempts": reply.attempts, "latency_s": reply.latency_s, "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens, "answered_at": dt.datetime.now(dt.UTC), "run_id": run_id,
        })
        if buffer[-1]["truncated"]:
            run.truncated += 1
        if len(buffer) >= flush_every:
            cache.append(buffer)
            buffer.clear()

    try:
        if todo:
            rendered = (prompts(todo, info) if prompts is not None
                        else _prompts(src_uri, todo, max_content_chars, info))
            run.oracle = label(settings, rendered, on_reply, parse)
    finally:
        cache.append(buffer)  # whatever was answered survives a crash of the rest
    run.asked = run.oracle.asked

    labels = cache.load(sample["id"])
    by_id = {row["id"]: row for row in labels.to_pylist() if fresh(row["id"], row["sha256"])}
    rows = []
    for s in sample.to_pylist():
        row = by_id.get(s["id"]) or {
            "id": s["id"], "model": settings.model, "prompt_version": cache.prompt_version, "status": "not_asked",
            "error": run.oracle.aborted or "the oracle was not asked (run interrupted)", "run_id": run_id}
        row.update({k: s[k] for k in ("crawl", "language", "path", "sha256")})
        run.statuses[row["status"]] += 1
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=LABEL_SCHEMA), run
