"""The near-duplicate truth of a partition, by a definition that shares no code with the pipeline.

    python benchmarks/near_dedup_truth.py PARTITION CACHE_DIR

Definition: a file's shingles are its word 5-grams, words being Python's `re.findall(r"\\w+")`,
each 5-gram a tuple of strings hashed by Python (a file of fewer than 5 words has one shingle, all its
words; a file without words has none). Two files are near duplicates when the exact Jaccard of their
shingle sets is >= 0.7.

All such pairs are found by an exact similarity join (prefix filtering, Chaudhuri et al. 2006; Bayardo
et al. 2007): shingles are ordered rarest first; two sets with Jaccard >= t must share one of the first
|x| - ceil(t|x|) + 1 shingles of each, so only files sharing a prefix shingle are compared, and every
candidate is verified exactly. No MinHash, no LSH, no sampling: the pair list is complete.

Writes CACHE_DIR/truth.npz: ids, the shingle sets (flat + offsets) and the true pairs with their Jaccard.
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

THRESHOLD = 0.7
NGRAM = 5
_WORDS = re.compile(r"\w+")


def shingles(text: str) -> np.ndarray:
    w = _WORDS.findall(text)
    if not w:
        return np.zeros(0, np.int64)
    if len(w) < NGRAM:
        return np.array([hash(tuple(w))], np.int64)
    return np.unique(np.fromiter((hash(tuple(w[i:i + NGRAM])) for i in range(len(w) - NGRAM + 1)), np.int64))


def read_sets(partition: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(ids, flat int64 shingles, offsets) of every file of a partition folder of Parquet parts."""
    ids, pieces, lens = [], [], []
    for part in sorted(Path(partition).glob("*.parquet")):
        pf = pq.ParquetFile(part)
        for batch in pf.iter_batches(batch_size=2048, columns=["id", "content"]):
            for id_, text in zip(batch.column("id").to_pylist(), batch.column("content").to_pylist()):
                s = shingles(text or "")
                ids.append(id_)
                pieces.append(s)
                lens.append(len(s))
    offsets = np.zeros(len(ids) + 1, np.int64)
    np.cumsum(lens, out=offsets[1:])
    return ids, np.concatenate(pieces) if pieces else np.zeros(0, np.int64), offsets


def similarity_join(flat: np.ndarray, offsets: np.ndarray, t: float = THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """Every pair (i < j) of sets with Jaccard >= t, and its Jaccard."""
    n = len(offsets) - 1
    lens = np.diff(offsets)
    doc = np.repeat(np.arange(n), lens)
    uniq, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    rank = np.empty(len(uniq), np.int64)
    rank[np.lexsort((uniq, counts))] = np.arange(len(uniq))  # rarest first, ties by value
    token_rank = rank[inverse]
    del inverse, uniq
    order = np.lexsort((token_rank, doc))
    token_rank, doc_sorted = token_rank[order], doc[order]
    del order
    pos = np.arange(len(doc_sorted)) - offsets[doc_sorted]
    prefix_len = lens - np.ceil(t * lens - 1e-9).astype(np.int64) + 1
    in_prefix = pos < prefix_len[doc_sorted]
    ptoken, pdoc = token_rank[in_prefix], doc_sorted[in_prefix]
    del pos, in_prefix
    o = np.lexsort((pdoc, ptoken))
    ptoken, pdoc = ptoken[o], pdoc[o]
    starts = np.flatnonzero(np.r_[True, ptoken[1:] != ptoken[:-1]])
    sizes = np.diff(np.r_[starts, len(ptoken)])
    cand = []
    for s, size in zip(starts[sizes > 1].tolist(), sizes[sizes > 1].tolist()):
        members = pdoc[s:s + size]
        i, j = np.triu_indices(size, 1)
        cand.append(np.stack([members[i], members[j]], axis=1))
    if not cand:
        return np.zeros((0, 2), np.int64), np.zeros(0)
    pairs = np.unique(np.sort(np.concatenate(cand), axis=1), axis=0)
    la, lb = lens[pairs[:, 0]], lens[pairs[:, 1]]
    pairs = pairs[np.minimum(la, lb) >= t * np.maximum(la, lb)]  # length filter
    ranks_by_doc = np.split(token_rank, offsets[1:-1]) if n > 1 else [token_rank]
    sims = np.empty(len(pairs))
    for k, (a, b) in enumerate(pairs.tolist()):
        x, y = ranks_by_doc[a], ranks_by_doc[b]
        inter = len(np.intersect1d(x, y, assume_unique=True))
        sims[k] = inter / (len(x) + len(y) - inter)
    keep = sims >= t
    return pairs[keep], sims[keep]


def build(partition: str, cache: Path) -> Path:
    out = cache / "truth.npz"
    if out.exists():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ids, flat, offsets = read_sets(partition)
    t1 = time.perf_counter()
    pairs, sims = similarity_join(flat, offsets)
    t2 = time.perf_counter()
    np.savez(out, ids=np.array(ids), flat=flat, offsets=offsets, pairs=pairs, sims=sims)
    print(f"truth: {len(ids)} files, {len(flat)} shingles ({t1 - t0:.0f} s), {len(pairs)} pairs with Jaccard >= "
          f"{THRESHOLD} ({t2 - t1:.0f} s)", file=sys.stderr)
    return out


def load(path: Path) -> dict:
    z = np.load(path)
    return {k: z[k] for k in z.files}


def jaccard_of(truth: dict, index: dict[str, int], a: str, b: str) -> float:
    """Exact Jaccard of two files by the truth's definition."""
    off, flat = truth["offsets"], truth["flat"]
    x, y = flat[off[index[a]]:off[index[a] + 1]], flat[off[index[b]]:off[index[b] + 1]]
    if not len(x) and not len(y):
        return 1.0
    inter = len(np.intersect1d(x, y, assume_unique=True))
    return inter / (len(x) + len(y) - inter)


if __name__ == "__main__":
    if os.environ.get("PYTHONHASHSEED") != "0":  # tuple hashes must be the same in every process
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, *sys.argv])
    print(build(sys.argv[1], Path(sys.argv[2])))
