"""The high-quality corpus of one crawl, from the last round: its seeds (every round's) and the files the
last model recalled above the floor, each with its source, the round it joined in and its recall score.
Every syntax-checked file of the crawl is kept or dropped with one reason: `hard_negative` (a round
trained on it as a negative), `recalled_low_score`, or `not_selected`."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import duckdb
import numpy as np
import pyarrow as pa

from seedcoder_assets.core.checks import CheckOutcome
from seedcoder_assets.core.hq.rounds import RoundState
from seedcoder_assets.core.object_store import duckdb_connect
from seedcoder_assets.core.parquet_io import duckdb_source
from seedcoder_assets.core.runner import Verdicts, run_stage
from seedcoder_assets.core.schemas import FILE_SCHEMA
from seedcoder_assets.core.stats import LineageWriter, StageStats

HQ_FILE_SCHEMA: Final[pa.Schema] = FILE_SCHEMA.append(pa.field("score", pa.float32())).append(
    pa.field("hq_source", pa.string())).append(pa.field("hq_round", pa.int32())).append(
    pa.field("recall_score", pa.float32()))


def round_tables(rounds: list[Path]) -> tuple[pa.Table, pa.Table, pa.Table]:
    """(selected: id, source, round, p; every round's hard negatives: id; the last round's low scorers: id)."""
    last = RoundState.read(rounds[-1])
    import pyarrow.compute as pc

    new = last.recalled.filter(pc.equal(last.recalled["kind"], "new_positive"))
    selected = pa.concat_tables([
        pa.table({"id": last.seeds["id"], "source": last.seeds["source"], "round": last.seeds["round"],
                  "p": pa.nulls(last.seeds.num_rows, pa.float32())}),
        pa.table({"id": new["id"], "source": new["source"],
                  "round": pa.array([len(rounds)] * new.num_rows, pa.int32()), "p": new["p"]})])
    hard = pa.concat_tables([
        (s := RoundState.read(r)).negatives.filter(pc.starts_with(s.negatives["kind"], "hard")).select(["id"])
        for r in rounds])
    low = last.recalled.filter(pc.equal(last.recalled["kind"], "low_score")).select(["id"])
    return selected, hard, low


def select_hq_files(files_uri: str, scores_uri: str, rounds: list[Path], dst_uri: str, lineage: LineageWriter,
                    conn: duckdb.DuckDBPyConnection) -> StageStats:
    selected, hard, low = round_tables(rounds)
    conn.register("selected", selected)
    conn.register("hard", hard)
    conn.register("low", low)
    names = ", ".join(f"f.{f.name}" for f in FILE_SCHEMA)
    rows = conn.execute(f"""
        SELECT {names}, s.score, sel.source AS hq_source, sel.round AS hq_round, sel.p AS recall_score,
               h.id IS NOT NULL AS is_hard, l.id IS NOT NULL AS is_low
        FROM {duckdb_source(files_uri)} f LEFT JOIN {duckdb_source(scores_uri)} s USING (id)
        LEFT JOIN (SELECT DISTINCT ON (id) * FROM selected ORDER BY id, round) sel USING (id)
        LEFT JOIN (SELECT DISTINCT id FROM hard) h USING (id) LEFT JOIN (SELECT DISTINCT id FROM low) l USING (id)
        ORDER BY f.id""").fetch_record_batch(1024)

    def decide(batch: pa.RecordBatch) -> Verdicts:
        source = batch.column("hq_source").to_pylist()
        is_hard, is_low = batch.column("is_hard").to_pylist(), batch.column("is_low").to_pylist()
        reasons = ["hard_negative" if h else None if s is not None else "recalled_low_score" if lo else "not_selected"
                   for s, h, lo in zip(source, is_hard, is_low)]
        keep = np.array([r is None for r in reasons])
        details = [f"{s} round {r}" if s is not None else None
                   for s, r in zip(source, batch.column("hq_round").to_pylist())]
        out = pa.Table.from_batches([batch]).select([f.name for f in HQ_FILE_SCHEMA]).filter(pa.array(keep))
        return Verdicts(keep, reasons, detail=details, score=batch.column("recall_score"),
                        output=out.cast(HQ_FILE_SCHEMA))

    return run_stage(rows, dst_uri, lineage, decide, schema=HQ_FILE_SCHEMA)


def no_hard_negative(corpus_uri: str, rounds: list[Path]) -> CheckOutcome:
    """No file of the corpus was a hard negative of any round (the rounds' negatives tables, joined in DuckDB)."""
    con = duckdb_connect()
    parts = " UNION ALL ".join(f"SELECT id FROM read_parquet('{r / 'negatives.parquet'}') WHERE kind LIKE 'hard%'"
                               for r in rounds)
    found = con.execute(f"SELECT count(*) FROM {duckdb_source(corpus_uri)} WHERE id IN ({parts})").fetchone()[0]
    con.close()
    return CheckOutcome(found == 0, {"hard_negatives_in_corpus": found})


def mean_score_above_crawl(corpus_uri: str, scores_uri: str) -> CheckOutcome:
    """The corpus's mean quality score, read from the scores partition by id, is above the crawl's."""
    con = duckdb_connect()
    crawl_mean, corpus_mean, n = con.execute(f"""
        SELECT (SELECT avg(score) FROM {duckdb_source(scores_uri)}),
               avg(s.score), count(*)
        FROM {duckdb_source(corpus_uri)} c JOIN {duckdb_source(scores_uri)} s USING (id)""").fetchone()
    con.close()
    passed = n > 0 and corpus_mean is not None and crawl_mean is not None and corpus_mean > crawl_mean
    return CheckOutcome(bool(passed), {"corpus_mean": corpus_mean, "crawl_mean": crawl_mean, "files": n})


def held_out_recall(round_dir: Path, files_uris: list[str], max_chars: int, threshold: float, bound: float
                    ) -> CheckOutcome:
    """The round's stored model, loaded by fastText, on its held-out repositories' seeds (text read again from
    the lake): the share it recalls reaches `bound`."""
    import fasttext
    import pyarrow.parquet as pq

    from seedcoder_assets.core.hq.rounds import HELD_OUT, MODEL_FILE, NEGATIVE, file_line

    held = pq.read_table(round_dir / HELD_OUT)
    seeds = [i for i, label in zip(held["id"].to_pylist(), held["label"].to_pylist()) if label != NEGATIVE]
    if not seeds:
        return CheckOutcome(False, {"reason": "no held-out seed"})
    con = duckdb_connect()
    con.register("_ids", pa.table({"id": pa.array(seeds, pa.string())}))
    lines = []
    for uri in files_uris:
        for path, content in con.execute(f"SELECT path, left(content, {int(max_chars)}) FROM {duckdb_source(uri)} "
                                         "WHERE id IN (SELECT id FROM _ids)").fetchall():
            lines.append(file_line(path, content, max_chars))
    con.close()
    model = fasttext.load_model(str(round_dir / MODEL_FILE))
    labels, probs = model.predict(lines, k=-1)  # recalled: P(any source) = 1 - P(negative) at the threshold
    recalled = sum(bool(1.0 - dict(zip(ls, ps)).get(f"__label__{NEGATIVE}", 0.0) >= threshold)
                   for ls, ps in zip(labels, probs))
    recall = float(recalled / len(lines)) if lines else 0.0
    return CheckOutcome(bool(lines) and recall >= bound, {"held_out_seeds": len(lines), "recall": recall,
                                                          "bound": bound})
