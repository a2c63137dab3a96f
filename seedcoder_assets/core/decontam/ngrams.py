"""Word n-grams for decontamination (paper section 4: a training document sharing a 10-gram of words with a
benchmark is removed).

Words, as documented for users: maximal runs of ASCII letters, digits and underscore, lowercased; every
other character (spaces, punctuation, operators, non-ASCII text) only separates words. So reformatting,
re-indenting or re-quoting a benchmark solution does not hide it, and `has_close_elements(numbers: List[float])`
is the words `has_close_elements numbers list float`.

An n-gram is hashed to 64 bits: each word by BLAKE2b (stable across processes and machines, unlike
Python's `hash`), then the n word hashes combined as a polynomial with an odd 64-bit multiplier (wrapping
arithmetic), which numpy computes over a whole batch of documents at once.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Final

import numpy as np
import polars as pl

WORD_PATTERN: Final = r"[A-Za-z0-9_]+"
WORD: Final = re.compile(WORD_PATTERN)
SCHEME: Final = "ascii-words-blake2b-poly-v1"  # a change here is a new index version
_MULTIPLIER: Final = np.uint64(0x9E3779B97F4A7C15)  # odd: the combination is a bijection in each word


def words(text: str) -> list[str]:
    """The words of a text, lowercased (the documented tokenization)."""
    return [w.lower() for w in WORD.findall(text)]


def word_hash(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")


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


def ngram_hashes(text: str, n: int) -> np.ndarray:
    """The hashes of a text's word n-grams, in order (one text; the index is built with this)."""
    hashes = np.fromiter((word_hash(w) for w in words(text)), np.uint64)
    return _combine(hashes, n)


def ngram_text(text: str, n: int) -> list[str]:
    """A text's word n-grams as strings of n space-separated words, in order."""
    ws = words(text)
    return [" ".join(ws[i:i + n]) for i in range(len(ws) - n + 1)]


class WordHasher:
    """Word hashes with a bounded cache: a corpus repeats the same identifiers endlessly."""

    def __init__(self, max_cached: int = 2_000_000) -> None:
        self._cache: dict[str, int] = {}
        self._max = max_cached

    def hashes(self, unique_words: Sequence[str]) -> np.ndarray:
        cache = self._cache
        if len(cache) > self._max:
            cache.clear()
        out = np.empty(len(unique_words), np.uint64)
        for i, w in enumerate(unique_words):
            h = cache.get(w)
            if h is None:
                h = cache[w] = word_hash(w)
            out[i] = h
        return out


def batch_ngram_hashes(texts: Sequence[str | None], n: int, hasher: WordHasher) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, doc): every word n-gram of every text of a batch, and the position of the text it is in.

    Polars splits and lowercases the words of the whole batch in Rust; each distinct word is hashed once;
    windows that would span two texts are dropped.
    """
    series = pl.Series("t", list(texts), dtype=pl.String).fill_null("")
    tokens = series.str.extract_all(WORD_PATTERN)
    lengths = tokens.list.len().fill_null(0).to_numpy().astype(np.int64)
    flat = tokens.explode(empty_as_null=True).drop_nulls().str.to_lowercase()
    if flat.len() == 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    codes = flat.rank("dense").to_numpy().astype(np.int64) - 1  # the same order as the sorted vocabulary
    word_hashes = hasher.hashes(flat.unique().sort().to_list())[codes]
    hashes = _combine(word_hashes, n)
    doc_of_word = np.repeat(np.arange(len(lengths)), lengths)
    doc = doc_of_word[: len(hashes)]
    inside = doc == doc_of_word[n - 1:]
    return hashes[inside], doc[inside]
