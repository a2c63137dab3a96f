"""Decontamination of one partition of a corpus (paper section 4): every record sharing a word 10-gram with
a benchmark task is dropped, its lineage reason `contaminated:<benchmark>` and its detail the benchmark's
version, the task, how many of its n-grams matched and one of them. Records that match allowlisted n-grams
only are kept and counted per rule (`allowlist_spared`), with examples, so what the allowlist lets through
is visible.

Incremental: each run leaves a state (the index version and a digest of the input's ids and sizes). When a
new index version keeps every n-gram the previous one blocked and the input is unchanged, a re-run reuses
the previous decisions and checks the kept records only against the n-grams the new version added; an
index that blocks less than before (a benchmark removed, a wider allowlist) or a changed input is checked
in full.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, Field

from seedcoder_assets.core import object_store, paths
from seedcoder_assets.core.decontam.index import NgramIndex
from seedcoder_assets.core.decontam.ngrams import batch_ngram_hashes, utf8_batch
from seedcoder_assets.core.parquet_io import (
    MAX_BATCH_BYTES,
    dataset,
    is_complete,
    iter_batches,
    slices_by_bytes,
)
from seedcoder_assets.core.runner import Verdicts, run_stage
from seedcoder_assets.core.stats import LineageWriter, StageStats

REASON_PREFIX: Final = "contaminated:"
STATE_FILE: Final = "state.json"
MAX_EXAMPLES: Final = 20
MAX_ANCHORS: Final = 50_000  # past this many, the substring prefilter of an incremental recheck is skipped


class DecontamParams(BaseModel, frozen=True):
    index_path: str = Field("", description="The index version's folder (set by the asset: the current one)")
    prior_index_path: str = Field("", description="The folder of the version the partition was last checked "
                                                  "against (set by the asset from the partition's state)")
    full: bool = Field(False, description="Check against every n-gram even when an incremental recheck would do")


def text_column(schema: pa.Schema) -> str:
    """The column a corpus keeps its training text in."""
    for name in ("content", "text"):
        if name in schema.names:
            return name
    raise ValueError(f"no content or text column in {schema.names}")


def state_uri(lake: str, stage: str, partition: str) -> str:
    return f"{paths.partition_uri(lake, ('_state', 'decontam', stage), partition)}/{STATE_FILE}"


def read_state(lake: str, stage: str, partition: str) -> dict[str, Any] | None:
    uri = state_uri(lake, stage, partition)
    return json.loads(object_store.read_text(uri)) if object_store.exists(uri) else None


def input_digest(uri: str) -> str:
    """sha256 of the input's ids and texts in stored order: the same records with the same text give the same
    digest (an id alone is not enough: a long-context sequence keeps its id when its files are reordered)."""
    digest = hashlib.sha256()
    column = text_column(dataset(uri).schema)
    for batch in iter_batches(uri, ["id", column], batch_rows=4096):
        for piece in slices_by_bytes(batch, MAX_BATCH_BYTES, column):
            for arr in (piece.column("id"), piece.column(column)):
                data, starts = utf8_batch(arr)
                digest.update(np.ascontiguousarray(starts).tobytes())
                digest.update(memoryview(np.ascontiguousarray(data)))
    return digest.hexdigest()


@dataclass(frozen=True)
class Plan:
    """What to check: against which n-grams, and the previous drops to keep (id -> (reason, detail))."""

    mode: str  # full | incremental
    index: NgramIndex
    prior_drops: dict[str, tuple[str, str]]
    why: str
    # incremental: the longest word of each added n-gram. A record holding none of them (as a substring,
    # ASCII case ignored) cannot hold any added n-gram and is not hashed at all.
    anchors: list[str] | None = None


def plan_check(index: NgramIndex, prior_index: NgramIndex | None, state: dict[str, Any] | None, digest: str,
               prior_lineage_uri: str, full: bool = False) -> Plan:
    """Full, or incremental against the n-grams `index` blocks that `prior_index` did not."""
    if full or state is None or prior_index is None:
        return Plan("full", index, {}, "asked for a full check" if full else "no earlier check")
    if state.get("index_version") != prior_index.version:
        return Plan("full", index, {}, f"the last check was against {state.get('index_version')}, not "
                                       f"{prior_index.version}")
    if state.get("input_digest") != digest:
        return Plan("full", index, {}, "the input changed since the last check")
    old, new = prior_index.blocking_hashes(), index.blocking_hashes()
    if not np.isin(old, new).all():
        return Plan("full", index, {}, f"index {index.version} no longer blocks n-grams {prior_index.version} did")
    if not is_complete(prior_lineage_uri):
        return Plan("full", index, {}, "the last check's lineage is missing")
    lineage = dataset(prior_lineage_uri).to_table(columns=["id", "reason", "detail"],
                                                   filter=pc.field("decision") == "dropped")  # drops only: few
    drops = {i: (r, d) for i, r, d in zip(*(lineage.column(c).to_pylist() for c in ("id", "reason", "detail")))}
    added = index.blocking & ~np.isin(index.hashes, old)
    delta = index.restricted_to(added)
    anchors = sorted({max(t.split(" "), key=lambda w: (len(w), w)) for t in delta.rows["text"].to_pylist()})
    return Plan("incremental", delta, drops, f"{int(added.sum())} n-grams added since {prior_index.version}",
                anchors if len(anchors) <= MAX_ANCHORS else None)


class Decontaminator:
    """The decide function of one partition: keeps its counts of spared records and matched tasks."""

    def __init__(self, plan: Plan, column: str) -> None:
        self.plan, self.column = plan, column
        self.spared: Counter[str] = Counter()
        self.spared_examples: list[dict[str, str]] = []
        self.tasks: Counter[str] = Counter()
        self.reused = 0
        self.checked = 0
        self.skipped = 0  # records the prefilter ruled out

    def __call__(self, batch: pa.RecordBatch) -> Verdicts:
        ids = batch.column("id").to_pylist()
        reasons: list[str | None] = [None] * len(ids)
        details: list[str | None] = [None] * len(ids)
        todo = []
        for i, id_ in enumerate(ids):
            prior = self.plan.prior_drops.get(id_)
            if prior is not None:
                reasons[i], details[i] = prior
                self.reused += 1
            else:
                todo.append(i)
        index = self.plan.index
        texts = batch.column(self.column)
        if todo and self.plan.anchors is not None and len(index.hashes):
            holds = pl.Series(texts.take(pa.array(todo))).str.contains_any(self.plan.anchors,
                                                                         ascii_case_insensitive=True)
            self.skipped += len(todo)
            todo = [t for t, h in zip(todo, holds.fill_null(False).to_list()) if h]
            self.skipped -= len(todo)
        if todo and len(index.hashes):
            hashes, doc = batch_ngram_hashes(texts if len(todo) == len(ids) else texts.take(pa.array(todo)), index.n)
            pos = index.positions(hashes)
            hit = pos >= 0
            self._decide(np.asarray(todo), doc[hit], pos[hit], ids, reasons, details)
        self.checked += len(todo)
        return Verdicts.from_reasons(reasons, detail=details)

    def _decide(self, rows: np.ndarray, doc: np.ndarray, pos: np.ndarray, ids: list[str],
                reasons: list[str | None], details: list[str | None]) -> None:
        index = self.plan.index
        for d in np.unique(doc).tolist():
            mine = pos[doc == d]
            row = int(rows[d])
            blocking = mine[index.blocking[mine]]
            if len(blocking) == 0:  # allowlisted n-grams only: kept, counted
                rules = sorted({index.meta(p, "allowed") for p in mine.tolist()})
                self.spared.update(rules)
                if len(self.spared_examples) < MAX_EXAMPLES:
                    p = int(mine[0])
                    self.spared_examples.append({"id": ids[row], "rule": index.meta(p, "allowed"),
                                                 "ngram": index.meta(p, "text"),
                                                 "benchmark": index.meta(p, "benchmark"),
                                                 "task": index.meta(p, "task_id")})
                continue
            # the task most of its matched n-grams come from names the drop
            blocking = np.unique(blocking)
            task_of = {p: (index.meta(p, "benchmark"), index.meta(p, "task_id")) for p in blocking.tolist()}
            tasks = Counter(task_of.values())
            (bench, task), count = min(tasks.items(), key=lambda kv: (-kv[1], kv[0]))
            first = next(p for p in blocking.tolist() if task_of[p] == (bench, task))
            reasons[row] = f"{REASON_PREFIX}{bench}"
            details[row] = json.dumps({"benchmark": bench, "version": index.meta(first, "version"), "task": task,
                                       "ngrams": int(len(blocking)), "task_ngrams": count,
                                       "ngram": index.meta(first, "text"), "index": self.plan.index.version})
            self.tasks[f"{bench}/{task}"] += 1


def decontaminate(src_uri: str, dst_uri: str, lineage: LineageWriter, plan: Plan, digest: str,
                  state_path: str, full_version: str) -> StageStats:
    """Write the records of `src_uri` that share no blocking n-gram with the benchmarks to `dst_uri`, one
    lineage row per record, then the partition's state."""
    schema = dataset(src_uri).schema
    column = text_column(schema)
    decide = Decontaminator(plan, column)
    batches = (piece for batch in iter_batches(src_uri, batch_rows=2048)
               for piece in slices_by_bytes(batch, MAX_BATCH_BYTES, column))
    stats = run_stage(batches, dst_uri, lineage, decide, schema=schema)
    stats.extra.update({
        "index_version": full_version, "check": plan.mode, "check_why": plan.why,
        "checked_ngrams": int(plan.index.blocking.sum()), "records_checked": decide.checked,
        "records_prefiltered_out": decide.skipped,
        "drops_reused": decide.reused, "allowlist_spared": dict(sorted(decide.spared.items())),
        "allowlist_spared_examples": decide.spared_examples,
        "contaminated_tasks": dict(decide.tasks.most_common(50))})
    object_store.write_text(state_path, json.dumps({"index_version": full_version, "input_digest": digest}))
    return stats


def run_decontamination(lake: str, stage: str, partition: str, src_uri: str, dst_uri: str,
                        open_lineage, params: DecontamParams) -> StageStats:
    """One partition: plan (before the lineage writer clears the last run's lineage), then check."""
    if not params.index_path:
        raise ValueError("no benchmark n-gram index: materialize training/benchmark_ngrams first")
    index = NgramIndex.load(params.index_path)
    prior = NgramIndex.load(params.prior_index_path) if params.prior_index_path and \
        Path(params.prior_index_path, "report.json").exists() else None
    digest = input_digest(src_uri)
    plan = plan_check(index, prior, read_state(lake, stage, partition), digest,
                      paths.lineage_uri(lake, stage, partition), params.full)
    # No state while the partition is rewritten: a run that dies half-way leaves the next one a full check.
    object_store.delete(state_uri(lake, stage, partition))
    return decontaminate(src_uri, dst_uri, open_lineage(), plan, digest, state_uri(lake, stage, partition),
                         index.version)
