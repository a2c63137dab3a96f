"""Dedup past one machine: exact and near dedup's joins fanned out on Dask, deciding as in process.

Near dedup. The in-process path (near.local_candidates) holds a crawl's band keys and signatures in one
process and reads every earlier crawl's keys in it. Here the same candidates come from data and tasks
that fan out:

1. per *unit* of the signature partition (a run of its row groups: a shard of the crawl): band keys,
   written sorted by key with small row groups, so a key range is a pruned read;
2. per *key range* (band keys are uniform hashes, so ranges are hash buckets): this crawl's entries of
   every unit and every earlier crawl's kept entries (their index tables, sorted by key) in the range
   give the pairs within the crawl (members of a large bucket ordered by `minhash.doc_keys`, as in
   process) and the hits on earlier crawls, each split by the unit of its first address;
3. per unit: its pairs (deduplicated across ranges) get their first side's signature and are written to
   the scratch folder by the unit of the second side; per unit again, the second side's signature and the
   estimate. Signatures are read where the pairs meet them, and what moves between tasks goes through
   Parquet in the scratch folder, so a task holds one shard's or one block's data, whatever the crawl's
   size. Hits on an earlier crawl meet its kept records per block of 65,536 refs. Only estimates at or
   above the lower decision bound reach the step's process;
4. the pairs the estimate cannot decide get their exact Jaccard: every shard of every files partition
   involved reads its wanted texts once and writes their shingle sets by block of pairs; one task per
   block computes the Jaccards.

Exact dedup. Per unit of the files partition, (id, sha256, size, repo, path) split by hash range; per
range, the in-process SQL (survivor order within the crawl) with each earlier crawl's kept hashes of
that range (sorted: a pruned read).

Every task is a plain function over Parquet URIs (local or s3://): workers need the lake, not the
step's memory. The star clustering runs in the step (near.near_clusters) on the candidates: edges and
ids, not signatures or texts. Both give the in-process result exactly
(seedcoder_assets_tests/core/test_distributed_dedup.py); benchmarks/bench_distributed_dedup.py measures
1, 2 and 4 workers on 4x and 16x the large crawl.

A laptop runs a local cluster (or the threaded scheduler); a deployment points `SEEDCODER_DASK_ADDRESS`
at a scheduler (deploy/k8s/dask-cluster.yaml, the Dask Kubernetes operator). See core/dedup/engine.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dask
import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from seedcoder_assets.core import object_store
from seedcoder_assets.core.dedup import minhash
from seedcoder_assets.core.dedup.engine import EngineParams
from seedcoder_assets.core.dedup.exact import DECISION_SCHEMA, connect, decide_sql, prior_table
from seedcoder_assets.core.dedup.index import ROWS_PER_GROUP, DedupIndex, key_matches
from seedcoder_assets.core.dedup.minhash import MinHashParams
from seedcoder_assets.core.dedup.near import Candidates, Content, Found, unsure_prior
from seedcoder_assets.core.dedup.survivor import SurvivorOrder
from seedcoder_assets.core.object_store import resolve
from seedcoder_assets.core.parquet_io import clear_partition, dataset, part_paths


@dataclass(frozen=True)
class Unit:
    """A run of row groups of one part file of a partition (signatures, files): the engine's shard of a crawl."""

    number: int
    path: str  # a file path under the partition's filesystem
    row_groups: tuple[int, ...]
    rows: int


def units(uri: str, rows_per_unit: int) -> list[Unit]:
    """A partition cut into units of about `rows_per_unit` rows (whole row groups)."""
    fs, _ = resolve(uri)
    out: list[Unit] = []
    for path in part_paths(uri):
        with fs.open_input_file(path) as f:
            meta = pq.ParquetFile(f).metadata
        group: list[int] = []
        rows = 0
        for g in range(meta.num_row_groups):
            group.append(g)
            rows += meta.row_group(g).num_rows
            if rows >= rows_per_unit:
                out.append(Unit(len(out), path, tuple(group), rows))
                group, rows = [], 0
        if group:
            out.append(Unit(len(out), path, tuple(group), rows))
    return out


def read_unit(uri: str, unit: Unit, columns: Sequence[str]) -> pa.Table:
    fs, _ = resolve(uri)
    with fs.open_input_file(unit.path) as f:
        return pq.ParquetFile(f).read_row_groups(list(unit.row_groups), columns=list(columns))


# -- 1. band keys per unit ------------------------------------------------------------------------------
BAND_SCHEMA = pa.schema([("key", pa.int64()), ("doc", pa.int64()), ("addr", pa.int64())])


def write_unit_bands(sig_uri: str, unit: Unit, dst_uri: str, params: MinHashParams) -> int:
    """Band keys of one unit's records with shingles: (key, doc key, address = unit << 32 | row), sorted."""
    t = read_unit(sig_uri, unit, ["id", "n_shingles", "signature"])
    rows = np.flatnonzero(t["n_shingles"].to_numpy() > 0)
    valid = t.take(pa.array(rows, pa.int64()))
    keys = minhash.band_keys(minhash.signature_matrix(valid["signature"], params.num_perm), params).reshape(-1)
    doc = np.repeat(minhash.doc_keys(valid["id"]), params.bands)
    addr = np.repeat((np.int64(unit.number) << 32) | rows.astype(np.int64), params.bands)
    order = np.lexsort((doc, keys))
    table = pa.table({"key": keys[order], "doc": doc[order], "addr": addr[order]}, schema=BAND_SCHEMA)
    fs, path = resolve(dst_uri)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    pq.write_table(table, path, filesystem=fs, row_group_size=ROWS_PER_GROUP, compression="zstd")
    return table.num_rows


# -- 2. candidates per key range ------------------------------------------------------------------------
def key_ranges(n: int) -> list[tuple[int, int | None]]:
    """`n` half-open ranges covering every int64 key; the last is open-ended."""
    edges = [int(-(1 << 63) + k * ((1 << 64) // n)) for k in range(n)]
    return [(lo, edges[k + 1] if k + 1 < n else None) for k, lo in enumerate(edges)]


def _in_range(uri: str, lo: int, hi: int | None, columns: list[str]) -> pa.Table:
    """Rows of a key-sorted file or partition with lo <= key < hi (row groups outside are never read)."""
    flt = pc.field("key") >= lo
    if hi is not None:
        flt = flt & (pc.field("key") < hi)
    return dataset(uri).to_table(columns=columns, filter=flt)


Pieces = dict[int, np.ndarray]  # unit -> rows of int64 addresses whose first column lies in that unit
_MASK = np.int64(0xFFFFFFFF)


def _by_unit(rows: np.ndarray, column: np.ndarray) -> Pieces:
    unit = column >> 32
    order = np.argsort(unit, kind="stable")
    rows, unit = rows[order], unit[order]
    cuts = np.flatnonzero(np.r_[True, unit[1:] != unit[:-1]]) if len(unit) else np.zeros(0, np.int64)
    return {int(unit[c]): part for c, part in zip(cuts, np.split(rows, cuts[1:]))}


def _unique_rows(pieces: Sequence[np.ndarray | None], width: int) -> np.ndarray:
    rows = [p for p in pieces if p is not None and len(p)]
    if not rows:
        return np.zeros((0, width), np.int64)
    both = np.ascontiguousarray(np.concatenate(rows))
    return np.unique(both.view(np.dtype([(f"c{i}", np.int64) for i in range(width)])).reshape(-1)) \
        .view(np.int64).reshape(-1, width)


def range_candidates(lo: int, hi: int | None, band_files: Sequence[str], prior_bands: Sequence[str],
                     max_bucket_pairs: int) -> tuple[Pieces, Pieces]:
    """Pairs (a < b, addresses) sharing a key in [lo, hi), and hits (a, earlier crawl's position, its ref)
    of this crawl's entries on each earlier crawl's kept entries in the range; both by unit of `a`."""
    parts = [_in_range(f, lo, hi, ["key", "doc", "addr"]) for f in band_files]
    mine = pa.concat_tables(parts) if parts else BAND_SCHEMA.empty_table()
    key, doc, addr = (mine[c].to_numpy() for c in ("key", "doc", "addr"))
    pairs = _unique_rows([minhash.bucket_pairs(key, addr, doc, max_bucket_pairs)], 2)
    hits = []
    for c, uri in enumerate(prior_bands):
        t = _in_range(uri, lo, hi, ["key", "ref"])
        probe, refs = key_matches(t["key"].to_numpy(), t["ref"].to_numpy(), key)
        hits.append(np.stack([addr[probe], np.full(len(probe), c, np.int64), refs.astype(np.int64)], axis=1))
    hits_rows = _unique_rows(hits, 3)
    return _by_unit(pairs, pairs[:, 0]), _by_unit(hits_rows, hits_rows[:, 0])


# -- 3. estimates: each unit's signatures read where its pairs meet them, never shuffled ---------------------
def unit_signatures(sig_uri: str, unit: Unit, num_perm: int) -> np.ndarray:
    return minhash.signature_matrix(read_unit(sig_uri, unit, ["signature"])["signature"], num_perm)


def _write_piece(path: str, table: pa.Table) -> None:
    fs, p = resolve(path)
    fs.create_dir(p.rsplit("/", 1)[0], recursive=True)
    pq.write_table(table, p, filesystem=fs)


def _read_pieces(folder: str) -> pa.Table | None:
    """Every piece written to `folder` by the tasks before (None when none was)."""
    fs, p = resolve(folder)
    if fs.get_file_info(p).type == pafs.FileType.NotFound:
        return None
    return dataset(folder).to_table()


def _groups(folder: str) -> list[int]:
    """The `to=G` subfolders the tasks before wrote into."""
    fs, p = resolve(folder)
    found = fs.get_file_info(pafs.FileSelector(p, allow_not_found=True))
    return sorted(int(i.base_name[3:]) for i in found if i.type == pafs.FileType.Directory and i.base_name[:3] == "to=")


def attach_left(sig_uri: str, unit: Unit, pieces: Sequence[np.ndarray | None], width: int, num_perm: int,
                out_dir: str) -> int:
    """This unit's rows (deduplicated across ranges) with the signature of their address `a`, written to
    `<out_dir>/to=G/`, G the unit of `b` for pairs (a, b), the earlier crawl and block of refs for hits
    (a, crawl, ref). Through storage, not memory: a task holds one unit's rows, whatever the crawl's size.
    Returns the row count."""
    rows = _unique_rows(pieces, width)
    if not len(rows):
        return 0
    sigs = unit_signatures(sig_uri, unit, num_perm)[rows[:, 0] & _MASK]
    key = rows[:, 1] >> 32 if width == 2 else (rows[:, 1] << 32) | (rows[:, 2] // ROWS_PER_GROUP)
    for g in np.unique(key).tolist():
        at = np.flatnonzero(key == g)
        columns = {f"c{i}": rows[at, i] for i in range(width)}
        columns["sig"] = pa.array([x.tobytes() for x in sigs[at]], pa.binary())
        _write_piece(f"{out_dir}/to={g}/from-{unit.number:06d}.parquet", pa.table(columns))
    return len(rows)


def _rows_and_sigs(folder: str, width: int, num_perm: int) -> tuple[np.ndarray, np.ndarray] | None:
    t = _read_pieces(folder)
    if t is None or not t.num_rows:
        return None
    rows = np.stack([t[f"c{i}"].to_numpy() for i in range(width)], axis=1)
    return rows, minhash.signature_matrix(t["sig"], num_perm)


def estimate_right(sig_uri: str, unit: Unit, in_dir: str, lo: float, num_perm: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs whose `b` lies in this unit (read from `<in_dir>/to=<unit>`): estimated Jaccard; those >= lo."""
    got = _rows_and_sigs(f"{in_dir}/to={unit.number}", 2, num_perm)
    if got is None:
        return np.zeros((0, 2), np.int64), np.zeros(0, np.float32)
    pairs, left = got
    value = minhash.similarity(left, unit_signatures(sig_uri, unit, num_perm)[pairs[:, 1] & _MASK])
    keep = value >= lo
    return pairs[keep], value[keep]


def estimate_prior(index: DedupIndex, kind: str, crawl: str, group: int, in_dir: str, lo: float, num_perm: int
                   ) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Hits on one block of an earlier crawl's kept records (read from `<in_dir>/to=<group>`): estimated
    Jaccard against them; (addresses, their ids, values) >= lo. Only that block of the records is read,
    once; the hits are read one unit's piece at a time, so a task holds one block of records (at most
    65,536) and one unit's hits, however many units of the crawl hit that block."""
    fs, folder = resolve(f"{in_dir}/to={group}")
    pieces = sorted(i.path for i in fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
                    if i.path.endswith(".parquet"))
    refs = [pq.read_table(p, columns=["c2"], filesystem=fs)["c2"].to_numpy() for p in pieces]
    if not pieces or not sum(len(r) for r in refs):
        return np.zeros(0, np.int64), [], np.zeros(0, np.float32)
    block = group & 0xFFFFFFFF
    uniq = np.unique(np.concatenate(refs))
    pids, psigs = index.records(kind, crawl, uniq, num_perm,
                                ref_range=(block * ROWS_PER_GROUP, (block + 1) * ROWS_PER_GROUP))
    addrs, ids, values = [], [], []
    for path in pieces:
        t = pq.read_table(path, filesystem=fs)
        left = minhash.signature_matrix(t["sig"], num_perm)
        at = np.searchsorted(uniq, t["c2"].to_numpy())
        value = minhash.similarity(left, psigs[at])
        keep = np.flatnonzero(value >= lo)
        addrs.append(t["c0"].to_numpy()[keep])
        ids += [pids[at[k]] for k in keep.tolist()]
        values.append(value[keep])
    return np.concatenate(addrs), ids, np.concatenate(values)


def _piece(groups: dict, key: int):
    return groups.get(key)


def distributed_candidates(kind: str, sig_uri: str, ids: list[str], params: MinHashParams, index: DedupIndex,
                           prior_crawls: Sequence[str], scratch_uri: str, engine: EngineParams = EngineParams(),
                           content: Content | None = None) -> Callable[[float, float], Candidates]:
    """`near.near_clusters`' candidate finder on the current Dask scheduler (a Client, or threads).

    Args:
        ids: the crawl's record ids, sorted (the rows the candidates are returned in).
        scratch_uri: where the units' band keys go (removed afterwards); workers must reach it.
        content: where the texts are: every pair whose estimate lies between the bounds gets its exact
            Jaccard on the workers too (all of them, where the step's optimistic clustering checks only
            those it uses; the clusters are the same, seedcoder_assets_tests/core/test_near.py, unless
            that clustering gives up after near.MAX_ROUNDS rounds and decides the rest by estimate,
            which no real crawl has needed).
    """

    def find(lo: float, hi: float) -> Candidates:
        work = f"{scratch_uri.rstrip('/')}/near"
        clear_partition(work)  # what a killed run of this partition left
        try:
            found = _find(kind, sig_uri, ids, params, index, list(prior_crawls), work, engine, lo)
            if content is not None and lo < hi:
                found = _check_unsure(found, ids, params, content, hi, engine, f"{work}/exact")
            return found
        finally:
            clear_partition(work)

    return find


def _check_unsure(found: Candidates, ids: list[str], params: MinHashParams, content: Content, hi: float,
                  engine: EngineParams, work: str) -> Candidates:
    """Exact Jaccard, on the workers, of every pair and earlier-crawl match the estimate cannot decide."""
    pair_exact = found.value < hi
    todo_pairs = np.flatnonzero(pair_exact)
    refs = [((content.files_uri, ids[a]), (content.files_uri, ids[b])) for a, b in found.pairs[todo_pairs].tolist()]
    todo_prior = unsure_prior(found.prior_found, hi) if content.prior_files is not None else []
    refs += [((content.files_uri, ids[found.prior_found[k][0]]), (content.prior_files(found.prior_found[k][1]),
                                                                  found.prior_found[k][2])) for k in todo_prior]
    exact = exact_jaccards(refs, params, engine, work)
    value = found.value.copy()
    value[todo_pairs] = exact[: len(todo_pairs)]
    prior_found = list(found.prior_found)
    prior_exact = np.zeros(len(prior_found), bool)
    for k, x in zip(todo_prior, exact[len(todo_pairs):].tolist()):
        r, c, p, _ = prior_found[k]
        prior_found[k], prior_exact[k] = (r, c, p, float(x)), True
    return Candidates(found.pairs, value, found.total_pairs, prior_found, found.prior_candidates, pair_exact,
                      prior_exact if content.prior_files is not None else None)


# -- exact Jaccard of unsure pairs: texts read once per shard, shingle sets meet per block of pairs ----------
Ref = tuple[str, str]  # (files partition URI, record id)
EXACT_BLOCK = 8192  # pairs per Jaccard task
SETS_FLUSH_BYTES = 64 << 20  # shingle sets a shard task holds before writing them out


@dataclass(frozen=True)
class Wanted:
    """Which pair sides want each record of one files partition, as arrays: the record ids sorted (fixed-width
    bytes) and, per id, its run of (pair, side). About 40 bytes per pair side (a dict of lists of tuples
    takes ten times that), sent once to each worker that reads the partition."""

    ids: np.ndarray  # |S<width>, sorted, unique
    starts: np.ndarray  # int64, len(ids) + 1: id i's pair sides are [starts[i], starts[i + 1])
    pair: np.ndarray  # int64
    side: np.ndarray  # int8

    @classmethod
    def of(cls, ids: Sequence[str], pair: np.ndarray, side: np.ndarray) -> Wanted:
        keys = np.array([i.encode() for i in ids], dtype=bytes)
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        unique, first = np.unique(keys, return_index=True)
        return cls(unique, np.r_[first, len(keys)].astype(np.int64), pair[order], side[order])

    def find(self, ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Each id's position among this set's ids, or -1 (the set is not empty)."""
        width = self.ids.dtype.itemsize
        encoded = [i.encode() for i in ids.to_pylist()]
        fits = np.array([len(e) <= width for e in encoded], bool)  # a longer id cannot be wanted
        keys = np.array([e if f else b"" for e, f in zip(encoded, fits)], dtype=self.ids.dtype)
        pos = np.minimum(np.searchsorted(self.ids, keys), len(self.ids) - 1)
        return np.where(fits & (self.ids[pos] == keys), pos, -1)


def wanted_by_partition(pairs: Sequence[tuple[Ref, Ref]]) -> dict[str, Wanted]:
    """Pairs of (files partition URI, record id) -> per partition, which pair sides want which of its records."""
    by_uri: dict[str, tuple[list[str], list[int], list[int]]] = {}
    for k, pair in enumerate(pairs):
        for side, (uri, id_) in enumerate(pair):
            ids, ks, sides = by_uri.setdefault(uri, ([], [], []))
            ids.append(id_)
            ks.append(k)
            sides.append(side)
    return {uri: Wanted.of(ids, np.array(ks, np.int64), np.array(sides, np.int8))
            for uri, (ids, ks, sides) in by_uri.items()}


def unit_shingle_sets(uri: str, unit: Unit, tag: int, wanted: Wanted, params: MinHashParams, out_dir: str) -> int:
    """Shingle sets of this shard's records that some pair needs, written by block of pairs: each record's
    set once per block that wants it (`<out_dir>/to=B/sets/`: rec, set) and which pair sides it serves
    (`<out_dir>/to=B/sides/`: k, side, rec), so a record in many pairs (a star cluster's survivor) moves and
    is held once. Only the row groups holding such a record have their text read. Returns the records read."""
    if not len(wanted.ids):
        return 0
    sets: dict[int, dict[int, bytes]] = {}  # block -> rec -> set
    sides: dict[int, list[tuple[int, int, int]]] = {}  # block -> (pair, side, rec)
    fs, _ = resolve(uri)
    read, held, flushes = 0, 0, 0

    def flush() -> None:  # written out every SETS_FLUSH_BYTES: a task holds that much, however many are wanted
        for b, by_rec in sets.items():
            name = f"from-{tag:06d}-{flushes:04d}.parquet"
            _write_piece(f"{out_dir}/to={b}/sets/{name}", pa.table({
                "rec": pa.array(list(by_rec), pa.int64()), "set": pa.array(list(by_rec.values()), pa.binary())}))
            k, side, rec = zip(*sides[b])
            _write_piece(f"{out_dir}/to={b}/sides/{name}", pa.table({
                "k": pa.array(k, pa.int64()), "side": pa.array(side, pa.int8()), "rec": pa.array(rec, pa.int64())}))
        sets.clear()
        sides.clear()

    with fs.open_input_file(unit.path) as f:
        pf = pq.ParquetFile(f)
        for g in unit.row_groups:
            at = wanted.find(pf.read_row_group(g, columns=["id"])["id"])
            hit = at >= 0
            if not hit.any():
                continue
            rows = pf.read_row_group(g, columns=["content"]).filter(pa.array(hit))
            for i, s in zip(at[hit].tolist(), minhash.shingle_sets(rows["content"], params)):
                rec = (tag << 32) | read  # unique across the tasks of one exact_jaccards call
                read += 1
                data = s.tobytes()
                held += len(data)
                lo, hi = wanted.starts[i], wanted.starts[i + 1]
                for k, side in zip(wanted.pair[lo:hi].tolist(), wanted.side[lo:hi].tolist()):
                    sets.setdefault(k // EXACT_BLOCK, {})[rec] = data
                    sides.setdefault(k // EXACT_BLOCK, []).append((k, side, rec))
            if held > SETS_FLUSH_BYTES:
                flush()
                held, flushes = 0, flushes + 1
    flush()
    return read


def _views(column: pa.ChunkedArray) -> list[np.ndarray]:
    """Each binary value as a uint64 array over the column's own buffer (no copy)."""
    out: list[np.ndarray] = []
    for chunk in column.chunks:
        _, offsets, data = chunk.buffers()
        ends = np.frombuffer(offsets, np.int32)[chunk.offset: chunk.offset + len(chunk) + 1]
        raw = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
        out += [raw[a:b].view(np.uint64) for a, b in zip(ends[:-1].tolist(), ends[1:].tolist())]
    return out


def block_jaccard(block: int, size: int, in_dir: str) -> np.ndarray:
    """Exact Jaccard of pairs [block * EXACT_BLOCK, + size) (0.0 where a record is no longer there)."""
    start = block * EXACT_BLOCK
    out = np.zeros(size, np.float32)
    sets, sides = _read_pieces(f"{in_dir}/to={block}/sets"), _read_pieces(f"{in_dir}/to={block}/sides")
    if sets is None or sides is None:
        return out
    by_rec = dict(zip(sets["rec"].to_pylist(), _views(sets["set"])))
    a: list[np.ndarray | None] = [None] * size
    b: list[np.ndarray | None] = [None] * size
    for k, side, rec in zip(sides["k"].to_pylist(), sides["side"].to_pylist(), sides["rec"].to_pylist()):
        (a if side == 0 else b)[k - start] = by_rec[rec]
    for i in range(size):
        if a[i] is not None and b[i] is not None:
            out[i] = minhash.exact_jaccard(a[i], b[i])
    return out


def exact_jaccards(pairs: Sequence[tuple[Ref, Ref]], params: MinHashParams, engine: EngineParams,
                   work: str) -> np.ndarray:
    """Exact Jaccard of each pair of records, on the current Dask scheduler: every shard of every files
    partition involved is read once (only its row groups with a wanted record), and the shingle sets meet,
    through `work`, in blocks of EXACT_BLOCK pairs."""
    if not pairs:
        return np.zeros(0, np.float32)
    # one object per files partition, so a worker receives only the partitions whose shards it reads
    wanted = {uri: dask.delayed(w, traverse=False) for uri, w in wanted_by_partition(pairs).items()}
    shards = [(uri, u) for uri in wanted for u in units(uri, engine.rows_per_unit)]
    dask.compute(*[dask.delayed(unit_shingle_sets)(uri, u, tag, wanted[uri], params, f"{work}/sets")
                   for tag, (uri, u) in enumerate(shards)])
    blocks = [dask.delayed(block_jaccard)(b, min(EXACT_BLOCK, len(pairs) - b * EXACT_BLOCK), f"{work}/sets")
              for b in range(-(-len(pairs) // EXACT_BLOCK))]
    return np.concatenate(dask.compute(*blocks))


def _find(kind: str, sig_uri: str, ids: list[str], params: MinHashParams, index: DedupIndex,
          prior_crawls: list[str], work: str, engine: EngineParams, lo: float) -> Candidates:
    delayed, perm = dask.delayed, params.num_perm
    cut = units(sig_uri, engine.rows_per_unit)
    band_files = [f"{work}/bands/unit-{u.number:06d}.parquet" for u in cut]
    entries = sum(dask.compute(*[delayed(write_unit_bands)(sig_uri, u, f, params) for u, f in zip(cut, band_files)]))
    prior_bands = [index.uri(f"{kind}_bands", c) for c in prior_crawls]
    found = [delayed(range_candidates, nout=2)(lo_, hi_, band_files, prior_bands, params.max_bucket_pairs)
             for lo_, hi_ in key_ranges(engine.ranges_for(entries))]
    pairs_dir, hits_dir = f"{work}/pairs", f"{work}/hits"
    # one compute: the range tasks run once and feed both sides
    pair_counts, hit_counts = dask.compute(
        [delayed(attach_left)(sig_uri, u, [delayed(_piece)(f[0], u.number) for f in found], 2, perm, pairs_dir)
         for u in cut],
        [delayed(attach_left)(sig_uri, u, [delayed(_piece)(f[1], u.number) for f in found], 3, perm, hits_dir)
         for u in cut] if prior_crawls else [])
    n_pairs, n_hits = sum(pair_counts), sum(hit_counts)
    within = [delayed(estimate_right)(sig_uri, v, pairs_dir, lo, perm) for v in cut]
    blocks = _groups(hits_dir) if prior_crawls else []
    across = [delayed(estimate_prior)(index, kind, prior_crawls[g >> 32], g, hits_dir, lo, perm) for g in blocks]
    within_out, across_out = dask.compute(within, across)
    return _to_rows(cut, sig_uri, ids, within_out, list(zip([prior_crawls[g >> 32] for g in blocks], across_out)),
                    int(n_pairs), int(n_hits))


def _to_rows(cut: list[Unit], sig_uri: str, ids: list[str], within: list[tuple[np.ndarray, np.ndarray]],
             across: list[tuple[str, tuple[np.ndarray, list[str], np.ndarray]]], n_pairs: int,
             n_hits: int) -> Candidates:
    """Addresses -> rows of the sorted ids, pairs as (i < j) sorted: what the in-process path gives."""
    unit_ids = [read_unit(sig_uri, u, ["id"])["id"] for u in cut]
    base = np.r_[0, np.cumsum([len(x) for x in unit_ids])].astype(np.int64)
    flat = pc.index_in(pa.chunked_array([c for x in unit_ids for c in x.chunks], pa.string()),
                       value_set=pa.array(ids, pa.string())).to_numpy(zero_copy_only=False).astype(np.int64) \
        if unit_ids else np.zeros(0, np.int64)

    def row(addr: np.ndarray) -> np.ndarray:
        return flat[base[addr >> 32] + (addr & _MASK)]

    pairs = np.concatenate([w[0] for w in within]) if within else np.zeros((0, 2), np.int64)
    value = np.concatenate([w[1] for w in within]) if within else np.zeros(0, np.float32)
    a, b = row(pairs[:, 0]), row(pairs[:, 1])
    i, j = np.minimum(a, b), np.maximum(a, b)
    order = np.lexsort((j, i))
    found: list[Found] = []
    for crawl, (addr, pids, values) in across:
        found += [(int(x), crawl, p, float(v)) for x, p, v in zip(row(addr).tolist(), pids, values.tolist())]
    return Candidates(np.stack([i[order], j[order]], axis=1).astype(np.int64), value[order].astype(np.float32),
                      n_pairs, found, n_hits)


# -- exact dedup by hash range --------------------------------------------------------------------------
_HASH_COLUMNS = ["id", "sha256", "size", "repo", "path"]


def _hex_edges(n: int) -> np.ndarray:
    return np.array([k * 65536 // n for k in range(n)], np.int64)


def hex_ranges(n: int) -> list[tuple[str, str | None]]:
    """`n` ranges of lowercase hex SHA256 strings by their first 4 digits; the last is open-ended."""
    edges = [f"{e:04x}" for e in _hex_edges(n).tolist()]
    return [(lo, edges[k + 1] if k + 1 < n else None) for k, lo in enumerate(edges)]


def hex_range_of(prefixes: Sequence[str], n: int) -> np.ndarray:
    """The range (of `hex_ranges(n)`) each hash falls in, by its first 4 hex digits: the same edges."""
    values = np.array([int(p, 16) if p else 0 for p in prefixes], np.int64)
    return np.searchsorted(_hex_edges(n), values, side="right") - 1


def write_unit_hashes(files_uri: str, unit: Unit, dst_dir: str, n_ranges: int) -> int:
    """One unit's (id, sha256, size, repo, path) split by hash range: `<dst_dir>/range=R/unit-U.parquet`."""
    t = read_unit(files_uri, unit, _HASH_COLUMNS)
    which = hex_range_of(pc.utf8_slice_codeunits(t["sha256"], 0, 4).to_pylist(), n_ranges)
    fs, root = resolve(dst_dir)
    for r in np.unique(which).tolist():
        fs.create_dir(f"{root}/range={r:04d}", recursive=True)
        pq.write_table(t.filter(pa.array(which == r)), f"{root}/range={r:04d}/unit-{unit.number:06d}.parquet",
                       filesystem=fs)
    return t.num_rows


def range_decisions(r: int, lo: str, hi: str | None, work: str, repos_uri: str, prior_hashes: Sequence[tuple[str, str]],
                    rule: SurvivorOrder) -> int:
    """Exact-dedup decisions of one hash range (exact.decide_sql) against every earlier crawl's kept hashes
    in that range (their tables are sorted by hash: a pruned read), written to `<work>/decisions/`."""
    fs, root = resolve(work)
    here = f"{root}/hashes/range={r:04d}"
    if fs.get_file_info(here).type == pafs.FileType.NotFound:
        return 0
    files = dataset(f"{work}/hashes/range={r:04d}").to_table(columns=_HASH_COLUMNS)
    wanted = pc.unique(files["sha256"])
    known: dict[str, tuple[str, str]] = {}
    for crawl, uri in prior_hashes:  # registration order: the earliest crawl wins, then the smallest id
        flt = pc.field("sha256") >= lo
        if hi is not None:
            flt = flt & (pc.field("sha256") < hi)
        t = dataset(uri).to_table(columns=["sha256", "ident"], filter=flt)
        t = t.filter(pc.is_in(t["sha256"], value_set=wanted))
        for sha, ident in zip(t["sha256"].to_pylist(), t["ident"].to_pylist()):
            known.setdefault(sha, (crawl, ident))
    repos = dataset(repos_uri).to_table(columns=["repo", "stars", "pushed_at"])
    conn = connect(memory_limit="512MB")
    conn.execute("SET threads TO 1")
    conn.register("files", files)
    conn.register("repos", repos)
    conn.register("prior", prior_table(known))
    out = conn.execute(decide_sql(rule, "files", "repos", "prior")).fetch_arrow_table().cast(DECISION_SCHEMA)
    conn.close()
    fs.create_dir(f"{root}/decisions", recursive=True)
    pq.write_table(out, f"{root}/decisions/range-{r:04d}.parquet", filesystem=fs)
    return out.num_rows


def distributed_exact_decisions(files_uri: str, repos_uri: str, index: DedupIndex, prior_crawls: Sequence[str],
                                rule: SurvivorOrder, scratch_uri: str, engine: EngineParams = EngineParams(),
                                ) -> Callable[[duckdb.DuckDBPyConnection], None]:
    """`exact.exact_dedup`'s decisions on the current Dask scheduler: the crawl's hashes split by hash range
    per unit, then one task per range decides (survivor order within the crawl, earlier crawls' kept hashes
    read for that range only). The decisions land in `conn` as the `decisions` table."""

    def fill(conn: duckdb.DuckDBPyConnection) -> None:
        work = f"{scratch_uri.rstrip('/')}/exact"
        clear_partition(work)  # what a killed run of this partition left
        try:
            cut = units(files_uri, engine.rows_per_unit)
            n_ranges = engine.ranges_for(sum(u.rows for u in cut))
            dask.compute(*[dask.delayed(write_unit_hashes)(files_uri, u, f"{work}/hashes", n_ranges) for u in cut])
            prior = [(c, index.uri("file_hashes", c)) for c in prior_crawls]
            dask.compute(*[dask.delayed(range_decisions)(r, lo, hi, work, repos_uri, prior, rule)
                           for r, (lo, hi) in enumerate(hex_ranges(n_ranges))])
            fs, root = resolve(work)
            found = fs.get_file_info(pafs.FileSelector(f"{root}/decisions", allow_not_found=True))
            parts = sorted(i.path for i in found if i.path.endswith(".parquet"))
            prefix = "s3://" if object_store.is_s3(work) else ""
            # DuckDB reads the ranges' decisions itself: they stay under its memory limit (and spill), never
            # a table in this process
            source = "read_parquet([" + ", ".join("'" + (prefix + p).replace("'", "''") + "'" for p in parts) + "])" \
                if parts else "engine_empty"
            conn.register("engine_empty", DECISION_SCHEMA.empty_table())
            conn.execute(f"CREATE OR REPLACE TEMP TABLE decisions AS SELECT * FROM {source}")
            conn.unregister("engine_empty")
        finally:
            clear_partition(work)

    return fill
