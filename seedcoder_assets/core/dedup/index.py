"""Persisted hash and LSH-band indexes over everything kept from earlier crawls.

A new crawl looks up its own keys (B-tree probes), so its cost grows with the new crawl,
not with the history. Entries carry their crawl; a lookup names the crawls registered
before the one being processed, so re-running an old crawl after newer ones landed
gives the same answer. Re-indexing a crawl first deletes its entries (idempotent).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

_SCHEMA = """
CREATE TABLE IF NOT EXISTS file_hash (sha256 TEXT NOT NULL, crawl TEXT NOT NULL, id TEXT NOT NULL,
  PRIMARY KEY (sha256, crawl)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS repo_hash (sha256 TEXT NOT NULL, crawl TEXT NOT NULL, repo TEXT NOT NULL,
  PRIMARY KEY (sha256, crawl, repo)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS band (kind TEXT NOT NULL, band INTEGER NOT NULL, key INTEGER NOT NULL,
  crawl TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (kind, band, key, crawl, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS signature (kind TEXT NOT NULL, id TEXT NOT NULL, crawl TEXT NOT NULL,
  sig BLOB NOT NULL, PRIMARY KEY (kind, id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS band_by_crawl ON band (crawl);
CREATE INDEX IF NOT EXISTS signature_by_crawl ON signature (crawl);
CREATE INDEX IF NOT EXISTS file_hash_by_crawl ON file_hash (crawl);
CREATE INDEX IF NOT EXISTS repo_hash_by_crawl ON repo_hash (crawl);
"""

_CHUNK = 50_000


class DedupIndex:
    """SQLite-backed index of kept file hashes, repo hashes, LSH band keys and signatures."""

    def __init__(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(str(path), timeout=600, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(_SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> DedupIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- lookups --------------------------------------------------------------------------------
    def _prior(self, prior_crawls: Sequence[str]) -> None:
        self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS prior (crawl TEXT PRIMARY KEY)")
        self.conn.execute("DELETE FROM prior")
        self.conn.executemany("INSERT OR IGNORE INTO prior VALUES (?)", [(c,) for c in prior_crawls])

    def known_file_hashes(self, hashes: Sequence[str], prior_crawls: Sequence[str]) -> dict[str, tuple[str, str]]:
        """sha256 -> (crawl, id) of the first earlier crawl that kept a file with that hash."""
        return self._lookup_hash("file_hash", "id", hashes, prior_crawls)

    def known_repo_hashes(self, hashes: Sequence[str], prior_crawls: Sequence[str]) -> dict[str, tuple[str, str]]:
        return self._lookup_hash("repo_hash", "repo", hashes, prior_crawls)

    def _lookup_hash(self, table: str, col: str, hashes: Sequence[str],
                     prior_crawls: Sequence[str]) -> dict[str, tuple[str, str]]:
        if not prior_crawls or not hashes:
            return {}
        self._prior(prior_crawls)
        order = {c: i for i, c in enumerate(prior_crawls)}
        out: dict[str, tuple[str, str]] = {}
        self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS probe (h TEXT PRIMARY KEY)")
        for i in range(0, len(hashes), _CHUNK):
            self.conn.execute("DELETE FROM probe")
            self.conn.executemany("INSERT OR IGNORE INTO probe VALUES (?)", [(h,) for h in hashes[i:i + _CHUNK]])
            rows = self.conn.execute(
                # CROSS JOIN pins the probe table as the outer loop: one primary-key seek per probe.
                # Left to itself the planner may walk the history by crawl: O(history x probes).
                f"SELECT t.sha256, t.crawl, t.{col} FROM probe p CROSS JOIN {table} t ON t.sha256 = p.h "
                "WHERE t.crawl IN (SELECT crawl FROM prior)"
            ).fetchall()
            for h, crawl, ident in rows:  # earliest crawl wins, then smallest id: deterministic
                if h not in out or (order[crawl], ident) < (order[out[h][0]], out[h][1]):
                    out[h] = (crawl, ident)
        return out

    def band_candidates(self, kind: str, band_keys: np.ndarray, ids: Sequence[str],
                        prior_crawls: Sequence[str]) -> list[tuple[int, str, str]]:
        """(row in `ids`, prior id, prior crawl) for every band collision with an earlier crawl.

        Args:
            kind: "file" or "repo".
            band_keys: int64 array [n, bands] of this crawl's LSH band keys.
            ids: the n record ids, in row order.
            prior_crawls: crawls registered before this one.
        """
        if not prior_crawls or len(ids) == 0:
            return []
        self._prior(prior_crawls)
        self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS bprobe (band INTEGER, key INTEGER, row INTEGER)")
        out: set[tuple[int, str, str]] = set()
        n, bands = band_keys.shape
        rows_per_chunk = max(1, _CHUNK // bands)
        for start in range(0, n, rows_per_chunk):
            self.conn.execute("DELETE FROM bprobe")
            block = band_keys[start:start + rows_per_chunk]
            self.conn.executemany(
                "INSERT INTO bprobe VALUES (?, ?, ?)",
                ((b, int(block[r, b]), start + r) for r in range(block.shape[0]) for b in range(bands)),
            )
            out.update(self.conn.execute(
                "SELECT p.row, t.id, t.crawl FROM bprobe p CROSS JOIN band t "  # probe-driven, see above
                "ON t.kind = ? AND t.band = p.band AND t.key = p.key "
                "WHERE t.crawl IN (SELECT crawl FROM prior)", (kind,)
            ).fetchall())
        return sorted(out)

    def signatures(self, kind: str, ids: Iterable[str]) -> dict[str, bytes]:
        ids = list(ids)
        out: dict[str, bytes] = {}
        for i in range(0, len(ids), 900):
            chunk = ids[i:i + 900]
            marks = ",".join("?" * len(chunk))
            out.update(self.conn.execute(
                f"SELECT id, sig FROM signature WHERE kind = ? AND id IN ({marks})", (kind, *chunk)).fetchall())
        return out

    # -- writes ---------------------------------------------------------------------------------
    def forget_crawl(self, crawl: str, tables: Sequence[str]) -> None:
        for table in tables:
            self.conn.execute(f"DELETE FROM {table} WHERE crawl = ?", (crawl,))

    def add_file_hashes(self, crawl: str, rows: Iterable[tuple[str, str]]) -> None:
        """rows: (sha256, id) of files this crawl keeps."""
        self.conn.execute("BEGIN")
        self.conn.execute("DELETE FROM file_hash WHERE crawl = ?", (crawl,))
        self.conn.executemany("INSERT OR IGNORE INTO file_hash VALUES (?, ?, ?)",
                              ((h, crawl, i) for h, i in rows))
        self.conn.execute("COMMIT")

    def add_repo_hashes(self, crawl: str, rows: Iterable[tuple[str, str]]) -> None:
        self.conn.execute("BEGIN")
        self.conn.execute("DELETE FROM repo_hash WHERE crawl = ?", (crawl,))
        self.conn.executemany("INSERT OR IGNORE INTO repo_hash VALUES (?, ?, ?)",
                              ((h, crawl, r) for h, r in rows))
        self.conn.execute("COMMIT")

    def add_bands(self, kind: str, crawl: str, ids: Sequence[str], band_keys: np.ndarray,
                  signatures: np.ndarray) -> None:
        """Index the band keys and signatures of the records this crawl keeps."""
        self.conn.execute("BEGIN")
        self.conn.execute("DELETE FROM band WHERE kind = ? AND crawl = ?", (kind, crawl))
        self.conn.execute("DELETE FROM signature WHERE kind = ? AND crawl = ?", (kind, crawl))
        n, bands = (band_keys.shape if len(ids) else (0, 0))
        # Band by band, each sorted by key: rows arrive in primary-key order, so SQLite appends to
        # its B-tree instead of splitting random pages (~5x faster), holding one band at a time.
        for b in range(bands):
            order = np.argsort(band_keys[:, b], kind="stable")
            self.conn.executemany(
                "INSERT OR IGNORE INTO band VALUES (?, ?, ?, ?, ?)",
                ((kind, b, k, crawl, ids[r]) for k, r in zip(band_keys[order, b].tolist(), order.tolist())),
            )
        self.conn.executemany("INSERT OR REPLACE INTO signature VALUES (?, ?, ?, ?)",
                              ((kind, ids[r], crawl, signatures[r].tobytes()) for r in range(len(ids))))
        self.conn.execute("COMMIT")
