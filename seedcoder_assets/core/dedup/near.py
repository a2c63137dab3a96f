"""File-level and repository-level near dedup stages built on `minhash`.

Signatures are an output of their own; clusters are recomputed from them (and from the
survivor rule's columns), so changing the rule never re-shingles a byte.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seedcoder_assets.core.dedup import minhash
from seedcoder_assets.core.dedup.index import DedupIndex
from seedcoder_assets.core.dedup.minhash import MinHashParams
from seedcoder_assets.core.dedup.survivor import SurvivorRule
from seedcoder_assets.core.parquet_io import PartWriter, duckdb_source, iter_batches, read_table
from seedcoder_assets.core.schemas import CLUSTER_SCHEMA, FILE_SCHEMA, SIGNATURE_SCHEMA
from seedcoder_assets.core.stats import LineageWriter, StageStats


def compute_signatures(src_uri: str, dst_uri: str, params: MinHashParams, batch_rows: int = 1024) -> StageStats:
    """MinHash signature of every file, streamed in batches of `batch_rows`."""
    stats = StageStats("minhash_signatures")
    with PartWriter(dst_uri, SIGNATURE_SCHEMA) as out:
        for batch in iter_batches(src_uri, ["id", "content"], batch_rows):
            texts = batch.column("content").to_pylist()
            sigs, counts = minhash.signatures(texts, params)
            stats.rows_in += len(texts)
            stats.bytes_in += sum(len(t) for t in texts)
            out.write_table(pa.table({
                "id": batch.column("id"), "n_shingles": pa.array(counts, pa.int32()),
                "signature": pa.array([row.tobytes() for row in sigs], pa.binary()),
            }))
    stats.rows_out = stats.rows_in
    stats.extra.update(scheme=minhash.SCHEME_VERSION, num_perm=params.num_perm, ngram=params.ngram)
    return stats.finish()


def _load_signatures(sig_uri: str, num_perm: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(ids sorted, uint32 [n, num_perm] signatures, shingle counts), read without per-row objects."""
    table = read_table(sig_uri, ["id", "n_shingles", "signature"]).sort_by("id")
    ids = table.column("id").to_pylist()
    if not ids:
        return ids, np.zeros((0, num_perm), np.uint32), np.zeros(0, np.int32)
    arr = table.column("signature").combine_chunks()
    offsets = np.frombuffer(arr.buffers()[1], np.int32)[arr.offset: arr.offset + len(arr) + 1]
    values = np.frombuffer(arr.buffers()[2], np.uint8)[offsets[0]: offsets[-1]]
    sigs = values.view(np.uint32).reshape(len(ids), num_perm)  # every signature has num_perm values
    return ids, sigs, table.column("n_shingles").to_numpy()


def _priority(meta: pa.Table, ids: list[str], rule: SurvivorRule, conn: duckdb.DuckDBPyConnection) -> np.ndarray:
    """Row indices of `ids` in survivor order under `rule`."""
    conn.register("meta", meta)
    ordered = [i for (i,) in conn.execute(f"SELECT id FROM meta ORDER BY {rule.order_by()}").fetchall()]
    conn.unregister("meta")
    pos = {id_: r for r, id_ in enumerate(ids)}
    return np.array([pos[i] for i in ordered if i in pos], np.int64)


def refine_exact(pairs: np.ndarray, sim: np.ndarray, ids: list[str], files_uri: str,
                 params: MinHashParams) -> tuple[np.ndarray, int]:
    """Replace the estimate by the exact Jaccard for pairs within `exact_margin` of the threshold.

    With 128 permutations the estimate's standard deviation is ~0.04 near J=0.7, so those pairs
    decide precision and recall. Their files are shingled again in blocks of at most
    `exact_block_files` files, one streaming pass per block, so memory does not grow with the crawl.
    """
    unsure = np.flatnonzero(np.abs(sim - params.threshold) < params.exact_margin)
    if len(unsure) == 0:
        return sim, 0
    sim = sim.copy()
    for block in _pair_blocks(pairs[unsure], unsure, params.exact_block_files):
        rows = np.unique(pairs[block])
        wanted = {ids[r]: r for r in rows.tolist()}
        sets: dict[int, np.ndarray] = {}
        for batch in iter_batches(files_uri, ["id", "content"], batch_rows=1024):
            picked = [(wanted[i], t) for i, t in zip(batch.column("id").to_pylist(),
                                                     batch.column("content").to_pylist()) if i in wanted]
            if picked:
                sets.update(zip((r for r, _ in picked), minhash.shingle_sets([t for _, t in picked], params)))
        for k in block.tolist():
            a, b = pairs[k]
            sim[k] = minhash.exact_jaccard(sets[a], sets[b])
    return sim, len(unsure)


def _pair_blocks(unsure_pairs: np.ndarray, index: np.ndarray, max_files: int) -> list[np.ndarray]:
    """Split pair indices into blocks whose pairs touch at most `max_files` distinct files."""
    order = np.argsort(unsure_pairs[:, 0], kind="stable")
    blocks, current, files = [], [], set()
    for k in order.tolist():
        a, b = unsure_pairs[k]
        new = {a, b} - files
        if current and len(files) + len(new) > max_files:
            blocks.append(np.array(current, np.int64))
            current, files = [], set()
            new = {a, b}
        current.append(int(index[k]))
        files |= new
    if current:
        blocks.append(np.array(current, np.int64))
    return blocks


def near_clusters(kind: str, crawl: str, ids: list[str], sigs: np.ndarray, n_shingles: np.ndarray,
                  meta: pa.Table, params: MinHashParams, rule: SurvivorRule, index: DedupIndex,
                  prior_crawls: Sequence[str], conn: duckdb.DuckDBPyConnection,
                  files_uri: str | None = None) -> tuple[pa.Table, dict[str, Any]]:
    """Verified star clusters of one crawl, including matches against earlier crawls.

    Pairs are verified on the signature estimate; with `files_uri`, pairs close to the
    threshold are verified on their exact Jaccard instead.

    Returns:
        (cluster rows: one per member of every cluster of size >= 2, with the rule's inputs;
         figures: candidate and verified pair counts, cluster-size histogram).
    """
    n = len(ids)
    keys = minhash.band_keys(sigs, params)
    valid = n_shingles > 0
    pairs = minhash.candidate_pairs(keys, valid, params.max_bucket_pairs)
    sim = minhash.pair_similarity(sigs, pairs)
    exact_checked = 0
    if files_uri is not None and len(pairs):
        sim, exact_checked = refine_exact(pairs, sim, ids, files_uri, params)
    verified = sim >= params.threshold
    # Earlier crawls: their survivors are final, so a match there decides first.
    pre: dict[int, tuple[str, float]] = {}
    prior_crawl_of: dict[str, str] = {}
    hist = index.band_candidates(kind, keys[valid], [ids[r] for r in np.flatnonzero(valid)], prior_crawls)
    if hist:
        valid_rows = np.flatnonzero(valid)
        prior_sigs = index.signatures(kind, {pid for _, pid, _ in hist})
        for local, pid, pcrawl in hist:
            row = int(valid_rows[local])
            s = float(minhash.similarity(sigs[row], np.frombuffer(prior_sigs[pid], np.uint32)))
            if s >= params.threshold and (row not in pre or (s, pid) > (pre[row][1], pre[row][0])):
                pre[row] = (pid, s)
                prior_crawl_of[pid] = pcrawl
    survivor, sim_to = minhash.star_clusters(n, _priority(meta, ids, rule, conn), pairs[verified], sim[verified], pre)
    members: dict[str, list[int]] = {}
    for row in np.flatnonzero(survivor != np.arange(n)).tolist():
        head = pre[row][0] if survivor[row] == -1 else ids[survivor[row]]
        members.setdefault(head, []).append(row)
    member_rows = {r for head, rws in members.items() for r in rws} | {
        _row_of(ids, head) for head in members if head not in prior_crawl_of}
    wanted = pa.array([ids[r] for r in member_rows], pa.string())
    meta_by_id = {r["id"]: r for r in meta.filter(pc.is_in(meta.column("id"), wanted)).to_pylist()}
    rows = []
    for head, rws in members.items():
        if head not in prior_crawl_of:
            rws = [_row_of(ids, head), *rws]
        for row in rws:
            m = meta_by_id.get(ids[row], {})
            rows.append({"cluster": head, "id": ids[row], "survivor": head,
                         "similarity": float(sim_to[row]) if ids[row] != head else 1.0,
                         "prior_crawl": prior_crawl_of.get(head), "stars": m.get("stars"),
                         "pushed_at": m.get("pushed_at"), "repo": m.get("repo"), "path": m.get("path")})
    sizes = Counter(len(v) + (0 if k in prior_crawl_of else 1) for k, v in members.items())
    figures = {"candidate_pairs": int(len(pairs)), "verified_pairs": int(verified.sum()),
               "exact_checked_pairs": exact_checked,
               "prior_crawl_matches": len(pre), "cluster_sizes": dict(sorted(sizes.items())),
               "files_without_shingles": int((~valid).sum())}
    return pa.Table.from_pylist(rows, schema=CLUSTER_SCHEMA), figures


def _row_of(ids: list[str], id_: str) -> int:
    lo, hi = 0, len(ids)  # ids are sorted
    while lo < hi:
        mid = (lo + hi) // 2
        if ids[mid] < id_:
            lo = mid + 1
        else:
            hi = mid
    return lo


def file_near_clusters(sig_uri: str, files_uri: str, repos_uri: str, dst_uri: str, crawl: str,
                       params: MinHashParams, rule: SurvivorRule, index: DedupIndex,
                       prior_crawls: Sequence[str], conn: duckdb.DuckDBPyConnection) -> StageStats:
    """Write the near-duplicate clusters of a crawl's files (one row per member)."""
    stats = StageStats("near_dup_clusters")
    ids, sigs, n_sh = _load_signatures(sig_uri, params.num_perm)
    meta = conn.execute(f"SELECT f.id, f.repo, f.path, r.stars, r.pushed_at FROM {duckdb_source(files_uri)} f "
                        f"LEFT JOIN (SELECT repo, stars, pushed_at FROM {duckdb_source(repos_uri)}) r USING (repo)"
                        ).fetch_arrow_table()
    table, figures = near_clusters("file", crawl, ids, sigs, n_sh, meta, params, rule, index, prior_crawls, conn,
                                   files_uri=files_uri)
    with PartWriter(dst_uri, CLUSTER_SCHEMA) as out:
        out.write_table(table)
    stats.rows_in, stats.rows_out = len(ids), table.num_rows
    stats.extra.update(figures)
    return stats.finish()


def apply_near_dedup(files_uri: str, clusters_uri: str, sig_uri: str, dst_uri: str, lineage: LineageWriter,
                     params: MinHashParams, index: DedupIndex) -> StageStats:
    """Drop every cluster member that is not its survivor; index the kept files' bands.

    Dropped: `near_dup` (survivor in this crawl), `near_dup_prior_crawl` (in an earlier crawl).
    """
    clusters = read_table(clusters_uri).to_pylist()
    fate = {r["id"]: r for r in clusters if r["id"] != r["survivor"]}
    with PartWriter(dst_uri, FILE_SCHEMA) as out:
        for batch in iter_batches(files_uri, batch_rows=1024):
            mask = []
            for id_, size in zip(batch.column("id").to_pylist(), batch.column("size").to_pylist()):
                c = fate.get(id_)
                if c is None:
                    lineage.kept(id_, size)
                else:
                    reason = "near_dup_prior_crawl" if c["prior_crawl"] else "near_dup"
                    lineage.dropped(id_, reason, size, cluster=c["cluster"], survivor=c["survivor"],
                                    detail=f"jaccard~{c['similarity']:.3f}")
                mask.append(c is None)
            out.write_table(pa.Table.from_batches([batch]).filter(pa.array(mask, pa.bool_())))
    ids, sigs, n_sh = _load_signatures(sig_uri, params.num_perm)
    keep = np.array([i not in fate and n > 0 for i, n in zip(ids, n_sh)], bool)
    kept_ids = [i for i, k in zip(ids, keep) if k]
    index.add_bands("file", lineage.crawl, kept_ids, minhash.band_keys(sigs[keep], params), sigs[keep])
    return lineage.close()
