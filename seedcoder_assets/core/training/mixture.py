"""The two phase mixtures (paper 2.1, 2.3) as token shards: `regular` mixes file-level code and code-related
web data, `continued` all four categories plus the high-quality and long-context sets.

A phase is built from the decontaminated corpora of every partition (crawl, commit crawl, web dump)
materialized so far. Each (corpus, partition) becomes its own shards, written once: a new crawl adds shards
and leaves the others as they are; a partition whose decontaminated corpus changed (a new benchmark index)
is rewritten alone. The manifest (`manifest.json`) records, per (corpus, partition), the input digest and
the settings its shards were written with.

Then the blend: each source (corpus) gets `weight` of the phase's tokens, repeated at most `max_epochs`
times. With `target_tokens` 0 the phase is the largest mixture the repetition limits allow (every weight
met exactly); with a target, a source short of data is capped at its limit (the mixture check then fails,
saying by how much). The blend is written as Megatron's `--data-path` (weight, shard prefix pairs; a weight
is the share of the phase's tokens drawn from that shard), next to the epochs and token counts per source.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, Field

from seedcoder_assets.core.decontam.stage import input_digest, text_column
from seedcoder_assets.core.longctx.corpus import encode_in_batches
from seedcoder_assets.core.parquet_io import MAX_BATCH_BYTES, dataset, iter_batches, slices_by_bytes
from seedcoder_assets.core.training.fim import SENTINEL_IN_TEXT, Fim, FimParams, fim_document
from seedcoder_assets.core.training.shards import ShardWriter

MANIFEST: Final = "manifest.json"
BLEND: Final = "blend.json"
CODE_VERSION: Final = "phase-shards-v1"  # a change here rewrites every shard


class SourceMix(BaseModel, frozen=True):
    corpus: str = Field(description="A corpus asset's name: quality_files, repo_level_corpus, high_quality_files, "
                                    "long_context_sequences, long_context_files, deduped_commit_samples, web_corpus")
    weight: float = Field(gt=0, description="Its share of the phase's tokens (weights are normalized)")
    max_epochs: float = Field(1.0, gt=0, description="Most times its tokens may be repeated")


class PhaseParams(BaseModel, frozen=True):
    sources: list[SourceMix]
    fim: FimParams = FimParams()
    target_tokens: int = Field(0, ge=0, description="Tokens of the phase; 0: the most the repetition limits allow")
    tolerance: float = Field(0.02, description="Most a realised share may differ from its configured one")
    max_shard_tokens: int = Field(250_000_000, description="A shard rolls over past this many tokens (1 GB)")
    tokenizer: str = Field("", description="A local Hugging Face tokenizer (folder or tokenizer.json); empty: "
                                           "SEEDCODER_TOKENIZER")
    eos_token: str = Field("", description="Ends every document; empty: the tokenizer's (tokenizer_config.json), "
                                           "else </s>, else <|endoftext|> (added)")


# Our defaults: the paper names each phase's sources but not their weights.
PHASES: Final[dict[str, PhaseParams]] = {
    "regular": PhaseParams(sources=[SourceMix(corpus="quality_files", weight=0.85),
                                    SourceMix(corpus="web_corpus", weight=0.15, max_epochs=2.0)],
                           fim=FimParams(rate=0.5)),
    "continued": PhaseParams(sources=[
        SourceMix(corpus="quality_files", weight=0.25), SourceMix(corpus="repo_level_corpus", weight=0.15),
        SourceMix(corpus="deduped_commit_samples", weight=0.1, max_epochs=2.0),
        SourceMix(corpus="web_corpus", weight=0.1, max_epochs=2.0),
        SourceMix(corpus="high_quality_files", weight=0.25, max_epochs=4.0),
        SourceMix(corpus="long_context_sequences", weight=0.1, max_epochs=2.0),
        SourceMix(corpus="long_context_files", weight=0.05, max_epochs=2.0)], fim=FimParams(rate=0.1)),
}


@dataclass(frozen=True)
class PhaseInput:
    corpus: str
    partition: str
    uri: str  # the decontaminated partition


class Encoder:
    """A local Hugging Face tokenizer with the FIM sentinels as special tokens and an end-of-document id."""

    def __init__(self, tokenizer_json: str, sentinels: tuple[str, ...], eos_token: str = "") -> None:
        from tokenizers import AddedToken, Tokenizer

        self.path = tokenizer_json
        self.tok = Tokenizer.from_file(tokenizer_json)
        self.tok.no_truncation()
        self.tok.no_padding()
        # A special token's text in a document (`</s>` in HTML, `<|endoftext|>` in ML code) is text: only the
        # ids placed here (end of document, FIM sentinels) are control tokens.
        self.tok.encode_special_tokens = True
        eos = eos_token or _configured_eos(Path(tokenizer_json).parent) or (
            "</s>" if self.tok.token_to_id("</s>") is not None else "<|endoftext|>")
        missing = [t for t in (*sentinels, eos) if self.tok.token_to_id(t) is None]
        if missing:
            self.tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in missing])
        self.eos, self.eos_id = eos, self.tok.token_to_id(eos)
        self.special = {t: self.tok.token_to_id(t) for t in (*sentinels, eos)}
        self.vocab_size = self.tok.get_vocab_size(with_added_tokens=True)
        self.sha256 = hashlib.sha256(Path(tokenizer_json).read_bytes()).hexdigest()

    def encode(self, docs: list[Fim], fim: FimParams) -> list[np.ndarray]:
        """Each document's ids: a FIM one as its three sentinels' ids around its parts in the phase's order, then
        the end-of-document id."""
        order = (fim.suffix, fim.prefix, fim.middle) if fim.mode == "spm" else (fim.prefix, fim.suffix, fim.middle)
        pieces: list[str] = []
        for d in docs:
            if d.parts is None:
                pieces.append(d.text)
            else:
                prefix, middle, suffix = d.parts
                pieces += (suffix, prefix, middle) if fim.mode == "spm" else (prefix, suffix, middle)
        ids = encode_in_batches(self.tok, pieces)
        out, k = [], 0
        sentinel_ids = [self.special[s] for s in order]
        for d in docs:
            if d.parts is None:
                doc = [*ids[k], self.eos_id]
                k += 1
            else:
                doc = [sentinel_ids[0], *ids[k], sentinel_ids[1], *ids[k + 1], sentinel_ids[2], *ids[k + 2],
                       self.eos_id]
                k += 3
            out.append(np.asarray(doc, np.int32))
        return out


def _configured_eos(folder: Path) -> str | None:
    config = folder / "tokenizer_config.json"
    if not config.is_file():
        return None
    eos = json.loads(config.read_text()).get("eos_token")
    return eos.get("content") if isinstance(eos, dict) else eos


def settings_digest(phase: str, params: PhaseParams, encoder: Encoder) -> str:
    """What a shard's bytes depend on besides its input: a change rewrites the shards."""
    spec = {"phase": phase, "fim": params.fim.model_dump(), "tokenizer": encoder.sha256, "eos": encoder.eos,
            "code": CODE_VERSION}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def read_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    return json.loads(path.read_text()) if path.exists() else {"entries": {}}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    tmp.replace(path)


def _documents(uri: str) -> Iterator[pa.RecordBatch]:
    column = text_column(dataset(uri).schema)
    for batch in iter_batches(uri, ["id", column], batch_rows=1024):
        for piece in slices_by_bytes(batch, MAX_BATCH_BYTES, column):
            yield piece.rename_columns(["id", "text"])


EMPTY_TEXT: Final = "empty_text"


def write_partition(phase: str, params: PhaseParams, encoder: Encoder, item: PhaseInput,
                    folder: Path) -> dict[str, Any]:
    """The shards of one decontaminated (corpus, partition) in `folder` (rewritten whole): their names,
    documents and tokens, the records' count, and those dropped (holding a sentinel, or no text) by reason."""
    shutil.rmtree(folder, ignore_errors=True)
    shards: list[dict[str, Any]] = []
    dropped: dict[str, list[str]] = {SENTINEL_IN_TEXT: [], EMPTY_TEXT: []}
    escaped = fim_docs = documents = records = 0
    writer: ShardWriter | None = None
    try:
        for batch in _documents(item.uri):
            docs: list[Fim] = []
            rows: dict[str, list] = {k: [] for k in ("corpus", "partition", "source_id", "fim", "fim_start",
                                                     "fim_end", "escaped", "text")}
            for id_, text in zip(batch.column("id").to_pylist(), batch.column("text").to_pylist()):
                records += 1
                if not text:
                    dropped[EMPTY_TEXT].append(id_)
                    continue
                doc = fim_document(text, f"{item.corpus}/{id_}", phase, params.fim)
                if doc is None:
                    dropped[SENTINEL_IN_TEXT].append(id_)
                    continue
                docs.append(doc)
                escaped += doc.escaped
                fim_docs += doc.cuts is not None
                for k, v in (("corpus", item.corpus), ("partition", item.partition), ("source_id", id_),
                             ("fim", params.fim.mode if doc.cuts else None),
                             ("fim_start", doc.cuts[0] if doc.cuts else None),
                             ("fim_end", doc.cuts[1] if doc.cuts else None), ("escaped", doc.escaped),
                             ("text", doc.text)):
                    rows[k].append(v)
            if not docs:
                continue
            if writer is None:
                writer = ShardWriter(folder / f"part-{len(shards):05d}")
            writer.write(encoder.encode(docs, params.fim), rows)
            documents += len(docs)
            if writer.tokens >= params.max_shard_tokens:
                shards.append(writer.close())
                writer = None
        if writer is not None:
            shards.append(writer.close())
            writer = None
    finally:
        if writer is not None:
            writer.abort()
    return {"shards": shards, "records": records, "documents": documents,
            "tokens": sum(s["tokens"] for s in shards), "fim_documents": fim_docs, "escaped": escaped,
            "dropped": {k: len(v) for k, v in dropped.items()}, "dropped_ids": {k: v[:100] for k, v in dropped.items()}}


def build_phase(phase: str, params: PhaseParams, inputs: list[PhaseInput], root: Path, encoder: Encoder,
                log: Callable[[str], None] = print) -> dict[str, Any]:
    """Write the shards of every input not yet written with its current content and settings, then the blend
    over the current inputs only (a partition being rebuilt upstream, or no longer configured, is left out and
    named in `left_out`). Returns the manifest, with `written` and `kept` (the inputs this run wrote and left
    alone)."""
    root.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(root)
    entries: dict[str, Any] = manifest["entries"]
    settings = settings_digest(phase, params, encoder)
    written, kept = [], []
    wanted = {s.corpus for s in params.sources}
    current = [i for i in inputs if i.corpus in wanted]
    for item in current:
        key = f"{item.corpus}/{item.partition}"
        digest = input_digest(item.uri)
        known = entries.get(key)
        if known and known["input_digest"] == digest and known["settings"] == settings:
            kept.append(key)
            continue
        log(f"{phase}: writing the shards of {key}")
        entries.pop(key, None)  # out of the manifest before its files go: a crash never lists deleted shards
        _write_json(root / MANIFEST, {**manifest, "entries": entries})
        entry = write_partition(phase, params, encoder, item, root / item.corpus / item.partition)
        entries[key] = {**entry, "corpus": item.corpus, "partition": item.partition, "input_digest": digest,
                        "settings": settings}
        written.append(key)
        _write_json(root / MANIFEST, {**manifest, "entries": entries})  # a crash keeps what is done
    active = {f"{i.corpus}/{i.partition}" for i in current}
    manifest = {"phase": phase, "entries": entries, "active": sorted(active), "settings": settings,
                "tokenizer": encoder.path, "tokenizer_sha256": encoder.sha256, "eos": encoder.eos,
                "special_ids": encoder.special, "vocab_size": encoder.vocab_size, "params": params.model_dump()}
    _write_json(root / MANIFEST, manifest)
    blend = plan_blend(params, {k: e for k, e in entries.items() if k in active}, root)
    blend["left_out"] = sorted(set(entries) - active)
    _write_json(root / BLEND, blend)
    (root / "data_path.txt").write_text(" ".join(str(x) for x in blend["data_path"]) + "\n")
    return {**manifest, "blend": blend, "written": written, "kept": kept}


def plan_blend(params: PhaseParams, entries: dict[str, Any], root: Path) -> dict[str, Any]:
    """Tokens, epochs and realised share per source, and Megatron's data path (weight, prefix pairs)."""
    total_weight = sum(s.weight for s in params.sources)
    available = {s.corpus: sum(e["tokens"] for e in entries.values() if e["corpus"] == s.corpus)
                 for s in params.sources}
    share = {s.corpus: s.weight / total_weight for s in params.sources}
    limit = {s.corpus: s.max_epochs for s in params.sources}
    missing = sorted(c for c, a in available.items() if a == 0)
    present = [c for c in share if available[c] > 0]
    if params.target_tokens:
        total = params.target_tokens
    else:
        total = int(min((available[c] * limit[c] / share[c] for c in present), default=0))
    realised = {c: min(share[c] * total, available[c] * limit[c]) for c in present}
    drawn = sum(realised.values())
    data_path: list[Any] = []
    for _, e in sorted(entries.items()):
        c = e["corpus"]
        if c not in realised:
            continue
        for s in e["shards"]:
            w = realised[c] / drawn * s["tokens"] / available[c] if drawn else 0.0
            data_path += [round(w, 12), str(root / c / e["partition"] / s["name"])]
    return {"configured_share": share, "available_tokens": available, "max_epochs": limit,
            "tokens": {c: int(realised.get(c, 0)) for c in share}, "total_tokens": int(drawn),
            "realised_share": {c: (realised.get(c, 0) / drawn if drawn else 0.0) for c in share},
            "epochs": {c: (realised[c] / available[c] if c in realised else 0.0) for c in share},
            "missing_sources": missing, "data_path": data_path}
