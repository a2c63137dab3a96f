import re
import tarfile
from pathlib import Path

import numpy as np
import pytest

from seedcoder_assets.core.dedup import minhash
from seedcoder_assets.core.dedup.index import DedupIndex
from seedcoder_assets.core.dedup.minhash import MinHashParams

P = MinHashParams()


def exact_jaccard(a: str, b: str, n: int = 5) -> float:
    def grams(t: str) -> set[tuple[str, ...]]:
        w = re.findall(r"\w+", t)
        return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)} if len(w) >= n else {tuple(w)}
    ga, gb = grams(a), grams(b)
    return len(ga & gb) / len(ga | gb)


def test_shingles_respect_document_boundaries() -> None:
    flat, offsets = minhash.shingle_hashes(["a b c d e f", "", "x y", "a b c d e"], 5, 1)
    assert np.diff(offsets).tolist() == [2, 0, 2, 1]
    flat2, _ = minhash.shingle_hashes(["a b c d e"], 5, 1)
    assert flat[offsets[3]] == flat2[0] == flat[0]  # same 5-gram, same hash, wherever it stands


def test_params_reject_too_many_bands() -> None:
    with pytest.raises(ValueError):
        MinHashParams(num_perm=64, bands=32, rows=4)


def test_estimate_tracks_exact_jaccard_on_real_files(small_crawl: Path) -> None:
    with tarfile.open(small_crawl / "requests-2.31.0.tar.gz") as a, tarfile.open(small_crawl / "requests-2.32.3.tar.gz") as b:
        old = {m.name.split("/", 1)[1]: a.extractfile(m).read().decode() for m in a if m.name.endswith(".py")}
        new = {m.name.split("/", 1)[1].replace("src/", ""): b.extractfile(m).read().decode()
               for m in b if m.name.endswith(".py")}
    common = sorted(set(old) & set(new))
    assert len(common) > 10
    sa, _ = minhash.signatures([old[p] for p in common], P)
    sb, _ = minhash.signatures([new[p] for p in common], P)
    est = minhash.similarity(sa, sb)
    exact = np.array([exact_jaccard(old[p], new[p]) for p in common])
    assert np.abs(est - exact).mean() < 0.05  # 128 permutations: std ~0.04 at J=0.7


def test_star_clusters_do_not_chain() -> None:
    # 0~1 and 1~2 but not 0~2: 2 must survive, since it is not similar to the survivor 0.
    edges = np.array([[0, 1], [1, 2]])
    survivor, _, via = minhash.star_clusters(3, np.array([0, 1, 2]), edges, np.array([0.8, 0.8], np.float32))
    assert survivor.tolist() == [0, 0, 2] and via.tolist() == [-1, 0, -1]


def test_candidate_pairs_cover_large_buckets() -> None:
    keys = np.zeros((300, 1), np.int64)
    pairs = minhash.candidate_pairs(keys, np.ones(300, bool), P.max_bucket_pairs)
    reach = P.max_bucket_pairs // 300  # each member: its bucket's head and the `reach` members before it
    assert len(pairs) == sum(min(i, reach) for i in range(300)) + (300 - 1 - reach)
    pairs = minhash.candidate_pairs(keys[:100], np.ones(100, bool), P.max_bucket_pairs)
    assert len(pairs) == 100 * 99 // 2


def test_index_only_sees_crawls_registered_before(tmp_path: Path) -> None:
    import pyarrow as pa

    index = DedupIndex(str(tmp_path / "index"))
    index.write_hashes("file_hashes", "c1", pa.array(["h1", "h2"]), pa.array(["a", "b"]))
    index.write_hashes("file_hashes", "c2", pa.array(["h3", "h1"]), pa.array(["c", "d"]))
    assert index.known_hashes("file_hashes", pa.array(["h1", "h3", "zz"]), ["c1"]) == {"h1": ("c1", "a")}
    assert index.known_hashes("file_hashes", pa.array(["h1", "h3"]), ["c1", "c2"]) == {"h1": ("c1", "a"),
                                                                                       "h3": ("c2", "c")}
    assert index.known_hashes("file_hashes", pa.array(["h1"]), []) == {}
    index.write_hashes("file_hashes", "c1", pa.array(["h9"]), pa.array(["z"]))  # re-indexing replaces a crawl
    assert index.known_hashes("file_hashes", pa.array(["h1", "h9"]), ["c1"]) == {"h9": ("c1", "z")}
    sigs, _ = minhash.signatures(["alpha beta gamma delta epsilon zeta eta theta"] * 2, P)
    keys = minhash.band_keys(sigs, P)
    index.write_bands("file", "c1", ["x"], keys[:1], sigs[:1])
    [(crawl, rows, refs)] = index.band_hits("file", keys[1:], ["c1"])
    assert crawl == "c1" and rows.tolist() == [0] and refs.tolist() == [0]
    assert index.records("file", "c1", refs, P.num_perm)[0] == ["x"]
    assert np.array_equal(index.records("file", "c1", refs, P.num_perm)[1][0], sigs[0])
    assert index.missing("file", ["c1", "c2"]) == ["c2"]


def test_a_very_common_band_key_returns_a_bounded_number_of_hits(tmp_path: Path) -> None:
    index = DedupIndex(str(tmp_path / "index"), max_hits_per_key=5)
    sigs, _ = minhash.signatures(["the same licence header text of every file"] * 50, P)
    keys = minhash.band_keys(sigs, P)
    index.write_bands("file", "c1", [f"f{i}" for i in range(50)], keys, sigs)
    [(_, rows, refs)] = index.band_hits("file", keys[:1], ["c1"])
    assert len(refs) == 5 and refs.tolist() == [0, 1, 2, 3, 4]  # deterministic: the first refs per key
