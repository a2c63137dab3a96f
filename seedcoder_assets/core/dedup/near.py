"""File-level and repository-level near dedup stages built on `minhash`.

Signatures are an output of their own; clusters are recomputed from them (and from the
survivor rule's columns), so changing the rule never re-shingles a byte.

Exact Jaccard where the estimate is unsure: pairs whose estimate lies within `exact_margin` of the
threshold are "maybe" edges. The star clustering is run optimistically (maybe = yes); only the maybe
edges it actually used to absorb a file, and the other maybe edges of the files so absorbed, are
checked on their exact Jaccard, and it is run again until it uses no unchecked edge. That final
clustering is the one all-exact verification would give (an edge it never consulted cannot change
it), at a small fraction of the exact checks, and it covers matches against earlier crawls too.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seedcoder_assets.core.dedup import minhash
from seedcoder_assets.core.dedup.index import DedupIndex
from seedcoder_assets.core.dedup.minhash import MinHashParams
from seedcoder_assets.core.dedup.survivor import SurvivorOrder
from seedcoder_assets.core.parquet_io import PartWriter, duckdb_source, iter_batches, read_rows, read_table, shard_pairs
from seedcoder_assets.core.runner import Verdicts, run_stage
from seedcoder_assets.core.schemas import CLUSTER_SCHEMA, SIGNATURE_SCHEMA
from seedcoder_assets.core.stats import LineageWriter, StageStats

if TYPE_CHECKING:
    from seedcoder_assets.core.dedup.engine import EngineParams

MAX_ROUNDS = 20  # rounds of the optimistic clustering; with the texts cached, 2-4 suffice


def compute_signatures(src_uri: str, dst_uri: str, params: MinHashParams, batch_rows: int = 1024) -> StageStats:
    """MinHash signature of every file, streamed in batches of `batch_rows`."""
    stats = StageStats("minhash_signatures")
    with PartWriter(dst_uri, SIGNATURE_SCHEMA) as out:
        for batch in iter_batches(src_uri, ["id", "content"], batch_rows):
            texts = batch.column("content")
            sigs, counts, sets = minhash.signatures_with_sets(texts, params)
            stats.rows_in += len(texts)
            stats.bytes_in += pc.sum(pc.binary_length(texts)).as_py() or 0
            out.write_table(pa.table({
                "id": batch.column("id"), "n_shingles": pa.array(counts, pa.int32()),
                "signature": pa.array([row.tobytes() for row in sigs], pa.binary()),
                "shingle_set": sets,
            }))
    stats.rows_out = stats.rows_in
    stats.extra.update(scheme=minhash.SCHEME_VERSION, num_perm=params.num_perm, ngram=params.ngram)
    return stats.finish()


def _load_small_sets(sig_uri: str, ids: list[str]) -> dict[int, np.ndarray]:
    """Row -> sorted shingle set, for the small files whose whole set was kept with the signature."""
    table = read_table(sig_uri, ["id", "shingle_set"])
    table = table.filter(pc.is_valid(table["shingle_set"]))
    rows = pc.index_in(table["id"], value_set=pa.array(ids, pa.string())).to_numpy(zero_copy_only=False)
    return {int(r): np.frombuffer(b, np.uint64) for r, b in zip(rows, table["shingle_set"].to_pylist())}


def _load_signatures(sig_uri: str, num_perm: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(ids sorted, uint32 [n, num_perm] signatures, shingle counts), read without per-row objects."""
    table = read_table(sig_uri, ["id", "n_shingles", "signature"]).sort_by("id")
    ids = table.column("id").to_pylist()
    if not ids:
        return ids, np.zeros((0, num_perm), np.uint32), np.zeros(0, np.int32)
    return ids, minhash.signature_matrix(table.column("signature"), num_perm), table.column("n_shingles").to_numpy()


def _priority(meta: pa.Table, ids: list[str], rule: SurvivorOrder, conn: duckdb.DuckDBPyConnection) -> np.ndarray:
    """Row indices of `ids` in survivor order under `rule`."""
    conn.register("meta", meta)
    ordered = conn.execute(f"SELECT id FROM meta ORDER BY {rule.order_by()}, id").fetch_arrow_table()["id"]
    conn.unregister("meta")
    rows = pc.index_in(ordered, value_set=pa.array(ids, pa.string())).to_numpy(zero_copy_only=False)
    return rows[rows >= 0].astype(np.int64) if len(rows) else np.zeros(0, np.int64)


@dataclass(frozen=True)
class Content:
    """Where the text of records lives, for exact checks: this crawl's files and an earlier crawl's."""

    files_uri: str
    prior_files: Callable[[str], str] | None = None  # crawl -> its files partition


Ref = tuple[str, str]  # (files partition uri, record id)


class ShingleSets:
    """Exact shingle sets of records, read from their partitions on demand and kept for later rounds.

    Pairs are served in blocks touching at most `exact_block_files` records, and sets that are not
    asked for are let go once more than `exact_cache_shingles` are held, so memory stays bounded.
    Each read takes only the row groups that hold a requested record.
    """

    def __init__(self, params: MinHashParams, fixed: dict[Ref, np.ndarray] | None = None) -> None:
        self.params, self.capacity = params, params.exact_block_files
        self.fixed = fixed or {}  # small files' sets, kept with their signatures: never read, never let go
        self.sets: dict[Ref, np.ndarray] = {}
        self.reads = 0

    def get(self, ref: Ref) -> np.ndarray | None:
        return self.fixed.get(ref, self.sets.get(ref))

    def load(self, refs: set[Ref]) -> None:
        missing = {r for r in refs if r not in self.sets and r not in self.fixed}
        if not missing:
            return
        if sum(len(s) for s in self.sets.values()) > self.params.exact_cache_shingles:
            self.sets = {r: s for r, s in self.sets.items() if r in refs}
        by_uri: dict[str, list[str]] = {}
        for uri, id_ in missing:
            by_uri.setdefault(uri, []).append(id_)
        for uri, wanted in by_uri.items():
            rows = read_rows(uri, wanted, ["content"])
            self.reads += 1
            for id_, s in zip(rows["id"].to_pylist(), minhash.shingle_sets(rows["content"], self.params)):
                self.sets[(uri, id_)] = s

    def jaccard(self, pairs: Sequence[tuple[Ref, Ref]]) -> np.ndarray:
        """Exact Jaccard of each pair (0.0 for a record that is no longer there)."""
        out = np.zeros(len(pairs), np.float32)
        order = sorted(range(len(pairs)), key=lambda k: pairs[k])
        start = 0
        while start < len(order):  # blocks of pairs whose records fit the capacity together
            block, refs = [], set()
            while start < len(order):
                a, b = pairs[order[start]]
                new = {r for r in (a, b) if r not in refs and r not in self.fixed}
                if block and len(refs) + len(new) > self.capacity:
                    break
                block.append(order[start])
                refs |= new
                start += 1
            self.load(refs)
            for k in block:
                x, y = (self.get(r) for r in pairs[k])
                out[k] = minhash.exact_jaccard(x, y) if x is not None and y is not None else 0.0
        return out


@dataclass
class PriorMatches:
    """Rows of this crawl that duplicate a record an earlier crawl kept: (crawl, id, similarity) each."""

    match: dict[int, tuple[str, str, float]]
    candidates: int = 0
    exact_checked: int = 0


Found = tuple[int, str, str, float]  # (row of this crawl, earlier crawl, its record id, estimated Jaccard)


@dataclass
class Candidates:
    """What LSH proposes for one crawl, with estimated Jaccard at or above the lower decision bound:
    pairs of its rows, and matches of its rows among the records earlier crawls kept. Found in-process
    (`local_candidates`) or on a distributed engine (core/dedup/distributed.py); decided alike."""

    pairs: np.ndarray  # int64 [m, 2], rows i < j, sorted
    value: np.ndarray  # float32 [m] estimated Jaccard (exact where pair_exact)
    total_pairs: int  # candidate pairs before the estimate
    prior_found: list[Found]  # (exact Jaccard where prior_exact)
    prior_candidates: int  # (row, earlier record) candidates before the estimate
    pair_exact: np.ndarray | None = None  # bool [m]: value is the exact Jaccard already
    prior_exact: np.ndarray | None = None  # bool [len(prior_found)]: likewise


def local_candidates(kind: str, ids: list[str], sigs: np.ndarray, n_shingles: np.ndarray, params: MinHashParams,
                     index: DedupIndex, prior_crawls: Sequence[str], lo: float) -> Candidates:
    """Candidates of one crawl in this process: the crawl's band keys sorted together, and probed against
    each earlier crawl's kept keys."""
    keys = minhash.band_keys(sigs, params)
    valid = n_shingles > 0
    pairs = minhash.candidate_pairs(keys, valid, params.max_bucket_pairs, minhash.doc_keys(ids))
    value = minhash.pair_similarity(sigs, pairs)
    found: list[Found] = []
    prior_candidates = 0
    valid_rows = np.flatnonzero(valid)
    for crawl, local, refs in index.band_hits(kind, keys[valid_rows], prior_crawls):
        rows = valid_rows[local]
        uniq, inverse = np.unique(refs, return_inverse=True)
        pids, psigs = index.records(kind, crawl, uniq, params.num_perm)
        est = minhash.similarity(sigs[rows], psigs[inverse])
        prior_candidates += len(rows)
        found += [(r, crawl, pids[pi], e) for r, pi, e in zip(rows.tolist(), inverse.tolist(), est.tolist()) if e >= lo]
    ok = value >= lo
    return Candidates(pairs[ok], value[ok], len(pairs), found, prior_candidates)


def prior_matches(kind: str, ids: list[str], sigs: np.ndarray, n_shingles: np.ndarray, params: MinHashParams,
                  index: DedupIndex, prior_crawls: Sequence[str], content: Content | None) -> PriorMatches:
    """Each row's best match among the records earlier crawls kept (earlier survivors are final)."""
    lo, _ = _band(params, content)
    found = local_candidates(kind, ids, sigs, n_shingles, params, index, prior_crawls, lo)
    return resolve_prior(found.prior_found, found.prior_candidates, ids, params, prior_crawls, content)


def unsure_prior(found: list[Found], hi: float) -> list[int]:
    """Positions in `found` whose exact Jaccard decides: below `hi`, for a row without a sure match."""
    sure_rows = {r for r, _, _, e in found if e >= hi}
    return [k for k, f in enumerate(found) if f[3] < hi and f[0] not in sure_rows]


def resolve_prior(found: list[Found], candidates: int, ids: list[str], params: MinHashParams,
                  prior_crawls: Sequence[str], content: Content | None,
                  exact: np.ndarray | None = None) -> PriorMatches:
    """Each row's best match among `found`: estimates at or above threshold + margin are taken; those
    within the margin are decided on their exact Jaccard when `content` can read both texts (or when
    `exact` says `found` holds it already), on the estimate otherwise. Ties go to the earlier crawl, then
    the smaller id."""
    _, hi = _band(params, content)
    rank = {c: i for i, c in enumerate(prior_crawls)}
    checked = [k for k in unsure_prior(found, hi) if exact is None or not exact[k]]
    unsure = [found[k] for k in checked]
    value = {(r, c, p): e for r, c, p, e in found}
    if unsure and content is not None and content.prior_files is not None:
        jaccard = ShingleSets(params).jaccard([((content.files_uri, ids[r]), (content.prior_files(c), p))
                                               for r, c, p, _ in unsure])
        value.update({(r, c, p): float(x) for (r, c, p, _), x in zip(unsure, jaccard)})
    best: dict[int, tuple[str, str, float]] = {}
    for (r, c, p), v in value.items():
        if v < params.threshold:
            continue
        if r not in best or (-v, rank[c], p) < (-best[r][2], rank[best[r][0]], best[r][1]):
            best[r] = (c, p, v)
    done_elsewhere = int(exact.sum()) if exact is not None else 0
    return PriorMatches(best, candidates, done_elsewhere + (len(unsure) if content is not None and content.prior_files
                                                            else 0))


def _band(params: MinHashParams, content: Content | None) -> tuple[float, float]:
    """Estimates below `lo` are no, at or above `hi` yes; in between unsure (only with exact checks)."""
    if content is None:
        return params.threshold, params.threshold
    return params.threshold - params.exact_margin, params.threshold + params.exact_margin


def near_clusters(kind: str, ids: list[str], sigs: np.ndarray | None, n_shingles: np.ndarray, meta: pa.Table,
                  params: MinHashParams, rule: SurvivorOrder, index: DedupIndex, prior_crawls: Sequence[str],
                  conn: duckdb.DuckDBPyConnection, content: Content | None = None,
                  small_sets: dict[int, np.ndarray] | None = None,
                  candidates: Callable[[float, float], Candidates] | None = None) -> tuple[pa.Table, dict[str, Any]]:
    """Verified star clusters of one crawl, including matches against earlier crawls.

    Args:
        sigs: the rows' signatures (None when `candidates` finds the candidates elsewhere).
        candidates: (lower, upper estimate bound) -> the crawl's candidates; None: `local_candidates`.

    Returns:
        (cluster rows: one per member of every cluster of size >= 2, with the rule's inputs;
         figures: candidate, unsure and exactly checked pair counts, rounds, cluster-size histogram).
    """
    index.require(kind, prior_crawls)
    n = len(ids)
    lo, hi = _band(params, content)
    started = time.perf_counter()
    if candidates is None:
        assert sigs is not None
        found = local_candidates(kind, ids, sigs, n_shingles, params, index, prior_crawls, lo)
    else:
        found = candidates(lo, hi)
    candidates_s = time.perf_counter() - started
    pairs, value = found.pairs, found.value.copy()
    unknown = value < hi  # empty when there is no exact check (lo == hi)
    if found.pair_exact is not None:
        unknown &= ~found.pair_exact
    prior = resolve_prior(found.prior_found, found.prior_candidates, ids, params, prior_crawls, content,
                          found.prior_exact)
    prior_check_s = time.perf_counter() - started - candidates_s
    pre_dropped = np.zeros(n, bool)
    pre_dropped[list(prior.match)] = True
    priority = _priority(meta, ids, rule, conn)
    exact_checked, rounds = int(found.pair_exact.sum()) if found.pair_exact is not None else 0, 0
    fixed = {(content.files_uri, ids[r]): s for r, s in (small_sets or {}).items()} if content else {}
    sets = ShingleSets(params, fixed)
    component = minhash.components(n, pairs) if unknown.any() else np.zeros(n, np.int64)
    while True:
        rounds += 1
        usable = np.flatnonzero(unknown | (value >= params.threshold))  # optimistic: unsure edges count
        survivor, sim, via = minhash.star_clusters(n, priority, pairs[usable], value[usable], pre_dropped)
        used = usable[via[via >= 0]]
        todo = used[unknown[used]]
        if not len(todo):
            break
        if rounds >= MAX_ROUNDS:  # left to the estimate: never seen on real crawls, bounded all the same
            unknown[:] = False
            continue
        assert content is not None  # unknown edges exist only with exact checks
        # Read every text of the components those edges lie in, once (within a memory budget): from the
        # second round on, every unsure edge of a component that is still changing is checked, on CPU only.
        touched = np.isin(component, component[pairs[todo, 0]])
        rows = [r for r in np.flatnonzero(touched).tolist() if r not in (small_sets or {})]
        cached = n_shingles[rows].sum() <= params.exact_cache_shingles
        if cached:
            sets.load({(content.files_uri, ids[r]) for r in rows})
        if cached and rounds >= 2:
            todo = np.flatnonzero(unknown & touched[pairs[:, 0]])
        else:  # the files absorbed through unsure edges go elsewhere if an edge fails: check their other ones too
            absorbed = np.zeros(n, bool)
            absorbed[np.where(pairs[todo, 0] == survivor[pairs[todo, 0]], pairs[todo, 1], pairs[todo, 0])] = True
            is_survivor = survivor == np.arange(n)
            near = unknown & ((absorbed[pairs[:, 0]] & is_survivor[pairs[:, 1]]) |
                              (absorbed[pairs[:, 1]] & is_survivor[pairs[:, 0]]))
            todo = np.union1d(todo, np.flatnonzero(near))
        value[todo] = sets.jaccard([((content.files_uri, ids[a]), (content.files_uri, ids[b]))
                                    for a, b in pairs[todo].tolist()])
        unknown[todo] = False
        exact_checked += len(todo)
    table = _cluster_rows(ids, survivor, sim, prior, meta)
    sizes = Counter(pc.value_counts(table["cluster"]).field("counts").to_pylist()) if table.num_rows else Counter()
    figures = {"candidate_pairs": int(found.total_pairs), "pairs_near_threshold_or_above": int(len(pairs)),
               "exact_checked_pairs": int(exact_checked), "clustering_rounds": rounds, "exact_text_reads": sets.reads,
               "prior_crawl_candidates": prior.candidates, "prior_crawl_exact_checked": prior.exact_checked,
               "prior_crawl_matches": len(prior.match), "cluster_sizes": dict(sorted(sizes.items())),
               "files_without_shingles": int((n_shingles <= 0).sum())}
    # Where the time went: finding candidates (fans out on the engine), the exact check of matches against
    # earlier crawls, and the clustering with its exact checks (both in this process).
    timings = {"candidates_s": candidates_s, "prior_exact_check_s": prior_check_s,
               "clustering_s": time.perf_counter() - started - candidates_s - prior_check_s}
    return table, {**figures, "seconds": {k: round(v, 2) for k, v in timings.items()}}


def _cluster_rows(ids: list[str], survivor: np.ndarray, sim: np.ndarray, prior: PriorMatches,
                  meta: pa.Table) -> pa.Table:
    """One row per member of every cluster of size >= 2 (a survivor of this crawl is a member too)."""
    n = len(ids)
    rows: list[tuple[str, int, float, str | None]] = []  # (cluster head, row, similarity, prior crawl)
    for r, (crawl, pid, v) in prior.match.items():
        rows.append((pid, r, v, crawl))
    dropped = np.flatnonzero((survivor >= 0) & (survivor != np.arange(n)))
    for r in dropped.tolist():
        rows.append((ids[survivor[r]], r, float(sim[r]), None))
    for head in np.unique(survivor[dropped]).tolist():
        rows.append((ids[head], head, 1.0, None))
    info = meta.filter(pc.is_in(meta["id"], pa.array([ids[r] for _, r, _, _ in rows], pa.string())))
    carried = [c for c in ("stars", "pushed_at", "repo", "path") if c in meta.column_names]  # a source's own
    by_id = dict(zip(info["id"].to_pylist(), info.select(carried).to_pylist()))
    out = [{"cluster": head, "id": ids[r], "survivor": head, "similarity": v, "prior_crawl": crawl,
            **by_id.get(ids[r], {})} for head, r, v, crawl in sorted(rows, key=lambda x: (x[0], ids[x[1]]))]
    return pa.Table.from_pylist(out, schema=CLUSTER_SCHEMA)


def file_near_clusters(sig_uri: str, files_uri: str, repos_uri: str, dst_uri: str, crawl: str,
                       params: MinHashParams, rule: SurvivorOrder, index: DedupIndex,
                       prior_crawls: Sequence[str], conn: duckdb.DuckDBPyConnection,
                       prior_files: Callable[[str], str] | None = None,
                       engine: tuple[EngineParams, str] | None = None) -> StageStats:
    """Write the near-duplicate clusters of a crawl's files (one row per member).

    Args:
        prior_files: crawl -> the files partition its index entries came from (for exact checks of
            matches against earlier crawls); None checks those on the estimate alone.
        engine: (fan-out parameters, scratch URI): candidates found on the current Dask scheduler
            (core/dedup/distributed.py) instead of in this process; the same clusters either way.
    """
    stats = StageStats("near_dup_clusters")
    found = None
    if engine is None:
        ids, sigs, n_sh = _load_signatures(sig_uri, params.num_perm)
    else:  # this process holds ids and counts, never the signatures
        from seedcoder_assets.core.dedup.distributed import distributed_candidates

        table = read_table(sig_uri, ["id", "n_shingles"]).sort_by("id")
        ids, sigs, n_sh = table["id"].to_pylist(), None, table["n_shingles"].to_numpy()
        found = distributed_candidates("file", sig_uri, ids, params, index, prior_crawls, engine[1], engine[0],
                                       Content(files_uri, prior_files))
    meta = conn.execute(f"SELECT f.id, f.repo, f.path, r.stars, r.pushed_at FROM {duckdb_source(files_uri)} f "
                        f"LEFT JOIN (SELECT repo, stars, pushed_at FROM {duckdb_source(repos_uri)}) r USING (repo)"
                        ).fetch_arrow_table()
    table, figures = near_clusters("file", ids, sigs, n_sh, meta, params, rule, index, prior_crawls, conn,
                                   Content(files_uri, prior_files), _load_small_sets(sig_uri, ids), found)
    figures["engine"] = "in-process" if engine is None else "dask"
    with PartWriter(dst_uri, CLUSTER_SCHEMA) as out:
        out.write_table(table)
    stats.rows_in, stats.rows_out = len(ids), table.num_rows
    stats.extra.update(figures)
    return stats.finish()


def apply_near_dedup(files_uri: str, clusters_uri: str, sig_uri: str, dst_uri: str, lineage: LineageWriter,
                     params: MinHashParams, index: DedupIndex) -> StageStats:
    """Drop every cluster member that is not its survivor; index the kept files' bands.

    Dropped: `near_dup` (survivor in this crawl), `near_dup_prior_crawl` (in an earlier crawl).
    """
    clusters = read_table(clusters_uri).to_pylist()
    fate = {r["id"]: r for r in clusters if r["prior_crawl"] or r["id"] != r["survivor"]}

    def decide(batch: pa.RecordBatch) -> Verdicts:
        hit = [fate.get(i) for i in batch.column("id").to_pylist()]
        return Verdicts.from_reasons(
            [None if c is None else "near_dup_prior_crawl" if c["prior_crawl"] else "near_dup" for c in hit],
            cluster=[c and c["cluster"] for c in hit], survivor=[c and c["survivor"] for c in hit],
            detail=[c and f"jaccard~{c['similarity']:.3f}" + (f" crawl={c['prior_crawl']}" if c["prior_crawl"] else "")
                    for c in hit])

    for src, dst in shard_pairs(files_uri, dst_uri):  # each shard's survivors stay in their shard
        run_stage(iter_batches(src, batch_rows=1024), dst, lineage, decide, close=False)
    ids, sigs, n_sh = _load_signatures(sig_uri, params.num_perm)
    keep = np.array([i not in fate and n > 0 for i, n in zip(ids, n_sh)], bool)
    index.write_bands("file", lineage.crawl, [i for i, k in zip(ids, keep) if k],
                      minhash.band_keys(sigs[keep], params), sigs[keep])
    return lineage.close()
