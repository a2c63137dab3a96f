"""Near-dedup candidates on a distributed engine (Dask), for crawls and histories past one machine.

The in-process path (near.local_candidates) holds a crawl's band keys and signatures in one process and
reads every earlier crawl's keys in it. Here the same candidates come from data and joins that fan out:

1. per *unit* of the signature partition (a run of its row groups; a shard of the crawl): band keys,
   written sorted by key with small row groups, so a key range is a pruned read;
2. per *key range* (bands' keys are uniform hashes, so ranges are hash buckets): this crawl's entries
   of every unit and every earlier crawl's kept entries (their index tables, sorted by key) in the range
   give the pairs within the crawl (members of a large bucket ordered by `minhash.doc_keys`, as in
   process) and the hits on earlier crawls;
3. two shuffle joins attach both sides' signatures to each pair (and to each earlier record) and
   estimate its Jaccard; only estimates at or above the lower decision bound reach the driver.

Every task is a plain function over Parquet URIs (local or s3://), so workers need the lake, not the
driver's memory. Clustering then runs where it always does (near.near_clusters), on the candidates:
its input is the edge list, not the corpus. The result is the in-process candidates exactly
(seedcoder_assets_tests/core/test_distributed_near.py); benchmarks/bench_distributed_dedup.py measures
1, 2 and 4 workers on 4x and 16x the large crawl.

Engine: Dask (`distributed`); a laptop runs a local cluster (or the threaded scheduler), a deployment
points `SEEDCODER_DASK_ADDRESS` at a scheduler (the Dask Kubernetes operator's DaskCluster).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dask
import dask.dataframe as dd
import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from seedcoder_assets.core.dedup import minhash
from seedcoder_assets.core.dedup.engine import EngineParams
from seedcoder_assets.core.dedup.exact import DECISION_SCHEMA, connect, decide_sql, prior_table
from seedcoder_assets.core.dedup.index import ROWS_PER_GROUP, DedupIndex, key_matches
from seedcoder_assets.core.dedup.minhash import MinHashParams
from seedcoder_assets.core.dedup.near import Candidates, Found
from seedcoder_assets.core.dedup.survivor import SurvivorOrder
from seedcoder_assets.core.object_store import resolve
from seedcoder_assets.core.parquet_io import clear_partition, dataset, part_paths

BINARY = pd.ArrowDtype(pa.binary())  # signatures stay Arrow buffers through the shuffles (no bytes objects)
_PAIRS = pd.DataFrame({"a": pd.Series([], dtype="int64"), "b": pd.Series([], dtype="int64")})
_HITS = pd.DataFrame({"a": pd.Series([], dtype="int64"), "crawl": pd.Series([], dtype="int32"), "ref": pd.Series([], dtype="int32")})
_SIGS = pd.DataFrame({"addr": pd.Series([], dtype="int64"), "sig": pd.Series([], dtype=BINARY)})
_PRIOR = pd.DataFrame({"crawl": pd.Series([], dtype="int32"), "ref": pd.Series([], dtype="int32"),
                       "pid": pd.Series([], dtype=object), "psig": pd.Series([], dtype=BINARY)})


@dataclass(frozen=True)
class Unit:
    """A run of row groups of one signature part file: the engine's shard of a crawl."""

    number: int
    path: str  # a file path under the signature partition's filesystem
    row_groups: tuple[int, ...]


def units(sig_uri: str, rows_per_unit: int) -> list[Unit]:
    """The signature partition cut into units of about `rows_per_unit` rows (whole row groups)."""
    fs, _ = resolve(sig_uri)
    out: list[Unit] = []
    for path in part_paths(sig_uri):
        meta = pq.ParquetFile(fs.open_input_file(path)).metadata
        group: list[int] = []
        rows = 0
        for g in range(meta.num_row_groups):
            group.append(g)
            rows += meta.row_group(g).num_rows
            if rows >= rows_per_unit:
                out.append(Unit(len(out), path, tuple(group)))
                group, rows = [], 0
        if group:
            out.append(Unit(len(out), path, tuple(group)))
    return out


def read_unit(sig_uri: str, unit: Unit, columns: Sequence[str]) -> pa.Table:
    fs, _ = resolve(sig_uri)
    return pq.ParquetFile(fs.open_input_file(unit.path)).read_row_groups(list(unit.row_groups), columns=list(columns))


def _signature_matrix(column: pa.ChunkedArray | pa.Array | pd.Series, num_perm: int) -> np.ndarray:
    """uint32 [n, num_perm] straight from the Arrow buffer (every signature has num_perm values)."""
    arr = pa.array(column) if isinstance(column, pd.Series) else column
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    if not len(arr):
        return np.zeros((0, num_perm), np.uint32)
    offsets = np.frombuffer(arr.buffers()[1], np.int32)[arr.offset: arr.offset + len(arr) + 1]
    return np.frombuffer(arr.buffers()[2], np.uint8)[offsets[0]: offsets[-1]].view(np.uint32).reshape(-1, num_perm)


# -- 1. band keys per unit ------------------------------------------------------------------------------
BAND_SCHEMA = pa.schema([("key", pa.int64()), ("doc", pa.int64()), ("addr", pa.int64())])


def write_unit_bands(sig_uri: str, unit: Unit, dst_uri: str, params: MinHashParams) -> int:
    """Band keys of one unit's records with shingles: (key, doc key, address = unit << 32 | row), sorted."""
    t = read_unit(sig_uri, unit, ["id", "n_shingles", "signature"])
    rows = np.flatnonzero(t["n_shingles"].to_numpy() > 0)
    valid = t.take(pa.array(rows, pa.int64()))
    keys = minhash.band_keys(_signature_matrix(valid["signature"], params.num_perm), params).reshape(-1)
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


def range_candidates(lo: int, hi: int | None, band_files: Sequence[str], prior_bands: Sequence[str],
                     max_bucket_pairs: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pairs (a < b, addresses) sharing a key in [lo, hi), and hits (a, earlier crawl's position, its ref)
    of this crawl's entries on each earlier crawl's kept entries in the range."""
    parts = [_in_range(f, lo, hi, ["key", "doc", "addr"]) for f in band_files]
    mine = pa.concat_tables(parts) if parts else BAND_SCHEMA.empty_table()
    key, doc, addr = (mine[c].to_numpy() for c in ("key", "doc", "addr"))
    pairs = minhash.bucket_pairs(key, addr, doc, max_bucket_pairs)
    code = np.unique(pairs.view(np.dtype([("a", np.int64), ("b", np.int64)])).reshape(-1))
    out_pairs = pd.DataFrame({"a": code["a"].astype(np.int64), "b": code["b"].astype(np.int64)})
    hits = []
    for c, uri in enumerate(prior_bands):
        t = _in_range(uri, lo, hi, ["key", "ref"])
        probe, refs = key_matches(t["key"].to_numpy(), t["ref"].to_numpy(), key)
        if len(probe):
            hits.append(pd.DataFrame({"a": addr[probe], "crawl": np.int32(c), "ref": refs.astype(np.int32)}))
    out_hits = pd.concat(hits, ignore_index=True).drop_duplicates() if hits else _HITS.copy()
    return out_pairs, out_hits


# -- 3. estimates by shuffle joins ----------------------------------------------------------------------
def unit_signatures(sig_uri: str, unit: Unit) -> pd.DataFrame:
    t = read_unit(sig_uri, unit, ["signature"])
    addr = (np.int64(unit.number) << 32) | np.arange(t.num_rows, dtype=np.int64)
    return pd.DataFrame({"addr": addr, "sig": pd.Series(pd.arrays.ArrowExtensionArray(t["signature"]))})


def prior_records(index: DedupIndex, kind: str, crawl: str, position: int) -> pd.DataFrame:
    t = dataset(index.uri(f"{kind}_records", crawl)).to_table(columns=["ref", "id", "signature"])
    return pd.DataFrame({"crawl": np.full(t.num_rows, position, np.int32), "ref": t["ref"].to_numpy().astype(np.int32),
                         "pid": pd.Series(t["id"].to_pylist(), dtype=object),
                         "psig": pd.Series(pd.arrays.ArrowExtensionArray(t["signature"]))})


def _estimate(df: pd.DataFrame, left: str, right: str, num_perm: int, lo: float) -> pd.DataFrame:
    if not len(df):
        return df.drop(columns=[left, right]).assign(value=pd.Series([], dtype="float32"))
    a, b = _signature_matrix(df[left], num_perm), _signature_matrix(df[right], num_perm)
    out = df.drop(columns=[left, right]).assign(value=minhash.similarity(a, b))
    return out[out["value"] >= lo]


def distributed_candidates(kind: str, sig_uri: str, ids: list[str], params: MinHashParams, index: DedupIndex,
                           prior_crawls: Sequence[str], scratch_uri: str, engine: EngineParams = EngineParams(),
                           ) -> Callable[[float], Candidates]:
    """`near.near_clusters`' candidate finder on the current Dask scheduler (a Client, or threads).

    Args:
        ids: the crawl's record ids, sorted (the rows the candidates are returned in).
        scratch_uri: where the units' band keys go (removed afterwards); workers must reach it.
    """

    def find(lo: float) -> Candidates:
        work = f"{scratch_uri.rstrip('/')}/near-{uuid.uuid4().hex[:12]}"
        try:
            return _find(kind, sig_uri, ids, params, index, list(prior_crawls), work, engine, lo)
        finally:
            clear_partition(work)

    return find


def _find(kind: str, sig_uri: str, ids: list[str], params: MinHashParams, index: DedupIndex,
          prior_crawls: list[str], work: str, engine: EngineParams, lo: float) -> Candidates:
    cut = units(sig_uri, engine.rows_per_unit)
    band_files = [f"{work}/bands/unit-{u.number:06d}.parquet" for u in cut]
    dask.compute(*[dask.delayed(write_unit_bands)(sig_uri, u, f, params) for u, f in zip(cut, band_files)])
    prior_bands = [index.uri(f"{kind}_bands", c) for c in prior_crawls]
    found = [dask.delayed(range_candidates, nout=2)(lo_, hi_, band_files, prior_bands, params.max_bucket_pairs)
             for lo_, hi_ in key_ranges(engine.key_ranges)]
    pairs = dd.from_delayed([f[0] for f in found], meta=_PAIRS)
    hits = dd.from_delayed([f[1] for f in found], meta=_HITS)
    sigs = dd.from_delayed([dask.delayed(unit_signatures)(sig_uri, u) for u in cut], meta=_SIGS)
    split = max(1, engine.key_ranges // 4)
    pairs = pairs.drop_duplicates(split_out=split)  # a pair found in two bands lies in two ranges
    hits = hits.drop_duplicates(split_out=split)
    sa = sigs.rename(columns={"addr": "a", "sig": "sa"})
    sb = sigs.rename(columns={"addr": "b", "sig": "sb"})
    within = pairs.merge(sa, on="a").merge(sb, on="b").map_partitions(
        _estimate, "sa", "sb", params.num_perm, lo, meta=_PAIRS.assign(value=pd.Series([], dtype="float32")))
    if prior_crawls:
        records = dd.from_delayed([dask.delayed(prior_records)(index, kind, c, k) for k, c in enumerate(prior_crawls)],
                                  meta=_PRIOR)
        across = hits.merge(records, on=["crawl", "ref"]).merge(sa, on="a").map_partitions(
            _estimate, "sa", "psig", params.num_perm, lo,
            meta=_HITS.assign(pid=pd.Series([], dtype=object), value=pd.Series([], dtype="float32")))
        within_df, across_df, n_pairs, n_hits = dask.compute(within, across, pairs.shape[0], hits.shape[0])
    else:
        within_df, n_pairs = dask.compute(within, pairs.shape[0])
        across_df, n_hits = None, 0
    return _to_rows(cut, sig_uri, ids, within_df, across_df, prior_crawls, int(n_pairs), int(n_hits))


def _to_rows(cut: list[Unit], sig_uri: str, ids: list[str], within: pd.DataFrame, across: pd.DataFrame | None,
             prior_crawls: list[str], n_pairs: int, n_hits: int) -> Candidates:
    """Addresses -> rows of the sorted ids, pairs as (i < j) sorted: what the in-process path gives."""
    wanted = pa.array(ids, pa.string())
    rows_of = [pc.index_in(read_unit(sig_uri, u, ["id"])["id"], value_set=wanted).to_numpy(zero_copy_only=False)
               for u in cut]
    base = np.r_[0, np.cumsum([len(r) for r in rows_of])].astype(np.int64)
    flat = np.concatenate(rows_of).astype(np.int64) if rows_of else np.zeros(0, np.int64)

    def row(addr: np.ndarray) -> np.ndarray:
        return flat[base[addr >> 32] + (addr & 0xFFFFFFFF)]

    a, b = row(within["a"].to_numpy(np.int64)), row(within["b"].to_numpy(np.int64))
    i, j = np.minimum(a, b), np.maximum(a, b)
    order = np.lexsort((j, i))
    pairs = np.stack([i[order], j[order]], axis=1) if len(order) else np.zeros((0, 2), np.int64)
    value = within["value"].to_numpy(np.float32)[order]
    found: list[Found] = []
    if across is not None and len(across):
        r = row(across["a"].to_numpy(np.int64))
        found = [(int(x), prior_crawls[int(c)], str(p), float(v))
                 for x, c, p, v in zip(r, across["crawl"], across["pid"], across["value"])]
    return Candidates(pairs, value, n_pairs, found, n_hits)


# -- exact dedup by hash range --------------------------------------------------------------------------
_HASH_COLUMNS = ["id", "sha256", "size", "repo", "path"]


def hex_ranges(n: int) -> list[tuple[str, str | None]]:
    """`n` ranges of lowercase hex SHA256 strings by their first 4 digits; the last is open-ended."""
    edges = [f"{k * 65536 // n:04x}" for k in range(n)]
    return [(lo, edges[k + 1] if k + 1 < n else None) for k, lo in enumerate(edges)]


def write_unit_hashes(files_uri: str, unit: Unit, dst_dir: str, n_ranges: int) -> int:
    """One unit's (id, sha256, size, repo, path) split by hash range: `<dst_dir>/range=R/unit-U.parquet`."""
    t = read_unit(files_uri, unit, _HASH_COLUMNS)
    prefix = pc.utf8_slice_codeunits(t["sha256"], 0, 4).to_pylist()
    which = np.array([int(p, 16) * n_ranges // 65536 if p else 0 for p in prefix], np.int64)
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
        work = f"{scratch_uri.rstrip('/')}/exact-{uuid.uuid4().hex[:12]}"
        try:
            cut = units(files_uri, engine.rows_per_unit)
            dask.compute(*[dask.delayed(write_unit_hashes)(files_uri, u, f"{work}/hashes", engine.key_ranges)
                           for u in cut])
            prior = [(c, index.uri("file_hashes", c)) for c in prior_crawls]
            dask.compute(*[dask.delayed(range_decisions)(r, lo, hi, work, repos_uri, prior, rule)
                           for r, (lo, hi) in enumerate(hex_ranges(engine.key_ranges))])
            fs, root = resolve(work)
            found = fs.get_file_info(pafs.FileSelector(f"{root}/decisions", allow_not_found=True))
            parts = sorted(i.path for i in found if i.path.endswith(".parquet"))
            table = pa.concat_tables([pq.read_table(p, filesystem=fs) for p in parts]) if parts \
                else DECISION_SCHEMA.empty_table()
            conn.register("engine_decisions", table)
            conn.execute("CREATE OR REPLACE TEMP TABLE decisions AS SELECT * FROM engine_decisions")
            conn.unregister("engine_decisions")
        finally:
            clear_partition(work)

    return fill
