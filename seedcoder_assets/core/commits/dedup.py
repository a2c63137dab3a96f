"""Dedup of a commit crawl's samples, within the crawl and against every earlier commit crawl.

- Exact: the same change (`patch_hash`: per path, the added and removed lines, no context or positions),
  as a fork's copy of a commit or a cherry-pick onto an identical file has. `exact_dup` (its survivor in
  this crawl) or `exact_dup_prior_crawl`.
- Near: MinHash of the changed lines' word 5-grams (the framework's scheme, bands and star clustering,
  core/dedup/near.py), as a backport or a cherry-pick onto a drifted file has. `near_dup` or
  `near_dup_prior_crawl`. Decided on the estimate: the samples' texts are not re-read for exact checks.

The survivor is the earliest commit, then repository, then sha (core/dedup/survivor.py, "commits"): later
copies are cherry-picks, reverts of reverts or forks. Survivors stay in their shard's folder; their patch
hashes and bands go to the commits index (`<index>/commits`), which later crawls read. The dedup itself is
the framework's record dedup (core/dedup/records.py); this module says what a commit sample's duplicate is.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pyarrow as pa

from seedcoder_assets.core.commits.corpus import COMMIT_SAMPLE_SCHEMA
from seedcoder_assets.core.commits.verify import target_diff
from seedcoder_assets.core.dedup.index import DedupIndex
from seedcoder_assets.core.dedup.minhash import MinHashParams
from seedcoder_assets.core.dedup.records import RecordDedup, dedup_records
from seedcoder_assets.core.stats import LineageWriter, StageStats

PATCHES, BANDS = "commit_patches", "commit"  # the commits index's tables (core/dedup/index.py TABLES)


def changed_lines(text: str, prompt_chars: int) -> str:
    """The added and removed lines of a sample's diffs, with the paths they belong to: what a cherry-pick
    or a backport carries over, whatever the context around it."""
    out = []
    for line in target_diff(text, prompt_chars).splitlines():
        if line.startswith("diff --git "):
            out.append(line[len("diff --git "):])
        elif line[:1] in "+-" and not line.startswith(("+++ ", "--- ")):
            out.append(line)
    return "\n".join(out)


def _changed_lines(batch: pa.RecordBatch) -> list[str]:
    return [changed_lines(t, p) for t, p in zip(batch.column("text").to_pylist(), batch.column("prompt_chars").to_pylist())]


COMMIT_DEDUP = RecordDedup(source="commits", hashes=PATCHES, bands=BANDS, hash_column="patch_hash",
                           text_columns=("prompt_chars", "text"), dedup_text=_changed_lines, schema=COMMIT_SAMPLE_SCHEMA)


def dedup_samples(samples_uri: str, dst_uri: str, lineage: LineageWriter, params: MinHashParams,
                  index: DedupIndex, prior_crawls: Sequence[str], conn: duckdb.DuckDBPyConnection) -> StageStats:
    """Keep one sample of every exact and near duplicate set of a crawl and of the crawls before it."""
    return dedup_records(COMMIT_DEDUP, samples_uri, dst_uri, lineage, params, index, prior_crawls, conn)
