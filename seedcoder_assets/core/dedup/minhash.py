"""MinHash near-duplicate detection: shingles, signatures, LSH candidates, verified star clusters.

Shingling is vectorised (polars word split + hash, numpy n-gram combine) and the MinHash
itself runs in rensa over a flat u64 buffer, so no Python loop touches a token. Candidate
pairs from LSH are verified on the full signature (estimated Jaccard), and clusters are
stars around a survivor: a file is dropped only if it is itself similar to the survivor
that replaces it, so A~B~C chains never merge A with C.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
import rensa
from pydantic import BaseModel, model_validator

SCHEME_VERSION = "minhash-v1"  # bump when shingling or hashing changes: signatures are not comparable
_WORD = r"\w+"
_P = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit multiplier (golden ratio) for n-gram and band mixing


class MinHashParams(BaseModel, frozen=True):
    """Near-dedup knobs. Defaults are justified by benchmarks/bench_near_dedup.py."""

    ngram: int = 5  # word 5-grams, as the issue and StarCoder's dedup use
    num_perm: int = 128
    bands: int = 32
    rows: int = 4  # P(candidate | J=0.7) = 1 - (1 - 0.7^4)^32 = 0.9998
    threshold: float = 0.7  # verified estimated Jaccard needed to call two files near-duplicates
    seed: int = 42
    max_bucket_pairs: int = 32_640  # all pairs for buckets up to 256 members; larger ones: head + chain links
    exact_margin: float = 0.1  # pairs whose estimate is this close to the threshold get exact Jaccard
    exact_block_files: int = 4_096  # files re-shingled per pass of the exact check (bounds its memory)

    @model_validator(mode="after")
    def _bands_fit(self) -> MinHashParams:
        if self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands*rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")
        return self


def shingle_hashes(texts: Sequence[str], ngram: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Word n-gram hashes of each text as one flat buffer plus row offsets.

    Texts with fewer than `ngram` words use their word hashes as shingles; texts without
    words get no shingles (exact dedup still covers them).

    Returns:
        (hashes uint64 [total], offsets uint64 [len(texts) + 1]).
    """
    words = pl.Series(values=list(texts), dtype=pl.String).str.extract_all(_WORD)
    lens = words.list.len().fill_null(0).to_numpy().astype(np.int64)
    h = words.explode(empty_as_null=True).drop_nulls().hash(seed=seed).to_numpy()
    del words
    n_docs, total = len(lens), int(lens.sum())
    counts = np.where(lens >= ngram, lens - ngram + 1, lens)
    offsets = np.zeros(n_docs + 1, np.uint64)
    np.cumsum(counts, out=offsets[1:])
    if total == 0:
        return np.zeros(0, np.uint64), offsets
    # g[i] mixes words i..i+ngram-1 (wrapping multiply-add); positions whose window crosses
    # a document end are masked out. Short documents keep their word hashes instead.
    g = h.copy()
    with np.errstate(over="ignore"):
        for k in range(1, min(ngram, total)):  # a batch of fewer than `ngram` words has no full window
            g[: total - k] *= _P
            g[: total - k] += h[k:]
    starts = np.zeros(n_docs + 1, np.int64)
    np.cumsum(lens, out=starts[1:])
    end_of = np.repeat(starts[1:], lens)  # end offset of each word's document
    long_doc = np.repeat(lens >= ngram, lens)
    keep = ~long_doc | (np.arange(total) + ngram <= end_of)
    del end_of
    np.copyto(g, h, where=~long_doc)
    values = g[keep]
    return values.astype(np.uint64, copy=False), offsets


def signatures(texts: Sequence[str], params: MinHashParams) -> tuple[np.ndarray, np.ndarray]:
    """MinHash signatures (uint32 [n, num_perm]) and shingle counts (int32 [n]) of texts."""
    flat, offsets = shingle_hashes(texts, params.ngram, params.seed)
    counts = np.diff(offsets).astype(np.int32)
    if len(texts) == 0:
        return np.zeros((0, params.num_perm), np.uint32), counts
    matrix = rensa.RMinHash.digest_matrix_from_flat_token_hashes(flat, offsets, params.num_perm, params.seed)
    return np.asarray(matrix.to_rows(), dtype=np.uint32).reshape(len(texts), params.num_perm), counts


def band_keys(sigs: np.ndarray, params: MinHashParams) -> np.ndarray:
    """int64 [n, bands]: one key per band, mixing that band's `rows` signature values."""
    n = sigs.shape[0]
    keys = np.zeros((n, params.bands), np.uint64)
    with np.errstate(over="ignore"):
        for r in range(params.rows):
            cols = sigs[:, r : params.bands * params.rows : params.rows].astype(np.uint64)
            keys = keys * _P + cols + np.uint64(r + 1)
    return keys.view(np.int64)


def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Estimated Jaccard of row pairs: share of equal MinHash values."""
    return (a == b).mean(axis=-1, dtype=np.float32)


def pair_similarity(sigs: np.ndarray, pairs: np.ndarray, chunk: int = 32_768) -> np.ndarray:
    """Estimated Jaccard of each (i, j) row pair, in chunks: gathering both sides of 400k pairs
    at once would hold 400 MB of signature copies."""
    out = np.empty(len(pairs), np.float32)
    for start in range(0, len(pairs), chunk):
        p = pairs[start:start + chunk]
        out[start:start + len(p)] = similarity(sigs[p[:, 0]], sigs[p[:, 1]])
    return out


def candidate_pairs(keys: np.ndarray, valid: np.ndarray, max_bucket_pairs: int) -> np.ndarray:
    """Unique pairs (i < j) of rows sharing a key in any band, as int64 [m, 2].

    Buckets with more than `max_bucket_pairs` possible pairs link each member to the bucket's
    first member and to its predecessor, which bounds the pair count by 2 per member.
    """
    pairs: list[np.ndarray] = []
    rows = np.flatnonzero(valid)
    for b in range(keys.shape[1]):
        k = keys[rows, b]
        order = np.argsort(k, kind="stable")
        ks, rs = k[order], rows[order]
        boundaries = np.flatnonzero(np.diff(ks)) + 1
        starts = np.concatenate(([0], boundaries))
        ends = np.concatenate((boundaries, [len(ks)]))
        for s, e in zip(starts[ends - starts > 1], ends[ends - starts > 1]):
            members = rs[s:e]
            size = e - s
            if size * (size - 1) // 2 <= max_bucket_pairs:
                i, j = np.triu_indices(size, 1)
                pairs.append(np.stack([members[i], members[j]], axis=1))
            else:
                head = np.stack([np.full(size - 1, members[0]), members[1:]], axis=1)
                chain = np.stack([members[:-1], members[1:]], axis=1)
                pairs.append(np.concatenate([head, chain]))
    if not pairs:
        return np.zeros((0, 2), np.int64)
    allp = np.concatenate(pairs)
    allp = np.sort(allp, axis=1)
    return np.unique(allp, axis=0)


def star_clusters(n: int, priority: np.ndarray, edges: np.ndarray, edge_sim: np.ndarray,
                  pre_assigned: dict[int, tuple[str, float]] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Greedy star clustering over verified edges.

    Rows are visited in `priority` order (best first). An unassigned row becomes a survivor and
    absorbs its unassigned verified neighbours; absorbed rows never absorb others.

    Args:
        n: number of rows.
        priority: row indices, best survivor first.
        edges: int64 [m, 2] verified near-duplicate pairs.
        edge_sim: float [m] their estimated Jaccard.
        pre_assigned: rows already dropped as duplicates of an earlier crawl (row -> (id, sim)).

    Returns:
        (survivor row per row, -1 for rows dropped against an earlier crawl; sim to survivor).
    """
    survivor = np.full(n, -2, np.int64)
    sim = np.ones(n, np.float32)
    for row, (_, s) in (pre_assigned or {}).items():
        survivor[row], sim[row] = -1, s
    # Adjacency as CSR arrays (both directions): memory is 12 bytes per edge end, not a Python tuple.
    src = np.concatenate([edges[:, 0], edges[:, 1]]) if len(edges) else np.zeros(0, np.int64)
    dst = np.concatenate([edges[:, 1], edges[:, 0]]) if len(edges) else np.zeros(0, np.int64)
    wts = np.concatenate([edge_sim, edge_sim]).astype(np.float32) if len(edges) else np.zeros(0, np.float32)
    order = np.argsort(src, kind="stable")
    dst, wts = dst[order], wts[order]
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=indptr[1:])
    for row in priority.tolist():
        if survivor[row] != -2:
            continue
        survivor[row] = row
        lo, hi = indptr[row], indptr[row + 1]
        if lo == hi:
            continue
        nbrs, w = dst[lo:hi], wts[lo:hi]
        free = survivor[nbrs] == -2
        survivor[nbrs[free]] = row
        sim[nbrs[free]] = w[free]
    unvisited = np.flatnonzero(survivor == -2)  # rows missing from `priority` survive on their own
    survivor[unvisited] = unvisited
    return survivor, sim


def exact_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard of two sorted unique shingle-hash arrays."""
    if len(a) == 0 and len(b) == 0:
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


def shingle_sets(texts: Sequence[str], params: MinHashParams) -> list[np.ndarray]:
    """Sorted unique shingle hashes of each text (the sets MinHash estimates the Jaccard of)."""
    flat, offsets = shingle_hashes(texts, params.ngram, params.seed)
    return [np.unique(flat[offsets[i]:offsets[i + 1]]) for i in range(len(texts))]
