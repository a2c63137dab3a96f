"""Dedup of a web dump's pages, within the dump and against every earlier dump: the framework's record dedup
(core/dedup/records.py) on the extracted text. Exact: the same text (a page fetched twice, a page served at
two URLs); near: MinHash of the text's word 5-grams (a re-fetch whose footer date changed, mirrors). The
latest fetch survives, then the smallest URL (core/dedup/survivor.py, "web"); the web index is
`<index>/web`."""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pyarrow as pa

from seedcoder_assets.core.dedup.index import DedupIndex
from seedcoder_assets.core.dedup.minhash import MinHashParams
from seedcoder_assets.core.dedup.records import RecordDedup, dedup_records
from seedcoder_assets.core.stats import LineageWriter, StageStats
from seedcoder_assets.core.web.pages import WEB_PAGE_SCHEMA


def _texts(batch: pa.RecordBatch) -> list[str]:
    return batch.column("text").to_pylist()


WEB_DEDUP = RecordDedup(source="web", hashes="web_hashes", bands="web", hash_column="text_hash",
                        text_columns=("text",), dedup_text=_texts, schema=WEB_PAGE_SCHEMA)


def dedup_pages(pages_uri: str, dst_uri: str, lineage: LineageWriter, params: MinHashParams, index: DedupIndex,
                prior_dumps: Sequence[str], conn: duckdb.DuckDBPyConnection) -> StageStats:
    """Keep one page of every exact and near duplicate set of a dump and of the dumps before it."""
    return dedup_records(WEB_DEDUP, pages_uri, dst_uri, lineage, params, index, prior_dumps, conn)
