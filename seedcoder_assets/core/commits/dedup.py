"""Dedup of a commit crawl's samples, within the crawl and against every earlier commit crawl.

- Exact: the same change (`patch_hash`: per path, the added and removed lines, no context or positions),
  as a fork's copy of a commit or a cherry-pick onto an identical file has. `exact_dup` (its survivor in
  this crawl) or `exact_dup_prior_crawl`.
- Near: MinHash of the changed lines' word 5-grams (the framework's scheme, bands and star clustering,
  core/dedup/near.py), as a backport or a cherry-pick onto a drifted file has. `near_dup` or
  `near_dup_prior_crawl`. Decided on the estimate: the samples' texts are not re-read for exact checks.

The survivor is the earliest commit, then repository, then sha (core/dedup/survivor.py, "commits"): later
copies are cherry-picks, reverts of reverts or forks. Survivors stay in their shard's folder; their patch
hashes and bands go to the commits index (`<index>/commits`), which later crawls read.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import numpy as np
import pyarrow as pa

from seedcoder_assets.core.commits.corpus import COMMIT_SAMPLE_SCHEMA
from seedcoder_assets.core.commits.verify import target_diff
from seedcoder_assets.core.dedup import minhash
from seedcoder_assets.core.dedup.index import DedupIndex
from seedcoder_assets.core.dedup.minhash import MinHashParams
from seedcoder_assets.core.dedup.near import near_clusters
from seedcoder_assets.core.dedup.survivor import survivor_order
from seedcoder_assets.core.parquet_io import duckdb_source, iter_batches, shard_pairs
from seedcoder_assets.core.runner import Verdicts, run_stage
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


def dedup_samples(samples_uri: str, dst_uri: str, lineage: LineageWriter, params: MinHashParams,
                  index: DedupIndex, prior_crawls: Sequence[str], conn: duckdb.DuckDBPyConnection) -> StageStats:
    """Keep one sample of every exact and near duplicate set of a crawl and of the crawls before it."""
    index.require(PATCHES, prior_crawls)
    index.require(BANDS, prior_crawls)
    rule = survivor_order("commits")
    conn.execute(f"CREATE OR REPLACE TEMP VIEW s AS SELECT id, repo, commit, committed_at, patch_hash "
                 f"FROM {duckdb_source(samples_uri)}")
    firsts = conn.execute(f"SELECT id, patch_hash, first_value(id) OVER (PARTITION BY patch_hash "
                          f"ORDER BY {rule.order_by()}, id) FROM s ORDER BY id").fetchall()
    known = index.known_hashes(PATCHES, pa.array(sorted({h for _, h, _ in firsts}), pa.string()), prior_crawls)
    fate: dict[str, tuple[str, str, str | None]] = {}  # id -> (reason, survivor, detail)
    for id_, h, first in firsts:
        if h in known:
            fate[id_] = ("exact_dup_prior_crawl", known[h][1], f"crawl={known[h][0]}")
        elif id_ != first:
            fate[id_] = ("exact_dup", first, None)

    ids, sigs, counts = [], [], []  # near dedup among the exact survivors
    for batch in iter_batches(samples_uri, ["id", "prompt_chars", "text"], 1024):
        rows = [(i, changed_lines(t, p)) for i, p, t in zip(batch.column("id").to_pylist(),
                                                            batch.column("prompt_chars").to_pylist(),
                                                            batch.column("text").to_pylist()) if i not in fate]
        if rows:
            s, n, _ = minhash.signatures_with_sets(pa.array([t for _, t in rows], pa.large_string()), params)
            ids += [i for i, _ in rows]
            sigs.append(s)
            counts.append(n)
    sig = np.concatenate(sigs) if sigs else np.zeros((0, params.num_perm), np.uint64)
    n_sh = np.concatenate(counts) if counts else np.zeros(0, np.int64)
    meta = conn.execute("SELECT id, repo, commit, committed_at FROM s").fetch_arrow_table()
    clusters, figures = near_clusters(BANDS, ids, sig, n_sh, meta, params, rule, index, prior_crawls, conn)
    for c in clusters.to_pylist():
        if c["prior_crawl"]:
            fate[c["id"]] = ("near_dup_prior_crawl", c["survivor"],
                             f"jaccard~{c['similarity']:.3f} crawl={c['prior_crawl']}")
        elif c["id"] != c["survivor"]:
            fate[c["id"]] = ("near_dup", c["survivor"], f"jaccard~{c['similarity']:.3f}")

    def decide(batch: pa.RecordBatch) -> Verdicts:
        hit = [fate.get(i) for i in batch.column("id").to_pylist()]
        return Verdicts.from_reasons([f and f[0] for f in hit], survivor=[f and f[1] for f in hit],
                                     cluster=[f and f[1] for f in hit], detail=[f and f[2] for f in hit])

    for src, dst in shard_pairs(samples_uri, dst_uri):  # each shard's survivors stay in their shard
        run_stage(iter_batches(src, batch_rows=512), dst, lineage, decide, schema=COMMIT_SAMPLE_SCHEMA, close=False)
    kept_hashes = {h: i for i, h, _ in firsts if i not in fate}
    index.write_hashes(PATCHES, lineage.crawl, pa.array(list(kept_hashes), pa.string()),
                       pa.array(list(kept_hashes.values()), pa.string()))
    keep = np.array([i not in fate and n > 0 for i, n in zip(ids, n_sh)], bool)
    index.write_bands(BANDS, lineage.crawl, [i for i, k in zip(ids, keep) if k],
                      minhash.band_keys(sig[keep], params), sig[keep])
    stats = lineage.close()
    stats.extra.update({k: v for k, v in figures.items() if k in ("candidate_pairs", "cluster_sizes")},
                       changes_without_shingles=int((n_sh <= 0).sum()))
    return stats
