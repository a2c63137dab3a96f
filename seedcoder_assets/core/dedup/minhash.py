"""MinHash near-duplicate detection: shingles, signatures, LSH candidates, verified star clusters.

Shingling is vectorised over the Arrow buffer of a batch (numpy: word boundaries by a byte table,
word hashes by prefix sums, n-gram combine) and the MinHash itself runs in rensa over a flat u64
buffer, so no Python loop and no Python string touches a token. Candidate
pairs from LSH are verified on the full signature (estimated Jaccard), and clusters are
stars around a survivor: a file is dropped only if it is itself similar to the survivor
that replaces it, so A~B~C chains never merge A with C.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import rensa
from pydantic import BaseModel, model_validator

SCHEME_VERSION = "minhash-v2"  # bump when shingling or hashing changes: signatures are not comparable
_P = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit multiplier (golden ratio) for n-gram and band mixing
_Q = 0x100000001B3  # odd multiplier of the per-byte polynomial word hash (the FNV prime)
_Q_INV = pow(_Q, -1, 1 << 64)  # odd numbers are invertible modulo 2^64

# A word is a maximal run of ASCII letters, digits and underscores and of non-ASCII characters (every
# byte of a multi-byte UTF-8 character is >= 0x80). For code this is `\w+` up to non-ASCII
# punctuation, and it is decided per byte, without decoding.
WORD_BYTES = np.zeros(256, bool)
WORD_BYTES[[*b"0123456789_", *range(ord("A"), ord("Z") + 1), *range(ord("a"), ord("z") + 1), *range(0x80, 256)]] = True


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
    exact_block_files: int = 4_096  # files whose pairs are checked together (bounds the exact check's memory)
    exact_cache_shingles: int = 16_000_000  # shingle sets kept between rounds of the exact check (~128 MB)
    small_set_max: int = 256  # files with at most this many distinct shingles keep their whole set with the signature

    @model_validator(mode="after")
    def _bands_fit(self) -> MinHashParams:
        if self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands*rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")
        return self


_FMIX1, _FMIX2 = np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53)


@numba.njit(cache=True, nogil=True)
def _fmix64(h):
    """MurmurHash3's 64-bit finaliser: every input bit reaches every output bit."""
    h ^= h >> np.uint64(33)
    h *= _FMIX1
    h ^= h >> np.uint64(33)
    h *= _FMIX2
    h ^= h >> np.uint64(33)
    return h


@numba.njit(cache=True, nogil=True)
def _shingle_kernel(data, offsets, ngram, salt, word_bytes, emit_words):  # pragma: no cover - compiled
    """One pass over the batch's bytes: words, their hashes and their n-gram hashes (or the words
    themselves, for `emit_words`). Returns (hashes, each document's end offset into them)."""
    n_docs = len(offsets) - 1
    out = np.empty(len(data) // 2 + n_docs + 1, np.uint64)  # a word takes >= 1 byte plus a separator
    ends = np.zeros(n_docs, np.int64)
    ring = np.zeros(max(ngram, 1), np.uint64)
    q, p, one = np.uint64(_Q), np.uint64(_P), np.uint64(1)
    w = 0
    for d in range(n_docs):
        seen = 0
        h = np.uint64(0)
        qk = one
        in_word = False
        for i in range(offsets[d], offsets[d + 1] + 1):
            if i < offsets[d + 1] and word_bytes[data[i]]:
                h += (np.uint64(data[i]) + one) * qk
                qk *= q
                in_word = True
                continue
            if not in_word:
                continue
            wh = _fmix64(h + salt)
            h, qk, in_word = np.uint64(0), one, False
            if emit_words:
                out[w] = wh
                w += 1
                seen += 1
                continue
            ring[seen % ngram] = wh
            seen += 1
            if seen >= ngram:
                g = ring[seen % ngram]  # the oldest of the last `ngram` words
                for k in range(1, ngram):
                    g = g * p + ring[(seen + k) % ngram]
                out[w] = g
                w += 1
        if not emit_words and 0 < seen < ngram:  # a short document keeps its words as shingles
            for k in range(seen):
                out[w] = ring[k]
                w += 1
        ends[d] = w
    return out[:w].copy(), ends


def _batch_buffers(texts: pa.Array | Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 bytes of a batch and each text's offsets into them, without copying Arrow data."""
    arr = texts if isinstance(texts, (pa.Array, pa.ChunkedArray)) else pa.array(list(texts), pa.large_string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = pc.fill_null(arr.cast(pa.large_string()), "")
    offsets = np.frombuffer(arr.buffers()[1], np.int64)[arr.offset: arr.offset + len(arr) + 1]
    lo, hi = (int(offsets[0]), int(offsets[-1])) if len(arr) else (0, 0)
    data = np.frombuffer(arr.buffers()[2], np.uint8)[lo:hi] if hi > lo else np.zeros(0, np.uint8)
    return data, offsets - lo


def _salt(seed: int) -> np.uint64:
    return np.uint64((seed * 0x9E3779B97F4A7C15 + 1) & 0xFFFFFFFFFFFFFFFF)


def word_hashes(texts: pa.Array | Sequence[str], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of the words of each text, in order, and each text's word count.

    A word's hash is fmix64(sum((byte + 1) * Q^k) + salt(seed)) over its UTF-8 bytes.

    Returns:
        (hashes uint64 [words in the batch], word counts int64 [len(texts)]).
    """
    data, offsets = _batch_buffers(texts)
    h, ends = _shingle_kernel(data, offsets, 1, _salt(seed), WORD_BYTES, True)
    return h, np.diff(np.r_[0, ends])


def shingle_hashes(texts: pa.Array | Sequence[str], ngram: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Word n-gram hashes of each text as one flat buffer plus row offsets.

    An n-gram's hash mixes its words' hashes: g = h[i]; g = g * P + h[i + k] for k < n (mod 2^64).
    Texts with fewer than `ngram` words use their word hashes as shingles; texts without
    words get no shingles (exact dedup still covers them).

    Returns:
        (hashes uint64 [total], offsets uint64 [len(texts) + 1]).
    """
    data, offsets = _batch_buffers(texts)
    h, ends = _shingle_kernel(data, offsets, ngram, _salt(seed), WORD_BYTES, False)
    return h, np.r_[np.uint64(0), ends.astype(np.uint64)]


def signatures(texts: pa.Array | Sequence[str], params: MinHashParams) -> tuple[np.ndarray, np.ndarray]:
    """MinHash signatures (uint32 [n, num_perm]) and shingle counts (int32 [n]) of texts."""
    flat, offsets = shingle_hashes(texts, params.ngram, params.seed)
    counts = np.diff(offsets).astype(np.int32)
    if len(texts) == 0:
        return np.zeros((0, params.num_perm), np.uint32), counts
    matrix = rensa.RMinHash.digest_matrix_from_flat_token_hashes(flat, offsets, params.num_perm, params.seed)
    return np.asarray(matrix.to_rows(), dtype=np.uint32).reshape(len(texts), params.num_perm), counts


@numba.njit(cache=True, nogil=True)
def _small_sets_kernel(flat, offsets, max_size):  # pragma: no cover - compiled
    n = len(offsets) - 1
    out = np.empty(len(flat), np.uint64)
    ends = np.zeros(n, np.int64)
    present = np.zeros(n, np.bool_)
    w = 0
    for d in range(n):
        lo, hi = offsets[d], offsets[d + 1]
        start = w
        if 0 < hi - lo <= 4 * max_size:
            s = np.sort(flat[lo:hi])
            for i in range(len(s)):
                if i == 0 or s[i] != s[i - 1]:
                    out[w] = s[i]
                    w += 1
            if w - start <= max_size:
                present[d] = True
            else:
                w = start
        ends[d] = w
    return out[:w].copy(), ends, present


def signatures_with_sets(texts: pa.Array | Sequence[str], params: MinHashParams
                         ) -> tuple[np.ndarray, np.ndarray, pa.Array]:
    """`signatures`, plus the whole sorted shingle set of every file with at most `small_set_max`
    distinct shingles (None for larger files): small files, whose Jaccard with a near copy moves most
    with a small edit, then get their exact Jaccard without their text being read again."""
    flat, offsets = shingle_hashes(texts, params.ngram, params.seed)
    counts = np.diff(offsets).astype(np.int32)
    if len(texts) == 0:
        return np.zeros((0, params.num_perm), np.uint32), counts, pa.array([], pa.binary())
    matrix = rensa.RMinHash.digest_matrix_from_flat_token_hashes(flat, offsets, params.num_perm, params.seed)
    sigs = np.asarray(matrix.to_rows(), dtype=np.uint32).reshape(len(texts), params.num_perm)
    values, ends, present = _small_sets_kernel(flat, offsets.astype(np.int64), params.small_set_max)
    byte_offsets = (np.r_[0, ends] * 8).astype(np.int32)  # one binary value per file, straight from the buffer
    sets = pa.Array.from_buffers(pa.binary(), len(texts), [pa.py_buffer(np.packbits(present, bitorder="little")),
                                                          pa.py_buffer(byte_offsets), pa.py_buffer(values)])
    return sigs, counts, sets


def band_keys(sigs: np.ndarray, params: MinHashParams) -> np.ndarray:
    """int64 [n, bands]: one key per band, mixing that band's `rows` signature values and the band's
    number, so keys of different bands never meet in one sorted key column."""
    n = sigs.shape[0]
    keys = np.zeros((n, params.bands), np.uint64)
    with np.errstate(over="ignore"):
        for r in range(params.rows):
            cols = sigs[:, r : params.bands * params.rows : params.rows].astype(np.uint64)
            keys = keys * _P + cols + np.uint64(r + 1)
        keys = keys * _P + np.arange(1, params.bands + 1, dtype=np.uint64)
        keys ^= keys >> np.uint64(31)
    return keys.view(np.int64)


def signature_matrix(column: pa.ChunkedArray | pa.Array, num_perm: int) -> np.ndarray:
    """uint32 [n, num_perm] of a binary column of signatures, straight from its Arrow buffer (every
    signature has num_perm values), without a Python object per row."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not len(arr):
        return np.zeros((0, num_perm), np.uint32)
    offsets = np.frombuffer(arr.buffers()[1], np.int32)[arr.offset: arr.offset + len(arr) + 1]
    return np.frombuffer(arr.buffers()[2], np.uint8)[offsets[0]: offsets[-1]].view(np.uint32).reshape(-1, num_perm)


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


@numba.njit(cache=True, nogil=True)
def _bucket_pairs_kernel(rows, starts, sizes, max_bucket_pairs):  # pragma: no cover - compiled
    reach = np.empty(len(sizes), np.int64)
    total = 0
    for g in range(len(sizes)):  # how far each member of the bucket reaches back, and the pair count
        s = sizes[g]
        reach[g] = s - 1 if s * (s - 1) // 2 <= max_bucket_pairs else max(1, max_bucket_pairs // s)
        r = reach[g]
        total += r * (r + 1) // 2 + (s - 1 - r) * r if r < s - 1 else s * (s - 1) // 2
        if r < s - 1:
            total += s - 1 - r  # links to the bucket's first member
    out = np.empty((total, 2), np.int64)
    w = 0
    for g in range(len(sizes)):
        s, r, o = sizes[g], reach[g], starts[g]
        for j in range(1, s):
            for i in range(max(0, j - r), j):
                a, b = rows[o + i], rows[o + j]
                out[w, 0], out[w, 1] = min(a, b), max(a, b)
                w += 1
            if r < s - 1 and j > r:
                a, b = rows[o], rows[o + j]
                out[w, 0], out[w, 1] = min(a, b), max(a, b)
                w += 1
    return out[:w]


def doc_keys(ids: pa.Array | Sequence[str]) -> np.ndarray:
    """int64 per record id (8 bytes of BLAKE2b): the order of a large bucket's members, the same whichever
    shard or process holds them (row numbers are not)."""
    values = ids.to_pylist() if isinstance(ids, (pa.Array, pa.ChunkedArray)) else ids
    return np.frombuffer(b"".join(hashlib.blake2b(i.encode("utf-8", "surrogatepass"), digest_size=8).digest()
                                  for i in values), np.int64).copy() if len(values) else np.zeros(0, np.int64)


def bucket_pairs(key: np.ndarray, owner: np.ndarray, order_key: np.ndarray, max_bucket_pairs: int) -> np.ndarray:
    """Pairs (min, max) of `owner` values sharing a `key`, members of a bucket in `order_key` order.

    A bucket whose members fit in `max_bucket_pairs` pairs gives all of them; a larger one (thousands of
    near-identical tiny files) links each member to its bucket's first member and to the
    `max_bucket_pairs // size` members before it, so the pair count stays linear in the bucket's size.
    Pairs are not unique (two bands may give the same pair).
    """
    order = np.lexsort((order_key, key))
    k, r = key[order], owner[order]
    del order
    if not len(k):
        return np.zeros((0, 2), np.int64)
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    sizes = np.diff(np.r_[starts, len(k)])
    multi = sizes > 1
    pairs = _bucket_pairs_kernel(r, starts[multi], sizes[multi], max_bucket_pairs)
    return pairs[pairs[:, 0] != pairs[:, 1]]


def candidate_pairs(keys: np.ndarray, valid: np.ndarray, max_bucket_pairs: int,
                    order_key: np.ndarray | None = None) -> np.ndarray:
    """Unique pairs (i < j) of rows sharing a key in any band, as int64 [m, 2] (see `bucket_pairs`).

    All bands are sorted together (their keys never collide). `order_key` (one int64 per row, e.g.
    `doc_keys(ids)`) orders a bucket's members; the row number when None.
    """
    rows = np.flatnonzero(valid)
    if len(rows) < 2:
        return np.zeros((0, 2), np.int64)
    owner = np.repeat(rows, keys.shape[1])
    tie = owner if order_key is None else order_key[owner]
    pairs = bucket_pairs(keys[rows].reshape(-1), owner, tie, max_bucket_pairs)
    code = sorted_unique(pairs[:, 0] * np.int64(keys.shape[0]) + pairs[:, 1])
    return np.stack([code // keys.shape[0], code % keys.shape[0]], axis=1)


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """np.unique by sorting (numpy 2's hash-based unique is several times slower on millions of int64)."""
    values = np.sort(values)
    return values[np.r_[True, values[1:] != values[:-1]]] if len(values) else values


def star_clusters(n: int, priority: np.ndarray, edges: np.ndarray, edge_sim: np.ndarray,
                  pre_dropped: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy star clustering over verified edges.

    Rows are visited in `priority` order (best first). An unassigned row becomes a survivor and
    absorbs its unassigned neighbours; absorbed rows never absorb others.

    Args:
        n: number of rows.
        priority: row indices, best survivor first.
        edges: int64 [m, 2] near-duplicate pairs.
        edge_sim: float [m] their similarity.
        pre_dropped: bool [n], rows already dropped as duplicates of an earlier crawl.

    Returns:
        (survivor row per row, -1 for pre-dropped rows; similarity to it; the edge that absorbed
         each row, -1 for survivors and pre-dropped rows).
    """
    survivor = np.full(n, -2, np.int64)
    sim = np.ones(n, np.float32)
    via = np.full(n, -1, np.int64)
    if pre_dropped is not None:
        survivor[pre_dropped] = -1
    # Adjacency as CSR arrays (both directions): memory is a few bytes per edge end, not a Python tuple.
    m = len(edges)
    src = np.concatenate([edges[:, 0], edges[:, 1]]) if m else np.zeros(0, np.int64)
    dst = np.concatenate([edges[:, 1], edges[:, 0]]) if m else np.zeros(0, np.int64)
    eid = np.concatenate([np.arange(m), np.arange(m)]) if m else np.zeros(0, np.int64)
    order = np.argsort(src, kind="stable")
    dst, eid = dst[order], eid[order]
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=indptr[1:])
    has_edges = np.diff(indptr) > 0
    for row in priority[has_edges[priority]].tolist():
        if survivor[row] != -2:
            continue
        survivor[row] = row
        lo, hi = indptr[row], indptr[row + 1]
        nbrs, e = dst[lo:hi], eid[lo:hi]
        free = survivor[nbrs] == -2
        survivor[nbrs[free]] = row
        sim[nbrs[free]] = edge_sim[e[free]]
        via[nbrs[free]] = e[free]
    alone = np.flatnonzero(survivor == -2)  # rows without edges (or missing from `priority`) survive
    survivor[alone] = alone
    return survivor, sim, via


@numba.njit(cache=True, nogil=True)
def _union_find(n, a, b):  # pragma: no cover - compiled
    parent = np.arange(n)
    for k in range(len(a)):
        x, y = a[k], b[k]
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        while parent[y] != y:
            parent[y] = parent[parent[y]]
            y = parent[y]
        if x != y:
            parent[max(x, y)] = min(x, y)
    for k in range(n):  # parent[k] <= k, so in ascending order parent[parent[k]] is already a root
        parent[k] = parent[parent[k]]
    return parent


def components(n: int, edges: np.ndarray) -> np.ndarray:
    """Connected-component label (its smallest row) of each of `n` rows under `edges` [m, 2]."""
    return _union_find(n, edges[:, 0].astype(np.int64), edges[:, 1].astype(np.int64))


@numba.njit(cache=True, nogil=True)
def _intersection_size(a, b):  # pragma: no cover - compiled
    i = j = n = 0
    while i < len(a) and j < len(b):
        if a[i] == b[j]:
            n += 1
            i += 1
            j += 1
        elif a[i] < b[j]:
            i += 1
        else:
            j += 1
    return n


def exact_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard of two sorted unique shingle-hash arrays."""
    if len(a) == 0 and len(b) == 0:
        return 1.0
    inter = _intersection_size(a, b)
    return inter / (len(a) + len(b) - inter)


@numba.njit(cache=True, nogil=True)
def _unique_per_doc(flat, offsets):  # pragma: no cover - compiled
    out = np.empty(len(flat), np.uint64)
    ends = np.zeros(len(offsets) - 1, np.int64)
    w = 0
    for d in range(len(offsets) - 1):
        s = np.sort(flat[offsets[d]:offsets[d + 1]])
        for i in range(len(s)):
            if i == 0 or s[i] != s[i - 1]:
                out[w] = s[i]
                w += 1
        ends[d] = w
    return out[:w], ends


def shingle_sets(texts: pa.Array | Sequence[str], params: MinHashParams) -> list[np.ndarray]:
    """Sorted unique shingle hashes of each text (the sets MinHash estimates the Jaccard of)."""
    flat, offsets = shingle_hashes(texts, params.ngram, params.seed)
    values, ends = _unique_per_doc(flat, offsets.astype(np.int64))
    starts = np.r_[0, ends[:-1]]
    return [values[a:b].copy() for a, b in zip(starts.tolist(), ends.tolist())]


def warm_up() -> None:
    """Compile (or load from numba's cache) every kernel of this module once, on tiny inputs."""
    params = MinHashParams()
    sigs, counts, _ = signatures_with_sets(["def f(x):\n    return x + 1\n", "a b"], params)
    candidate_pairs(band_keys(sigs, params), counts > 0, params.max_bucket_pairs)
    sets = shingle_sets(["a b c d e f", "a b c d e g"], params)
    exact_jaccard(sets[0], sets[1])
    components(2, np.array([[0, 1]], np.int64))
