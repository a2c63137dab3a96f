"""Exact and near dedup of one partition of records that carry their own text (commit samples, web pages),
within the partition and against every earlier partition of the same source.

- Exact: records with the same content hash; `exact_dup` (its survivor in this partition) or
  `exact_dup_prior_crawl` (a hash an earlier partition kept).
- Near: MinHash of each record's dedup text (the framework's scheme, bands and star clustering,
  core/dedup/near.py); `near_dup` or `near_dup_prior_crawl`. Decided on the estimate.

The survivor is the first record in the source's survivor order (core/dedup/survivor.py). Survivors stay in
their shard's folder; the kept hashes and bands go to the source's index, which later partitions read.
A source says what its records are with a `RecordDedup`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

from seedcoder_assets.core.dedup import minhash
from seedcoder_assets.core.dedup.index import DedupIndex
from seedcoder_assets.core.dedup.minhash import MinHashParams
from seedcoder_assets.core.dedup.near import near_clusters
from seedcoder_assets.core.dedup.survivor import survivor_order
from seedcoder_assets.core.parquet_io import duckdb_source, iter_batches, shard_pairs
from seedcoder_assets.core.runner import Verdicts, run_stage
from seedcoder_assets.core.stats import LineageWriter, StageStats


@dataclass(frozen=True)
class RecordDedup:
    source: str  # whose survivor order decides (core/dedup/survivor.py)
    hashes: str  # the index table of kept content hashes
    bands: str  # the index kind of kept bands and signatures
    hash_column: str  # the records' content hash
    text_columns: tuple[str, ...]  # what `dedup_text` reads of a batch
    dedup_text: Callable[[pa.RecordBatch], list[str]]  # the text MinHash sees, one per row
    schema: pa.Schema  # of the records (the output keeps it)


def dedup_records(spec: RecordDedup, src_uri: str, dst_uri: str, lineage: LineageWriter, params: MinHashParams,
                  index: DedupIndex, prior_crawls: Sequence[str], conn: duckdb.DuckDBPyConnection) -> StageStats:
    """Keep one record of every exact and near duplicate set of a partition and of the partitions before it."""
    index.require(spec.hashes, prior_crawls)
    index.require(spec.bands, prior_crawls)
    rule = survivor_order(spec.source)
    meta_columns = ", ".join(dict.fromkeys(("id", *rule.columns)))
    conn.execute(f"CREATE OR REPLACE TEMP VIEW s AS SELECT {meta_columns}, {spec.hash_column} AS content_hash "
                 f"FROM {duckdb_source(src_uri)}")
    firsts = conn.execute("SELECT id, content_hash, first_value(id) OVER (PARTITION BY content_hash "
                          f"ORDER BY {rule.order_by()}, id) FROM s ORDER BY id").fetchall()
    known = index.known_hashes(spec.hashes, pa.array(sorted({h for _, h, _ in firsts}), pa.string()), prior_crawls)
    fate: dict[str, tuple[str, str, str | None]] = {}  # id -> (reason, survivor, detail)
    for id_, h, first in firsts:
        if h in known:
            fate[id_] = ("exact_dup_prior_crawl", known[h][1], f"crawl={known[h][0]}")
        elif id_ != first:
            fate[id_] = ("exact_dup", first, None)

    ids, sigs, counts = [], [], []  # near dedup among the exact survivors
    for batch in iter_batches(src_uri, ["id", *spec.text_columns], 1024):
        texts = spec.dedup_text(batch)
        rows = [(i, t) for i, t in zip(batch.column("id").to_pylist(), texts) if i not in fate]
        if rows:
            s, n, _ = minhash.signatures_with_sets(pa.array([t for _, t in rows], pa.large_string()), params)
            ids += [i for i, _ in rows]
            sigs.append(s)
            counts.append(n)
    sig = np.concatenate(sigs) if sigs else np.zeros((0, params.num_perm), np.uint64)
    n_sh = np.concatenate(counts) if counts else np.zeros(0, np.int64)
    meta = conn.execute(f"SELECT {meta_columns} FROM s").fetch_arrow_table()
    clusters, figures = near_clusters(spec.bands, ids, sig, n_sh, meta, params, rule, index, prior_crawls, conn)
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

    for src, dst in shard_pairs(src_uri, dst_uri):  # each shard's survivors stay in their shard
        run_stage(iter_batches(src, batch_rows=512), dst, lineage, decide, schema=spec.schema, close=False)
    kept_hashes = {h: i for i, h, _ in firsts if i not in fate}
    index.write_hashes(spec.hashes, lineage.crawl, pa.array(list(kept_hashes), pa.string()),
                       pa.array(list(kept_hashes.values()), pa.string()))
    keep = np.array([i not in fate and n > 0 for i, n in zip(ids, n_sh)], bool)
    index.write_bands(spec.bands, lineage.crawl, [i for i, k in zip(ids, keep) if k],
                      minhash.band_keys(sig[keep], params), sig[keep])
    stats = lineage.close()
    stats.extra.update({k: v for k, v in figures.items() if k in ("candidate_pairs", "cluster_sizes")},
                       records_without_shingles=int((n_sh <= 0).sum()))
    return stats
