"""What every earlier crawl kept, as Parquet data: file and repository hashes, LSH band keys, signatures.

Each crawl writes its own partition of each table (`<root>/<table>/crawl=<crawl>/`), so crawls
and shards write concurrently, re-materializing a crawl replaces exactly its entries, and the same
repository name in two crawls is two entries. A new crawl reads the tables of the crawls registered
before it: keys only (a sorted int64 column of band keys, a string column of hashes), never content,
so its cost is its own size plus a scan of the history's keys (megabytes per crawl).

A crawl may only be deduplicated once every earlier crawl has written its entries; otherwise its
duplicates of those crawls would survive unseen (`require`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seedcoder_assets.core.dedup.minhash import signature_matrix, sorted_unique
from seedcoder_assets.core.parquet_io import PartWriter, dataset, is_complete, read_table

HASH_SCHEMA = pa.schema([("sha256", pa.string()), ("ident", pa.string())])
BAND_SCHEMA = pa.schema([("key", pa.int64()), ("ref", pa.int32())])
RECORD_SCHEMA = pa.schema([("ref", pa.int32()), ("id", pa.string()), ("signature", pa.binary())])

ROWS_PER_GROUP = 65_536  # sorted keys and hashes in small row groups: a range read (core/dedup/distributed.py) prunes

# table names per kind: what a crawl must have written before a later crawl may probe it
TABLES = {"file_hashes": ("file_hashes",), "repo": ("repo_hashes", "repo_bands", "repo_records"),
          "file": ("file_bands", "file_records"),
          # the commits source's own index (<index>/commits): patch hashes, and bands of the changed lines
          "commit_patches": ("commit_patches",), "commit": ("commit_bands", "commit_records"),
          # the web source's (<index>/web): text hashes, and bands of the page texts
          "web_hashes": ("web_hashes",), "web": ("web_bands", "web_records")}


def key_matches(keys: np.ndarray, refs: np.ndarray, probe: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (probe position, ref) whose probe key equals an entry's key (entries in any order)."""
    if len(keys) > 1 and not (keys[1:] >= keys[:-1]).all():  # written sorted; parts read back in order
        order = np.argsort(keys, kind="stable")
        keys, refs = keys[order], refs[order]
    # Probes searched in sorted order: random probes into a large sorted array miss the cache on every
    # step of the binary search (several times slower on millions of keys).
    order = np.argsort(probe, kind="stable")
    sorted_probe = probe[order]
    lo, hi = np.searchsorted(keys, sorted_probe, "left"), np.searchsorted(keys, sorted_probe, "right")
    count = hi - lo
    at = np.repeat(lo, count) + (np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count))
    return np.repeat(order, count), refs[at]


class PriorCrawlsNotIndexed(RuntimeError):
    """A crawl registered earlier has not written its dedup entries yet (see `DedupIndex.require`)."""

    def __init__(self, kind: str, missing: Sequence[str]) -> None:
        self.kind, self.missing = kind, list(missing)
        super().__init__(
            f"{len(self.missing)} crawl(s) registered earlier have no {kind} dedup entries yet: "
            f"{', '.join(self.missing[:10])}{' ...' if len(self.missing) > 10 else ''}. A crawl is deduplicated "
            "against every crawl registered before it, so those must be materialized first (or their partitions "
            "deleted if they will never be); then re-materialize this one.")


class DedupIndex:
    """The kept entries of every crawl under `root` (a folder or s3:// prefix)."""

    def __init__(self, root: str, max_hits_per_key: int = 64) -> None:
        self.root = root.rstrip("/")
        # A band key shared by thousands of files (a licence header, an empty __init__) must not make
        # one probe return thousands of candidates: each crawl keeps at most this many entries per key.
        self.max_hits_per_key = max_hits_per_key

    def uri(self, table: str, crawl: str) -> str:
        return f"{self.root}/{table}/crawl={crawl}"

    # -- completeness ------------------------------------------------------------------------------
    def missing(self, kind: str, prior_crawls: Sequence[str]) -> list[str]:
        """Earlier crawls whose `kind` entries are not (completely) written."""
        return [c for c in prior_crawls if not all(is_complete(self.uri(t, c)) for t in TABLES[kind])]

    def require(self, kind: str, prior_crawls: Sequence[str]) -> None:
        missing = self.missing(kind, prior_crawls)
        if missing:
            raise PriorCrawlsNotIndexed(kind, missing)

    # -- exact hashes -------------------------------------------------------------------------------
    def write_hashes(self, table: str, crawl: str, sha256: pa.Array, ident: pa.Array) -> None:
        """The hashes a crawl kept (`file_hashes`: sha256 -> file id; `repo_hashes`: -> repository)."""
        t = pa.table({"sha256": sha256, "ident": ident}, schema=HASH_SCHEMA)
        with PartWriter(self.uri(table, crawl), HASH_SCHEMA, rows_per_group=ROWS_PER_GROUP) as out:
            out.write_table(t.sort_by([("sha256", "ascending"), ("ident", "ascending")]))

    def known_hashes(self, table: str, hashes: pa.Array, prior_crawls: Sequence[str]) -> dict[str, tuple[str, str]]:
        """sha256 -> (crawl, ident) of the first earlier crawl that kept it (smallest ident within it)."""
        out: dict[str, tuple[str, str]] = {}
        if not len(hashes) or not prior_crawls:
            return out
        wanted = pc.unique(hashes)
        for crawl in prior_crawls:  # registration order: the earliest crawl wins
            t = read_table(self.uri(table, crawl))
            hit = t.filter(pc.is_in(t["sha256"], value_set=wanted))
            for sha, ident in zip(hit["sha256"].to_pylist(), hit["ident"].to_pylist()):  # sorted by ident
                out.setdefault(sha, (crawl, ident))
        return out

    # -- LSH bands and signatures -------------------------------------------------------------------
    def write_bands(self, kind: str, crawl: str, ids: Sequence[str], keys: np.ndarray, sigs: np.ndarray) -> None:
        """Band keys (sorted, at most `max_hits_per_key` entries per key) and signatures of kept records."""
        n, bands = keys.shape if len(ids) else (0, 0)
        flat = keys.reshape(-1)
        refs = np.repeat(np.arange(n, dtype=np.int32), bands)
        order = np.lexsort((refs, flat))
        flat, refs = flat[order], refs[order]
        if len(flat):
            first = np.r_[True, flat[1:] != flat[:-1]]
            start = np.maximum.accumulate(np.where(first, np.arange(len(flat)), 0))
            keep = np.arange(len(flat)) - start < self.max_hits_per_key
            flat, refs = flat[keep], refs[keep]
        with PartWriter(self.uri(f"{kind}_records", crawl), RECORD_SCHEMA, rows_per_group=ROWS_PER_GROUP) as out:
            out.write_table(pa.table({"ref": pa.array(np.arange(n, dtype=np.int32)), "id": pa.array(list(ids), pa.string()),
                                      "signature": pa.array([s.tobytes() for s in sigs], pa.binary())},
                                     schema=RECORD_SCHEMA))
        with PartWriter(self.uri(f"{kind}_bands", crawl), BAND_SCHEMA, rows_per_group=ROWS_PER_GROUP) as out:
            out.write_table(pa.table({"key": pa.array(flat), "ref": pa.array(refs)}, schema=BAND_SCHEMA))

    def band_hits(self, kind: str, keys: np.ndarray, prior_crawls: Sequence[str]
                  ) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """Per earlier crawl with hits: (crawl, probe row per hit, that crawl's record ref per hit).

        Args:
            kind: "file" or "repo".
            keys: int64 [n, bands] band keys of this crawl's records (row = probe row).
            prior_crawls: crawls registered before this one, in registration order.
        """
        out = []
        n, bands = keys.shape
        if not n or not prior_crawls:
            return out
        flat, rows = keys.reshape(-1), np.repeat(np.arange(n, dtype=np.int64), bands)
        for crawl in prior_crawls:
            t = read_table(self.uri(f"{kind}_bands", crawl))
            probe, refs = key_matches(t["key"].to_numpy(), t["ref"].to_numpy(), flat)
            if len(probe):
                code = sorted_unique(rows[probe] * np.int64(1 << 32) + refs.astype(np.int64))
                out.append((crawl, code >> 32, code & 0xFFFFFFFF))
        return out

    def records(self, kind: str, crawl: str, refs: np.ndarray, num_perm: int,
                ref_range: tuple[int, int] | None = None) -> tuple[list[str], np.ndarray]:
        """(ids, uint32 [len(refs), num_perm] signatures) of an earlier crawl's records `refs` (all within
        `ref_range` when given: only the row groups holding that range are read)."""
        uri = self.uri(f"{kind}_records", crawl)
        if ref_range is None:
            t = read_table(uri)
        else:
            t = dataset(uri).to_table(filter=(pc.field("ref") >= ref_range[0]) & (pc.field("ref") < ref_range[1]))
        t = t.sort_by("ref")
        position = pc.index_in(pa.array(refs, pa.int32()), value_set=t["ref"])
        picked = t.take(position)
        return picked["id"].to_pylist(), signature_matrix(picked["signature"], num_perm)
