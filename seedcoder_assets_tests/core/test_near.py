"""Near dedup decisions against earlier crawls follow the exact Jaccard where the estimate is unsure."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from seedcoder_assets.core.dedup import minhash
from seedcoder_assets.core.dedup.index import DedupIndex
from seedcoder_assets.core.dedup.near import Content, prior_matches
from seedcoder_assets.core.parquet_io import PartWriter
from seedcoder_assets.core.schemas import FILE_SCHEMA

P = minhash.MinHashParams()


def _write(uri: str, rows: dict[str, str]) -> None:
    with PartWriter(uri, FILE_SCHEMA) as out:
        out.write_rows([{"id": i, "crawl": "c", "repo": "r", "path": f"{i}.py", "language": "Python", "size": len(t),
                         "sha256": i, "content": t} for i, t in rows.items()])


def _variants() -> tuple[str, list[str]]:
    """A text and edited copies whose MinHash estimate and exact Jaccard fall on opposite sides of 0.7."""
    rng = random.Random(7)
    words = [f"w{rng.randrange(10**6)}" for _ in range(400)]
    base = " ".join(words)
    wanted: dict[bool, str] = {}
    for k in range(4000):
        edited = list(words)
        for pos in rng.sample(range(len(words)), rng.randrange(18, 30)):
            edited[pos] = f"x{k}_{pos}"
        text = " ".join(edited)
        sa, sb = minhash.shingle_sets([base, text], P)
        exact = minhash.exact_jaccard(sa, sb)
        sig, _ = minhash.signatures([base, text], P)
        est = float(minhash.similarity(sig[0], sig[1]))
        if (exact >= P.threshold) != (est >= P.threshold) and abs(est - P.threshold) < P.exact_margin:
            wanted.setdefault(exact >= P.threshold, text)
        if len(wanted) == 2:
            return base, [wanted[True], wanted[False]]
    raise AssertionError("no disagreeing variants found")


def test_matches_against_an_earlier_crawl_get_the_exact_check(tmp_path: Path) -> None:
    base, (similar, dissimilar) = _variants()
    index = DedupIndex(str(tmp_path / "index"))
    sig, _ = minhash.signatures([base], P)
    index.write_bands("file", "c1", ["old"], minhash.band_keys(sig, P), sig)
    _write(str(tmp_path / "c1"), {"old": base})
    _write(str(tmp_path / "c2"), {"new_similar": similar, "new_dissimilar": dissimilar})
    ids = ["new_similar", "new_dissimilar"]
    sigs, counts = minhash.signatures([similar, dissimilar], P)
    found = prior_matches("file", ids, sigs, minhash.band_keys(sigs, P), counts > 0, P, index, ["c1"],
                          Content(str(tmp_path / "c2"), lambda crawl: str(tmp_path / crawl)))
    # The estimate says the opposite for both; the exact Jaccard decides.
    assert set(found.match) == {0} and found.match[0][:2] == ("c1", "old") and found.match[0][2] >= P.threshold
    assert found.exact_checked == 2
    # Without texts to read, the estimate decides (the repository level works that way).
    by_estimate = prior_matches("file", ids, sigs, minhash.band_keys(sigs, P), counts > 0, P, index, ["c1"], None)
    assert set(by_estimate.match) == {1} and np.isclose(by_estimate.match[1][2], 0.7, atol=P.exact_margin)
