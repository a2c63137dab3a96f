"""Property tests of shingling and signatures on random batches of tiny, empty and huge texts.

The reference tokenizes each text on its own and mixes n-grams with Python integers, so batch
boundaries, offsets and the vectorised mixing are checked against a definition, not themselves.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seedcoder_assets.core.dedup import minhash
from seedcoder_assets.core.dedup.minhash import MinHashParams

MASK = (1 << 64) - 1
P = int(minhash._P)

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
        w = pl.Series([t]).str.extract_all(r"\w+").explode(empty_as_null=True).drop_nulls()
        h = [int(x) for x in w.hash(seed=seed).to_list()]
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
