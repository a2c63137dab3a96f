"""The distributed engine decides dedup exactly as the in-process path: near-dedup candidates and clusters,
exact-dedup decisions."""

from __future__ import annotations

from pathlib import Path

import dask
import numpy as np
import pyarrow as pa
import pytest

from seedcoder_assets.core.dedup import minhash
from seedcoder_assets.core.dedup.distributed import distributed_candidates, key_ranges, units
from seedcoder_assets.core.dedup.engine import EngineParams
from seedcoder_assets.core.dedup.exact import connect
from seedcoder_assets.core.dedup.index import DedupIndex
from seedcoder_assets.core.dedup.near import (
    Content,
    _load_signatures,
    _load_small_sets,
    compute_signatures,
    local_candidates,
    near_clusters,
)
from seedcoder_assets.core.dedup.survivor import SurvivorRule
from seedcoder_assets_tests.core.test_near import _edited_corpus, _write

META = pa.schema([("id", pa.string()), ("repo", pa.string()), ("path", pa.string()), ("stars", pa.int64()),
                  ("pushed_at", pa.string())])


def _crawl(tmp: Path, name: str, corpus: dict[str, str], params: minhash.MinHashParams) -> tuple[str, str]:
    files, sigs = str(tmp / name / "files"), str(tmp / name / "sigs")
    _write(files, corpus)
    compute_signatures(files, sigs, params, batch_rows=23)  # many small row groups: several units
    return files, sigs


def _clusters(ids, sigs, counts, meta, params, index, prior, content, small, candidates=None):
    table, figures = near_clusters("file", ids, None if candidates else sigs, counts, meta, params,
                                   SurvivorRule.lexical, index, prior, connect(), content, small, candidates=candidates)
    return table, figures


@pytest.mark.parametrize("max_bucket_pairs", [32_640, 1])  # 1: buckets of 4+ keep only chain links
def test_distributed_candidates_give_the_in_process_clusters(tmp_path: Path, max_bucket_pairs: int,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from seedcoder_assets.core.dedup import distributed

    if max_bucket_pairs == 1:  # and shingle sets written out after every row group
        monkeypatch.setattr(distributed, "SETS_FLUSH_BYTES", 1)
    params = minhash.MinHashParams(max_bucket_pairs=max_bucket_pairs)
    corpus = _edited_corpus()
    names = sorted(corpus)
    earlier = {k: corpus[k] for k in names[::3]}  # an earlier crawl kept a third of them
    current = {f"new/{k}": corpus[k] for k in names}  # again, with everything it had not kept
    base = corpus[names[0]]
    current |= {f"new/copy{k}": base.replace(" ", f" c{k} ", 1) for k in range(8)}  # buckets of 9 members
    index = DedupIndex(str(tmp_path / "index"))
    _, old_sigs_uri = _crawl(tmp_path, "old", earlier, params)
    old_ids, old_sigs, _ = _load_signatures(old_sigs_uri, params.num_perm)
    index.write_bands("file", "old", old_ids, minhash.band_keys(old_sigs, params), old_sigs)
    files, sig_uri = _crawl(tmp_path, "new", current, params)
    ids, sigs, counts = _load_signatures(sig_uri, params.num_perm)
    meta = pa.table({"id": ids, "repo": ids, "path": ids, "stars": [None] * len(ids), "pushed_at": [None] * len(ids)},
                    schema=META)
    small = _load_small_sets(sig_uri, ids)
    engine = EngineParams(rows_per_unit=40, key_ranges=5)
    assert len(units(sig_uri, engine.rows_per_unit)) >= 4  # the crawl really is cut into shards

    content = Content(files, lambda c: str(tmp_path / c / "files"))
    in_process, in_figures = _clusters(ids, sigs, counts, meta, params, index, ["old"], content, small)
    with dask.config.set(scheduler="threads"):
        found = distributed_candidates("file", sig_uri, ids, params, index, ["old"], str(tmp_path / "scratch"), engine,
                                       content)
        distributed, figures = _clusters(ids, sigs, counts, meta, params, index, ["old"], content, small, found)

    assert in_figures["prior_crawl_matches"] > 20 and in_figures["pairs_near_threshold_or_above"] > 30
    assert in_figures["exact_checked_pairs"] >= 3 and in_figures["prior_crawl_exact_checked"] >= 3  # both checks ran
    assert distributed.equals(in_process)
    # The workers check every unsure pair exactly; the step's optimistic clustering only those it uses.
    for f in (figures, in_figures):
        for k in ("seconds", "exact_checked_pairs", "clustering_rounds", "exact_text_reads"):
            f.pop(k)
    assert figures == in_figures, (figures, in_figures)
    # The candidates themselves, not only the clusters they lead to (chain links depend on member order).
    lo = params.threshold - params.exact_margin
    mine = local_candidates("file", ids, sigs, counts, params, index, ["old"], lo)
    with dask.config.set(scheduler="threads"):
        theirs = found(lo, lo)  # estimates only
    assert np.array_equal(theirs.pairs, mine.pairs) and np.array_equal(theirs.value, mine.value)
    assert (theirs.total_pairs, theirs.prior_candidates) == (mine.total_pairs, mine.prior_candidates)
    assert sorted(theirs.prior_found) == sorted(mine.prior_found)
    assert not list((tmp_path / "scratch").glob("*"))  # the units' band keys are removed afterwards


@pytest.mark.parametrize("n", [3, 4, 6, 64, 100])
def test_every_hash_goes_to_the_range_that_reads_its_earlier_copies(n: int) -> None:
    """A file's hash range (where its earlier-crawl copies are looked up) is the range whose bounds hold it."""
    from seedcoder_assets.core.dedup.distributed import hex_range_of, hex_ranges

    ranges = hex_ranges(n)
    prefixes = [f"{p:04x}" for p in range(65536)]
    for prefix, r in zip(prefixes, hex_range_of(prefixes, n).tolist()):
        lo, hi = ranges[r]
        assert lo <= prefix + "0" * 60 and (hi is None or prefix + "f" * 60 < hi), (prefix, r, lo, hi)


def test_key_ranges_cover_every_key_once() -> None:
    ranges = key_ranges(7)
    keys = np.array([-(1 << 63), -1, 0, 1, (1 << 63) - 1, 12345678901234], np.int64)
    for k in keys.tolist():
        assert sum(lo <= k and (hi is None or k < hi) for lo, hi in ranges) == 1


def test_distributed_exact_decisions_are_the_in_process_ones(tmp_path: Path) -> None:
    """Copies within one shard, across shards and of an earlier crawl's kept files, survivors by stars."""
    import hashlib

    from seedcoder_assets.core.dedup.distributed import distributed_exact_decisions
    from seedcoder_assets.core.dedup.exact import local_decisions
    from seedcoder_assets.core.dedup.survivor import SURVIVOR_ORDERS
    from seedcoder_assets.core.parquet_io import PartWriter
    from seedcoder_assets.core.schemas import FILE_SCHEMA

    corpus = _edited_corpus()
    texts = [corpus[k] for k in sorted(corpus)][:60]
    rows = [{"id": f"f{i:03d}", "crawl": "new", "repo": f"r{i % 7}", "path": f"p{i}.py", "language": "Python",
             "content": texts[(i * 7) % 45]} for i in range(120)]  # 45 texts over 120 files: groups of 2-3
    for r in rows:
        r["sha256"] = hashlib.sha256(r["content"].encode()).hexdigest()
        r["size"] = len(r["content"])
    files, repos = str(tmp_path / "files"), str(tmp_path / "repos")
    with PartWriter(files, FILE_SCHEMA, rows_per_part=40, rows_per_group=9) as out:  # 3 files, 15 row groups
        for start in range(0, len(rows), 20):
            out.write_rows(rows[start:start + 20])
    repo_schema = pa.schema([("repo", pa.string()), ("stars", pa.int64()), ("pushed_at", pa.string())])
    with PartWriter(repos, repo_schema) as out:
        out.write_rows([{"repo": f"r{k}", "stars": (k * 37) % 11, "pushed_at": f"2026-0{k + 1}-01"} for k in range(7)])
    index = DedupIndex(str(tmp_path / "index"))
    old = sorted({r["sha256"] for r in rows})[::5]  # an earlier crawl kept a fifth of the texts
    index.write_hashes("file_hashes", "old", pa.array(old), pa.array([f"old/{h[:6]}" for h in old]))
    rule = SURVIVOR_ORDERS["github"]

    def decided(fill) -> list[tuple]:
        conn = connect()
        fill(conn)
        return sorted(conn.execute("SELECT * FROM decisions").fetchall())

    mine = decided(lambda c: local_decisions(files, repos, index, ["old"], rule, c))
    with dask.config.set(scheduler="threads"):
        theirs = decided(distributed_exact_decisions(files, repos, index, ["old"], rule, str(tmp_path / "scratch"),
                                                     EngineParams(rows_per_unit=20, key_ranges=4)))
    assert len(units(files, 20)) >= 6 and len({u.path for u in units(files, 20)}) == 3  # units across files
    assert theirs == mine and len(mine) == 120
    assert not list((tmp_path / "scratch").rglob("*.parquet"))
    assert sum(r[5] is not None for r in mine) > 10 and sum(r[0] != r[3] and r[5] is None for r in mine) > 10


def test_more_ranges_as_crawls_grow() -> None:
    engine = EngineParams(key_ranges=64, entries_per_range=1000)
    assert engine.ranges_for(10) == 64 and engine.ranges_for(64_000) == 64 and engine.ranges_for(64_001) == 65


def test_wanted_records_find_every_pair_side_and_nothing_else() -> None:
    """The compact map of which pair sides want which record answers as a plain dict of lists would, including
    ids of other lengths (a longer id sharing a wanted id's prefix is not that id)."""
    from seedcoder_assets.core.dedup.distributed import wanted_by_partition

    rng = np.random.default_rng(7)
    ids = [f"{i:024x}" for i in range(40)] + ["abc~copy1", "abc~copy12", "é-non-ascii"]
    pairs = [(("a", ids[x]), ("a" if y % 3 else "b", ids[y])) for x, y in rng.integers(0, len(ids), (300, 2))]
    expected: dict[str, dict[str, set[tuple[int, int]]]] = {}
    for k, pair in enumerate(pairs):
        for side, (uri, id_) in enumerate(pair):
            expected.setdefault(uri, {}).setdefault(id_, set()).add((k, side))
    wanted = wanted_by_partition(pairs)
    assert set(wanted) == set(expected)
    for uri, w in wanted.items():
        probes = ids + ["abc", "abc~copy123", ids[0] + "0", ""]
        found = w.find(pa.array(probes, pa.string()))
        for probe, at in zip(probes, found.tolist()):
            want = expected[uri].get(probe)
            if want is None:
                assert at == -1, (uri, probe)
                continue
            lo, hi = w.starts[at], w.starts[at + 1]
            assert set(zip(w.pair[lo:hi].tolist(), w.side[lo:hi].tolist())) == want, (uri, probe)
