"""Checks of a decontaminated partition, independent of the stage: Python's `re` and n-gram strings compared
as strings (the stage hashes bytes with numpy into 64-bit hashes), the index's n-grams read from its file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from seedcoder_assets.core.checks import CheckOutcome
from seedcoder_assets.core.decontam.index import INDEX_FILE
from seedcoder_assets.core.parquet_io import dataset, is_complete, iter_batches, read_rows, read_table

_WORD = re.compile(r"[a-z0-9_]+")


def _grams(text: str, n: int) -> set[str]:
    ws = _WORD.findall(text.encode("ascii", "replace").decode().lower())
    return {" ".join(ws[i:i + n]) for i in range(len(ws) - n + 1)}


def _blocking(index_folder: str) -> tuple[set[str], int]:
    table = pq.read_table(Path(index_folder) / INDEX_FILE, columns=["text", "allowed"])
    blocking = table.filter(pc.is_null(table["allowed"]))["text"].to_pylist()
    return set(blocking), len(blocking[0].split(" ")) if blocking else 10


def _column(uri: str) -> str:
    names = dataset(uri).schema.names
    return "content" if "content" in names else "text"


def no_benchmark_ngrams(output_uri: str, index_folder: str, max_examples: int = 10) -> CheckOutcome:
    """No kept record holds a blocking n-gram of the index: every record's words recounted by Python's `re`,
    every n-gram compared as a string."""
    blocking, n = _blocking(index_folder)
    column = _column(output_uri)
    records = found = 0
    examples = []
    for batch in iter_batches(output_uri, ["id", column], batch_rows=512):
        for id_, text in zip(batch.column("id").to_pylist(), batch.column(column).to_pylist()):
            records += 1
            hits = _grams(text or "", n) & blocking
            if hits:
                found += 1
                if len(examples) < max_examples:
                    examples.append({"id": id_, "ngram": sorted(hits)[0], "ngrams": len(hits)})
    return CheckOutcome(found == 0, {"records": records, "records_with_benchmark_ngrams": found,
                                     "blocking_ngrams": len(blocking), "examples": examples})


def drops_hold_their_ngram(lineage_uri: str, input_uri: str, index_folder: str, limit: int = 2000) -> CheckOutcome:
    """Every record dropped as contaminated (all of them, or `limit` spread evenly over them) holds the n-gram
    its lineage names, and that n-gram is a blocking one of the index it names: no record is dropped without
    evidence."""
    if not is_complete(lineage_uri):
        return CheckOutcome(False, {"error": f"no lineage at {lineage_uri}"})
    lineage = read_table(lineage_uri, ["id", "decision", "reason", "detail"])
    dropped = lineage.filter(pc.equal(lineage["decision"], "dropped"))
    blocking, n = _blocking(index_folder)
    all_ids = dropped["id"].to_pylist()
    ids = all_ids[::-(-len(all_ids) // limit)] if len(all_ids) > limit else all_ids
    details = dict(zip(dropped["id"].to_pylist(), dropped["detail"].to_pylist()))
    column = _column(input_uri)
    rows = read_rows(input_uri, ids, [column]) if ids else None
    bad = []
    if rows is not None:
        for id_, text in zip(rows["id"].to_pylist(), rows[column].to_pylist()):
            detail = json.loads(details[id_] or "{}")
            gram = detail.get("ngram", "")
            if gram not in blocking or gram not in _grams(text or "", n):
                bad.append({"id": id_, "ngram": gram})
    missing = len(ids) - (rows.num_rows if rows is not None else 0)
    return CheckOutcome(not bad and missing == 0, {"dropped": dropped.num_rows, "verified": len(ids),
                                                   "without_evidence": len(bad), "not_in_input": missing,
                                                   "examples": bad[:10]})
