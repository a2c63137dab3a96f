"""Near dedup decisions against earlier crawls follow the exact Jaccard where the estimate is unsure."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

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
    found = prior_matches("file", ids, sigs, counts, P, index, ["c1"],
                          Content(str(tmp_path / "c2"), lambda crawl: str(tmp_path / crawl)))
    # The estimate says the opposite for both; the exact Jaccard decides.
    assert set(found.match) == {0} and found.match[0][:2] == ("c1", "old") and found.match[0][2] >= P.threshold
    assert found.exact_checked == 2
    # Without texts to read, the estimate decides (the repository level works that way).
    by_estimate = prior_matches("file", ids, sigs, counts, P, index, ["c1"], None)
    assert set(by_estimate.match) == {1} and np.isclose(by_estimate.match[1][2], 0.7, atol=P.exact_margin)


def _edited_corpus() -> dict[str, str]:
    """Real modules of the standard library, each with copies edited by 5-40%: many pairs whose
    estimate falls within the margin of the threshold, chained through the copies."""
    import re
    import sysconfig

    rng = random.Random(3)
    out = {}
    for p in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:60]:
        words = re.findall(r"\S+|\s+", p.read_text(errors="replace"))
        if len(words) < 400:
            continue
        out[p.stem] = "".join(words)
        for k, rate in enumerate((0.05, 0.12, 0.2, 0.3, 0.4)):
            edited = [f"e{k}_{i}" if not w.isspace() and rng.random() < rate else w for i, w in enumerate(words)]
            out[f"{p.stem}~{k}"] = "".join(edited)
    return out


def _reference(ids, texts, sigs, counts, params, priority) -> np.ndarray:
    """The clustering with *every* pair within the margin checked exactly, no optimism, no rounds."""
    pairs = minhash.candidate_pairs(minhash.band_keys(sigs, params), counts > 0, params.max_bucket_pairs)
    value = minhash.pair_similarity(sigs, pairs)
    sets = minhash.shingle_sets(texts, params)
    for k, (a, b) in enumerate(pairs.tolist()):
        if abs(value[k] - params.threshold) < params.exact_margin:
            value[k] = minhash.exact_jaccard(sets[a], sets[b])
    ok = value >= params.threshold
    return minhash.star_clusters(len(ids), priority, pairs[ok], value[ok])[0]


@pytest.mark.parametrize("cache", [16_000_000, 1])
def test_the_optimistic_clustering_equals_checking_every_unsure_pair(tmp_path: Path, cache: int) -> None:
    import pyarrow as pa

    from seedcoder_assets.core.dedup.exact import connect
    from seedcoder_assets.core.dedup.near import _priority, near_clusters
    from seedcoder_assets.core.dedup.survivor import SurvivorRule

    params = P.model_copy(update={"exact_cache_shingles": cache, "small_set_max": 0})  # force text reads
    corpus = _edited_corpus()
    ids = sorted(corpus)
    texts = [corpus[i] for i in ids]
    _write(str(tmp_path / "files"), corpus)
    sigs, counts = minhash.signatures(texts, params)
    meta = pa.table({"id": ids, "repo": ids, "path": ids, "stars": [None] * len(ids), "pushed_at": [None] * len(ids)},
                    schema=pa.schema([("id", pa.string()), ("repo", pa.string()), ("path", pa.string()),
                                      ("stars", pa.int64()), ("pushed_at", pa.string())]))
    conn = connect()
    table, figures = near_clusters("file", ids, sigs, counts, meta, params, SurvivorRule.lexical,
                                   DedupIndex(str(tmp_path / "index")), [], conn, Content(str(tmp_path / "files")))
    assert figures["exact_checked_pairs"] > 20 and figures["clustering_rounds"] >= 2  # the case is not trivial
    survivor = {r["id"]: r["survivor"] for r in table.to_pylist()}
    ref = _reference(ids, texts, sigs, counts, params, _priority(meta, ids, SurvivorRule.lexical, conn))
    expected = {ids[r]: ids[s] for r, s in enumerate(ref.tolist()) if s != r}
    assert {i: s for i, s in survivor.items() if i != s} == expected
