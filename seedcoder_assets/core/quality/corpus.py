"""Scores for every file of a partition, and the corpora they select: file level and repository level."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seedcoder_assets.core.object_store import duckdb_connect
from seedcoder_assets.core.parquet_io import PartWriter, duckdb_source, iter_batches, slices_by_bytes
from seedcoder_assets.core.quality.scorer import Scorer
from seedcoder_assets.core.runner import Verdicts, run_stage
from seedcoder_assets.core.schemas import FILE_SCHEMA
from seedcoder_assets.core.stats import LineageWriter, StageStats

SCORE_SCHEMA: Final[pa.Schema] = pa.schema([
    ("id", pa.string()), ("sha256", pa.string()), ("language", pa.string()), ("size", pa.int64()),
    ("score", pa.float32()), ("scorer_version", pa.string()),
])
SCORED_FILE_SCHEMA: Final[pa.Schema] = FILE_SCHEMA.append(pa.field("score", pa.float32())).append(
    pa.field("scorer_version", pa.string()))
REPO_QUALITY_SCHEMA: Final[pa.Schema] = pa.schema([
    ("crawl", pa.string()), ("repo", pa.string()), ("n_files", pa.int64()), ("n_bytes", pa.int64()),
    ("mean_score", pa.float64()), ("min_score", pa.float32()), ("max_score", pa.float32()),
    ("scorer_version", pa.string()),
])
LOW_QUALITY: Final[str] = "low_quality_score"


@dataclass
class ScoringStats:
    files: int = 0
    bytes: int = 0
    tokens: int = 0
    seconds: float = 0.0
    reused: int = 0  # repo-level files whose content was already scored at file level
    histogram: dict[int, int] = field(default_factory=dict)  # floor(score) -> files

    @property
    def files_per_s(self) -> float:
        return self.files / self.seconds if self.seconds else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    def add_scores(self, scores: np.ndarray) -> None:
        for bucket, n in zip(*np.unique(np.floor(scores).astype(int), return_counts=True)):
            self.histogram[int(bucket)] = self.histogram.get(int(bucket), 0) + int(n)


def score_files(scorer: Scorer, src_uri: str, dst_uri: str, batch_size: int = 32,
                chunk_rows: int = 1024) -> ScoringStats:
    """A score for every file of `src_uri`, streamed chunk by chunk (sorted by length inside a chunk)."""
    stats, start, tokens0 = ScoringStats(), time.perf_counter(), scorer.tokens_seen
    with PartWriter(dst_uri, SCORE_SCHEMA) as out:
        for batch in iter_batches(src_uri, ["id", "sha256", "language", "size", "content"], batch_rows=chunk_rows):
            items = list(zip(batch.column("language").to_pylist(), batch.column("content").to_pylist()))
            scores = scorer.score(items, batch_size=batch_size)
            out.write_table(pa.table({
                "id": batch.column("id"), "sha256": batch.column("sha256"), "language": batch.column("language"),
                "size": batch.column("size"), "score": pa.array(scores, pa.float32()),
                "scorer_version": pa.array([scorer.version] * batch.num_rows, pa.string())}))
            stats.files += batch.num_rows
            stats.bytes += int(pc.sum(batch.column("size")).as_py() or 0)
            stats.add_scores(scores)
    stats.tokens, stats.seconds = scorer.tokens_seen - tokens0, time.perf_counter() - start
    return stats


def score_threshold(scores_uri: str, min_score: float | None, keep_quantile: float | None) -> float:
    """The cut: a fixed score, or the score that keeps the top `keep_quantile` of the files."""
    if keep_quantile is None:
        return float(min_score if min_score is not None else 0.0)
    con = duckdb_connect()
    cut = con.execute(f"SELECT quantile_cont(score, ?) FROM {duckdb_source(scores_uri)}",
                      [1.0 - keep_quantile]).fetchone()[0]
    con.close()
    return float(cut) if cut is not None else 0.0


def select_quality_files(src_uri: str, scores_uri: str, dst_uri: str, lineage: LineageWriter, threshold: float,
                         scorer_version: str, memory_limit: str = "1GB") -> StageStats:
    """Files scoring at least `threshold`; every file gets a lineage row with its score and the scorer version.

    A file without a score (scores older than the files) is dropped as `unscored`, never passed silently.
    """
    con = duckdb_connect(memory_limit=memory_limit)
    reader = con.execute(f"""
        SELECT f.*, q.score, q.scorer_version FROM {duckdb_source(src_uri)} f
        LEFT JOIN (SELECT id, score, scorer_version FROM {duckdb_source(scores_uri)}) q USING (id)
    """).fetch_record_batch(2048)
    detail = f"threshold={threshold:.3f} scorer={scorer_version}"

    def decide(batch: pa.RecordBatch) -> Verdicts:
        score = batch.column("score")
        reason = pc.if_else(pc.is_null(score), "unscored",
                            pc.if_else(pc.greater_equal(score, threshold), pa.scalar(None, pa.string()), LOW_QUALITY))
        return Verdicts(pc.is_null(reason).to_numpy(zero_copy_only=False), reason, score=score, detail=detail)

    stats = run_stage((b for big in reader for b in slices_by_bytes(big, 8 << 20)), dst_uri, lineage, decide,
                      SCORED_FILE_SCHEMA)
    con.close()
    return stats


def score_repo_level(scorer: Scorer, repo_files_uri: str, file_scores_uri: str, files_dst: str,
                     repos_dst: str, lineage: LineageWriter, batch_size: int = 32,
                     memory_limit: str = "1GB") -> tuple[StageStats, ScoringStats]:
    """Repository-level files with a score each, and each repository's mean file score.

    Scores depend only on content, so a file whose sha256 was scored at file level reuses that
    score; the rest (near-duplicate or syntax-dropped copies kept whole at repository level) are
    scored here with the same scorer version.
    """
    scoring, start, tokens0 = ScoringStats(), time.perf_counter(), scorer.tokens_seen
    con = duckdb_connect(memory_limit=memory_limit)
    reader = con.execute(f"""
        SELECT f.*, k.score AS known FROM {duckdb_source(repo_files_uri)} f
        LEFT JOIN (SELECT sha256, any_value(score) AS score FROM {duckdb_source(file_scores_uri)}
                   WHERE scorer_version = ? GROUP BY sha256) k USING (sha256)
    """, [scorer.version]).fetch_record_batch(1024)

    def decide(batch: pa.RecordBatch) -> Verdicts:
        scores = np.asarray(batch.column("known").to_numpy(zero_copy_only=False), dtype=np.float32)
        todo = np.flatnonzero(np.isnan(scores))
        if len(todo):
            items = [(batch.column("language")[i].as_py(), batch.column("content")[i].as_py()) for i in todo]
            scores[todo] = scorer.score(items, batch_size=batch_size)
        scoring.reused += batch.num_rows - len(todo)
        scoring.files += batch.num_rows
        scoring.add_scores(scores)
        scored = batch.drop_columns(["known"]).append_column("score", pa.array(scores, pa.float32())) \
            .append_column("scorer_version", pa.array([scorer.version] * batch.num_rows, pa.string()))
        return Verdicts(np.ones(batch.num_rows, bool), pa.nulls(batch.num_rows, pa.string()), score=scores,
                        detail=f"scorer={scorer.version}", output=scored)

    run_stage((b for big in reader for b in slices_by_bytes(big, 8 << 20)), files_dst, lineage, decide,
              SCORED_FILE_SCHEMA, close=False)
    repos = con.execute(f"""
        SELECT crawl, repo, count(*) AS n_files, sum(size) AS n_bytes, avg(score) AS mean_score,
               min(score) AS min_score, max(score) AS max_score, any_value(scorer_version) AS scorer_version
        FROM {duckdb_source(files_dst)} GROUP BY crawl, repo ORDER BY repo
    """).fetch_arrow_table()
    con.close()
    with PartWriter(repos_dst, REPO_QUALITY_SCHEMA) as out:
        out.write_table(repos)
    scoring.tokens, scoring.seconds = scorer.tokens_seen - tokens0, time.perf_counter() - start
    return lineage.close(), scoring
