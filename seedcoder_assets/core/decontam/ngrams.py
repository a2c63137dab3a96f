"""Word n-grams for decontamination (paper section 4: a training document sharing a 10-gram of words with a
benchmark is removed).

Words, as documented for users: maximal runs of ASCII letters, digits and underscore, lowercased; every
other character (spaces, punctuation, operators, non-ASCII text) only separates words. So reformatting,
re-indenting or re-quoting a benchmark solution does not hide it, and `has_close_elements(numbers: List[float])`
is the words `has_close_elements numbers list float`.

Hashes are computed by numpy over the UTF-8 bytes of a whole batch at once (no Python per word): a word's
hash is the polynomial of its lowercased bytes in an odd 64-bit base (wrapping arithmetic, from prefix sums
of bytes times powers of the base's inverse), mixed; an n-gram's the polynomial of its n word hashes in
another odd base. Stable across processes and machines (no Python `hash`). Collisions are possible in
principle; the checks compare n-grams as strings, so a false drop would fail `drops_hold_their_ngram`.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

WORD_PATTERN: Final = r"[A-Za-z0-9_]+"
WORD: Final = re.compile(WORD_PATTERN)
SCHEME: Final = "ascii-words-poly64-v1"  # a change here is a new index version
_MULTIPLIER: Final = np.uint64(0x9E3779B97F4A7C15)  # n-grams of word hashes
_BASE: Final = np.uint64(0x100000001B3)  # bytes of a word (odd: invertible modulo 2**64)
_INVERSE: Final = np.uint64(pow(int(_BASE), -1, 2**64))
_MIX: Final = np.uint64(0xBF58476D1CE4E5B9)
_LOWER: Final = np.arange(256, dtype=np.uint8)
_LOWER[65:91] += 32
_IS_WORD: Final = np.zeros(256, bool)
_IS_WORD[np.frombuffer(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_", np.uint8)] = True


def words(text: str) -> list[str]:
    """The words of a text, lowercased (the documented tokenization)."""
    return [w.lower() for w in WORD.findall(text)]


def ngram_text(text: str, n: int) -> list[str]:
    """A text's word n-grams as strings of n space-separated words, in order."""
    ws = words(text)
    return [" ".join(ws[i:i + n]) for i in range(len(ws) - n + 1)]


class _Powers:
    """base**k and inverse**k for k = 1..n, grown on demand (a batch is at most a few MB)."""

    def __init__(self) -> None:
        self.base = self.inverse = np.zeros(0, np.uint64)

    def upto(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        if len(self.base) < n:
            m = max(n, 2 * len(self.base), 1 << 16)
            with np.errstate(over="ignore"):
                self.base = np.cumprod(np.full(m, _BASE, np.uint64))
                self.inverse = np.cumprod(np.full(m, _INVERSE, np.uint64))
        return self.base, self.inverse


_POWERS = _Powers()


def _combine(word_hashes: np.ndarray, n: int) -> np.ndarray:
    """Hash of every window of n consecutive words (len - n + 1 of them; none if shorter)."""
    m = len(word_hashes) - n + 1
    if m <= 0:
        return np.zeros(0, np.uint64)
    out = np.zeros(m, np.uint64)
    with np.errstate(over="ignore"):
        for i in range(n):
            out = out * _MULTIPLIER + word_hashes[i:i + m]
    return out


def utf8_batch(texts: Sequence[str | None] | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(bytes, start offset of each text) of a batch, from Arrow's buffers without a copy per text."""
    arr = texts if isinstance(texts, pa.Array | pa.ChunkedArray) else pa.array(list(texts), pa.large_string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = arr.cast(pa.large_string())
    offsets = np.frombuffer(arr.buffers()[1], np.int64)[arr.offset:arr.offset + len(arr) + 1]
    data = np.frombuffer(arr.buffers()[2], np.uint8) if arr.buffers()[2] is not None else np.zeros(0, np.uint8)
    return data[offsets[0]:offsets[-1]], offsets[:-1] - offsets[0]


MAX_PIECE_BYTES: Final = 2 << 20  # numpy holds ~40 bytes per byte of text: hash at most this much at once


def batch_ngram_hashes(texts: Sequence[str | None] | pa.Array, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, doc): every word n-gram of every text of a batch, and the position of the text it is in.
    Texts are hashed in pieces of at most MAX_PIECE_BYTES (a longer text alone), so memory follows that."""
    arr = texts if isinstance(texts, pa.Array | pa.ChunkedArray) else pa.array(list(texts), pa.large_string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    ends = np.cumsum(pc.binary_length(arr).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64))
    if len(arr) == 0 or ends[-1] <= MAX_PIECE_BYTES:
        return _piece_hashes(arr, n)
    out_h, out_d, start = [], [], 0
    while start < len(arr):
        base = ends[start - 1] if start else 0
        stop = max(start + 1, int(np.searchsorted(ends, base + MAX_PIECE_BYTES, side="right")))
        h, d = _piece_hashes(arr.slice(start, stop - start), n)
        out_h.append(h)
        out_d.append(d + start)
        start = stop
    return np.concatenate(out_h), np.concatenate(out_d)


def _piece_hashes(texts: pa.Array, n: int) -> tuple[np.ndarray, np.ndarray]:
    data, text_starts = utf8_batch(texts)
    if len(data) == 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    is_word = _IS_WORD[data]
    edges = np.diff(is_word.view(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    inner = np.unique(text_starts[(text_starts > 0) & (text_starts < len(data))])  # empty texts repeat a start
    cross = inner[is_word[inner] & is_word[inner - 1]]  # a word running across two texts is two words
    if len(cross):
        starts = np.insert(starts, np.searchsorted(starts, cross), cross)
        ends = np.insert(ends, np.searchsorted(ends, cross), cross)
    base, inverse = _POWERS.upto(len(data))
    with np.errstate(over="ignore"):
        prefix = np.cumsum(_LOWER[data].astype(np.uint64) * inverse[: len(data)])
        before = np.where(starts > 0, prefix[np.maximum(starts - 1, 0)], np.uint64(0))
        h = (prefix[ends - 1] - before) * base[ends - 1]  # sum of byte * base**(distance to the word's end)
        h = (h ^ (h >> np.uint64(31))) * _MIX
    doc_of_word = np.searchsorted(text_starts, starts, side="right") - 1
    hashes = _combine(h, n)
    doc = doc_of_word[: len(hashes)]
    inside = doc == doc_of_word[n - 1:]
    return hashes[inside], doc[inside]


def ngram_hashes(text: str, n: int) -> np.ndarray:
    """The hashes of a text's word n-grams, in order (one text; the index is built with this)."""
    return batch_ngram_hashes([text], n)[0]
