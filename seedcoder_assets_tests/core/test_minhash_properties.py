"""Property tests of shingling and signatures on random batches of tiny, empty and huge texts.

The reference tokenizes each text on its own with a regular expression and hashes and mixes with
Python integers, so batch boundaries, offsets and the vectorised arithmetic are checked against
the written definition, not against themselves.
"""

from __future__ import annotations

import re

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seedcoder_assets.core.dedup import minhash
from seedcoder_assets.core.dedup.minhash import MinHashParams

MASK = (1 << 64) - 1
P = int(minhash._P)
Q = minhash._Q
WORD = re.compile(r"[0-9A-Za-z_\u0080-\U0010FFFF]+")


def fmix64(h: int) -> int:
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & MASK
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & MASK
    return h ^ (h >> 33)


def word_hash(word: str, seed: int) -> int:
    h = sum((b + 1) * pow(Q, k, 1 << 64) for k, b in enumerate(word.encode())) & MASK
    return fmix64((h + seed * 0x9E3779B97F4A7C15 + 1) & MASK)

words = st.sampled_from(["a", "b", "foo", "x1", "_", "ß", "naïve", "日本", "42", "def", "self"])
seps = st.sampled_from([" ", "\n", "  ", "\t", ", ", "(", ") ", "::", "\u00a0"])


@st.composite
def texts(draw) -> str:
    n = draw(st.integers(0, 14))
    parts = [draw(words) + draw(seps) for _ in range(n)]
    return draw(st.sampled_from(["", " ", "\n"])) + "".join(parts)


def reference(texts_: list[str], ngram: int, seed: int) -> list[list[int]]:
    out = []
    for t in texts_:
        h = [word_hash(w, seed) for w in WORD.findall(t)]
        if len(h) < ngram:
            out.append(h)
            continue
        grams = []
        for i in range(len(h) - ngram + 1):
            g = h[i]
            for k in range(1, ngram):
                g = (g * P + h[i + k]) & MASK
            grams.append(g)
        out.append(grams)
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(texts(), min_size=0, max_size=8), st.integers(1, 6), st.integers(0, 2**31))
def test_shingles_match_the_reference_on_any_batch(batch: list[str], ngram: int, seed: int) -> None:
    flat, offsets = minhash.shingle_hashes(batch, ngram, seed)
    assert offsets.dtype == np.uint64 and len(offsets) == len(batch) + 1 and offsets[-1] == len(flat)
    got = [flat[offsets[i]:offsets[i + 1]].tolist() for i in range(len(batch))]
    assert got == reference(batch, ngram, seed)


@settings(max_examples=60, deadline=None)
@given(st.lists(texts(), min_size=1, max_size=6))
def test_signatures_do_not_depend_on_the_batch(batch: list[str]) -> None:
    p = MinHashParams()
    together, counts = minhash.signatures(batch, p)
    alone = [minhash.signatures([t], p) for t in batch]
    assert together.shape == (len(batch), p.num_perm) and together.dtype == np.uint32
    for r, (sig, cnt) in enumerate(alone):
        assert counts[r] == cnt[0]
        assert np.array_equal(together[r], sig[0])


def test_the_reported_crash_and_its_neighbours() -> None:
    for batch in (["a b"], ["a b c d"], ["", "a", "", "b c"], ["a b", "c d e f g h"], [""], []):
        flat, offsets = minhash.shingle_hashes(batch, 5, 42)
        assert [flat[offsets[i]:offsets[i + 1]].tolist() for i in range(len(batch))] == reference(batch, 5, 42)


def test_ascii_words_are_regex_words() -> None:
    text = "def f(x_1, y):\n    return x_1+y  # sum; 3.14 -> pi\n"
    h, counts = minhash.word_hashes([text], 7)
    assert counts.tolist() == [len(re.findall(r"\w+", text))]
    assert h.tolist() == [word_hash(w, 7) for w in re.findall(r"\w+", text)]


def test_huge_and_degenerate_texts() -> None:
    rng = np.random.default_rng(0)
    vocab = np.array([f"w{i}" for i in range(5000)])
    huge = " ".join(vocab[rng.integers(0, len(vocab), 200_000)])
    batch = [huge, "", "x", "(" * 100_000, huge + " tail", "a b c d"]
    sigs, counts = minhash.signatures(batch, MinHashParams())
    assert counts.tolist() == [199_996, 0, 1, 0, 199_997, 4]
    est = minhash.similarity(sigs[0], sigs[4])
    assert est > 0.97
    ref = reference(batch[-1:], 5, MinHashParams().seed)
    flat, offsets = minhash.shingle_hashes(batch, 5, MinHashParams().seed)
    assert flat[offsets[-2]:].tolist() == ref[0]
