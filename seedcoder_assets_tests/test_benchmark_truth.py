"""The near-dedup benchmark's truth (benchmarks/near_dedup_truth.py) finds every pair a brute force finds."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import near_dedup_truth as truth  # noqa: E402


@pytest.mark.parametrize("seed", range(6))
def test_the_similarity_join_equals_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    base = [rng.choice(400, size=rng.integers(1, 60), replace=False) for _ in range(40)]
    sets = []
    for b in base:  # each set with a few edited copies: pairs on both sides of the threshold
        sets.append(np.unique(b))
        for _ in range(3):
            keep = b[rng.random(len(b)) > rng.uniform(0, 0.5)]
            sets.append(np.unique(np.concatenate([keep, rng.choice(400, size=rng.integers(0, 8))])))
    offsets = np.zeros(len(sets) + 1, np.int64)
    np.cumsum([len(s) for s in sets], out=offsets[1:])
    pairs, sims = truth.similarity_join(np.concatenate(sets).astype(np.int64), offsets)
    brute = {}
    for a in range(len(sets)):
        for b in range(a + 1, len(sets)):
            x, y = sets[a], sets[b]
            if len(x) and len(y):
                j = len(np.intersect1d(x, y)) / len(np.union1d(x, y))
                if j >= truth.THRESHOLD:
                    brute[(a, b)] = j
    assert {tuple(p) for p in pairs.tolist()} == set(brute) and len(brute) > 10
    assert np.allclose(sims, [brute[tuple(p)] for p in pairs.tolist()])
