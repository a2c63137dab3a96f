"""Repository-level dedup: exact (hash of sorted file hashes) and near (MinHash of the repo's code shingles).

The repository-level corpus keeps whole repositories, so a repository is judged as a unit:
two releases of one project that share most files are near duplicates even if every
changed file differs.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import numpy as np
import pyarrow as pa

from seedcoder_assets.core.dedup.index import DedupIndex
from seedcoder_assets.core.dedup.minhash import MinHashParams, band_keys, signatures
from seedcoder_assets.core.dedup.near import near_clusters
from seedcoder_assets.core.dedup.survivor import SurvivorOrder
from seedcoder_assets.core.ingest.archives import file_id
from seedcoder_assets.core.parquet_io import PartWriter, duckdb_source, iter_batches, read_table
from seedcoder_assets.core.runner import Verdicts, run_stage
from seedcoder_assets.core.schemas import REPO_SCHEMA
from seedcoder_assets.core.stats import LineageWriter, StageStats

DEDUPED_REPO_SCHEMA = pa.schema([*REPO_SCHEMA, ("decision", pa.string()), ("reason", pa.string()),
                                 ("survivor", pa.string()), ("similarity", pa.float32())])


def repo_signatures(code_uri: str, params: MinHashParams) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(sorted repo names, MinHash of the union of each repo's code shingles, shingle counts).

    MinHash of a union is the element-wise min of the members' MinHashes, so a repository's
    signature is folded file batch by file batch and memory holds one signature per repo.
    """
    acc: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for batch in iter_batches(code_uri, ["repo", "content"], batch_rows=1024):
        sigs, n_sh = signatures(batch.column("content").to_pylist(), params)
        for r, repo in enumerate(batch.column("repo").to_pylist()):
            if n_sh[r] == 0:
                continue
            acc[repo] = np.minimum(acc[repo], sigs[r]) if repo in acc else sigs[r].copy()
            counts[repo] = counts.get(repo, 0) + int(n_sh[r])
    names = sorted(acc)
    sig = np.stack([acc[n] for n in names]) if names else np.zeros((0, params.num_perm), np.uint32)
    return names, sig, np.array([counts[n] for n in names], np.int64)


def dedup_repos(code_uri: str, repos_uri: str, dst_uri: str, lineage: LineageWriter, params: MinHashParams,
                rule: SurvivorOrder, index: DedupIndex, prior_crawls: Sequence[str],
                conn: duckdb.DuckDBPyConnection) -> StageStats:
    """Decide every repository of the crawl: kept, `repo_exact_dup(_prior_crawl)` or `repo_near_dup(_prior_crawl)`."""
    crawl = lineage.crawl
    index.require("repo", prior_crawls)
    repos = conn.execute(f"SELECT *, '' AS path FROM {duckdb_source(repos_uri)} ORDER BY {rule.order_by()}") \
        .fetch_arrow_table()
    names, sigs, n_shingles = repo_signatures(code_uri, params)
    # Repos without files have no signature row; give them an empty file set.
    by_name = {r["repo"]: r for r in repos.drop_columns(["path"]).to_pylist()}
    known = index.known_hashes("repo_hashes", pa.array([r["repo_sha256"] for r in by_name.values()], pa.string()),
                               prior_crawls)
    fate: dict[str, tuple[str, str, float]] = {}
    first_with_hash: dict[str, str] = {}
    for r in repos.drop_columns(["path"]).to_pylist():  # already in survivor order
        h = r["repo_sha256"]
        if h in known:
            fate[r["repo"]] = ("repo_exact_dup_prior_crawl", f"{known[h][0]}:{known[h][1]}", 1.0)
        elif h in first_with_hash:
            fate[r["repo"]] = ("repo_exact_dup", first_with_hash[h], 1.0)
        else:
            first_with_hash[h] = r["repo"]
    # Near dedup among the exact survivors only.
    alive = np.array([n not in fate for n in names], bool)
    alive_names = [n for n, a in zip(names, alive) if a]
    meta = pa.table({"id": alive_names, "repo": alive_names, "path": [""] * len(alive_names),
                     "stars": [by_name[n]["stars"] for n in alive_names],
                     "pushed_at": [by_name[n]["pushed_at"] for n in alive_names]},
                    schema=pa.schema([("id", pa.string()), ("repo", pa.string()), ("path", pa.string()),
                                      ("stars", pa.int64()), ("pushed_at", pa.string())]))
    clusters, figures = near_clusters("repo", alive_names, sigs[alive], n_shingles[alive], meta, params, rule,
                                      index, prior_crawls, conn)
    for c in clusters.to_pylist():
        if c["prior_crawl"]:  # the same name may well be in the earlier crawl: it is another record
            fate[c["id"]] = ("repo_near_dup_prior_crawl", f"{c['prior_crawl']}:{c['survivor']}", c["similarity"])
        elif c["id"] != c["survivor"]:
            fate[c["id"]] = ("repo_near_dup", c["survivor"], c["similarity"])
    out_rows = []
    for r in sorted(by_name.values(), key=lambda x: x["repo"]):
        reason, survivor, sim = fate.get(r["repo"], (None, r["repo"], 1.0))
        rid = file_id(crawl, r["repo"], "")
        if reason is None:
            lineage.kept(rid, r["n_bytes"] or 0, survivor=survivor, detail=r["repo"])
        else:
            lineage.dropped(rid, reason, r["n_bytes"] or 0, cluster=survivor, survivor=survivor,
                            detail=f"{r['repo']} jaccard~{sim:.3f}")
        out_rows.append({**r, "decision": "dropped" if reason else "kept", "reason": reason,
                         "survivor": survivor, "similarity": sim})
    with PartWriter(dst_uri, DEDUPED_REPO_SCHEMA) as out:
        out.write_rows(out_rows)
    kept = [r for r in out_rows if r["decision"] == "kept"]
    index.write_hashes("repo_hashes", crawl, pa.array([r["repo_sha256"] for r in kept], pa.string()),
                       pa.array([r["repo"] for r in kept], pa.string()))
    kept_names = {k["repo"] for k in kept}
    keep_mask = np.array([n in kept_names and c > 0 for n, c in zip(names, n_shingles)], bool)
    index.write_bands("repo", crawl, [n for n, k in zip(names, keep_mask) if k], band_keys(sigs[keep_mask], params),
                      sigs[keep_mask])
    stats = lineage.close()
    stats.extra.update({f"near_{k}": v for k, v in figures.items()})
    return stats


def repo_level_files(code_uri: str, deduped_repos_uri: str, dst_uri: str, lineage: LineageWriter) -> StageStats:
    """The repository-level variant: every code file of every kept repository.

    Dropped: the files of dropped repositories, with the repository's reason (and its survivor).
    """
    repos = read_table(deduped_repos_uri, ["repo", "reason", "survivor"]).to_pylist()
    reason_of = {r["repo"]: (r["reason"], r["survivor"]) for r in repos}

    def decide(batch: pa.RecordBatch) -> Verdicts:
        repo = batch.column("repo")
        fates = [reason_of.get(r, ("repo_missing", None)) for r in repo.to_pylist()]
        reasons = [f[0] for f in fates]
        return Verdicts.from_reasons(reasons, survivor=[f[1] if f[0] else None for f in fates], detail=repo)

    return run_stage(iter_batches(code_uri, batch_rows=2048), dst_uri, lineage, decide)
