"""Checks of a phase's shards, independent of the code that wrote them: the .idx files parsed here from
Megatron's layout, the .bin sizes from the file system, the FIM documents taken apart at their sentinels and
compared with the decontaminated records they came from, the blend read as a trainer reads it."""

from __future__ import annotations

import json
import struct
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from seedcoder_assets.core.checks import CheckOutcome
from seedcoder_assets.core.parquet_io import dataset, read_rows


def parse_idx(path: Path) -> np.ndarray:
    """The sequence lengths of a Megatron .idx file (int32 tokens, one sequence per document), validated."""
    raw = path.read_bytes()
    if raw[:9] != b"MMIDIDX\x00\x00" or struct.unpack("<Q", raw[9:17])[0] != 1 or raw[17] != 4:
        raise ValueError(f"{path}: not a version-1 int32 Megatron index")
    sequences, documents = struct.unpack("<QQ", raw[18:34])
    lengths = np.frombuffer(raw, np.int32, sequences, 34)
    pointers = np.frombuffer(raw, np.int64, sequences, 34 + 4 * sequences)
    docs = np.frombuffer(raw, np.int64, documents, 34 + 12 * sequences)
    expected = np.concatenate([[0], np.cumsum(lengths.astype(np.int64))[:-1] * 4]) if sequences else pointers
    if documents != sequences + 1 or not np.array_equal(pointers, expected) or not np.array_equal(
            docs, np.arange(documents)) or len(raw) != 34 + 20 * sequences + 8:
        raise ValueError(f"{path}: inconsistent pointers, document indices or size")
    return lengths


def _shards(root: Path) -> list[tuple[str, str, Path]]:
    """(corpus, partition, prefix) of every shard on disk."""
    return sorted((p.parent.parent.name, p.parent.name, p.with_suffix("")) for p in root.glob("*/*/part-*.idx"))


def tokens_match_shards(root: Path, tokenizer_json: str, sample_per_shard: int = 20) -> CheckOutcome:
    """Per source, the manifest's token counts equal the shards' (.idx lengths, .bin sizes, the Parquet rows);
    and a sample of documents, tokenized again, are the ids in the .bin."""
    from tokenizers import Tokenizer

    manifest = json.loads((root / "manifest.json").read_text())
    tok = Tokenizer.from_file(tokenizer_json)
    special = manifest["special_ids"]
    tok.add_special_tokens([t for t, _ in sorted(special.items(), key=lambda kv: kv[1]) if tok.token_to_id(t) is None])
    eos = special[manifest["eos"]]
    on_disk: dict[str, int] = defaultdict(int)
    problems: list[str] = [f"special token {t}: id {tok.token_to_id(t)} here, {i} in the manifest"
                           for t, i in special.items() if tok.token_to_id(t) != i]
    sampled = 0
    listed = {f"{e['corpus']}/{e['partition']}/{s['name']}" for e in manifest["entries"].values() for s in e["shards"]}
    found = set()
    for corpus, partition, prefix in _shards(root):
        found.add(f"{corpus}/{partition}/{prefix.name}")
        try:
            lengths = parse_idx(prefix.with_suffix(".idx"))
        except ValueError as exc:
            problems.append(str(exc))
            continue
        on_disk[corpus] += int(lengths.sum())
        if prefix.with_suffix(".bin").stat().st_size != 4 * int(lengths.sum()):
            problems.append(f"{prefix}.bin: size is not 4 x the tokens its index lists")
        text = pq.read_table(prefix.with_suffix(".parquet"), columns=["doc", "tokens", "text"])
        if text.num_rows != len(lengths) or not np.array_equal(text["tokens"].to_numpy(), lengths):
            problems.append(f"{prefix}.parquet: rows or token counts differ from the index")
            continue
        ids = np.memmap(prefix.with_suffix(".bin"), np.int32, "r")
        offsets = np.concatenate([[0], np.cumsum(lengths.astype(np.int64))])
        step = max(1, len(lengths) // sample_per_shard)
        texts = text["text"].to_pylist()
        for d in range(0, len(lengths), step):
            want = tok.encode(texts[d], add_special_tokens=False).ids + [eos]
            if ids[offsets[d]:offsets[d + 1]].tolist() != want:
                problems.append(f"{prefix} document {d}: ids differ from its text tokenized again")
            sampled += 1
        del ids
    listed_tokens: dict[str, int] = defaultdict(int)
    for e in manifest["entries"].values():
        listed_tokens[e["corpus"]] += e["tokens"]
    if dict(on_disk) != {k: v for k, v in listed_tokens.items() if v}:
        problems.append(f"per-source tokens: manifest {dict(listed_tokens)}, shards {dict(on_disk)}")
    if listed != found:
        problems.append(f"shards listed but missing: {sorted(listed - found)[:5]}; on disk, unlisted: "
                        f"{sorted(found - listed)[:5]}")
    return CheckOutcome(not problems, {"tokens_per_source": dict(on_disk), "shards": len(found),
                                       "documents_retokenized": sampled, "problems": problems[:10]})


def _reassemble(text: str, mode: str, sentinels: dict[str, str]) -> str | None:
    p, s, m = sentinels["prefix"], sentinels["suffix"], sentinels["middle"]
    first, second = (s, p) if mode == "spm" else (p, s)
    if not text.startswith(first) or text.count(p) != 1 or text.count(s) != 1 or text.count(m) != 1:
        return None
    a, rest = text[len(first):].split(second, 1)
    b, middle = rest.split(m, 1)
    prefix, suffix = (b, a) if mode == "spm" else (a, b)
    return prefix + middle + suffix


def fim_reassembles(root: Path, sources: dict[str, str], keys: list[str] | None = None,
                    max_docs: int = 20_000) -> CheckOutcome:
    """Every FIM document, its parts put back in order, is the record it came from (sentinels escaped as
    the manifest says); every other document is its record unchanged. `sources`: corpus/partition -> the
    decontaminated partition; `keys`: only these corpus/partition (default all)."""
    manifest = json.loads((root / "manifest.json").read_text())
    fim = manifest["params"]["fim"]
    sentinels = {k: fim[k] for k in ("prefix", "suffix", "middle")}
    checked = fim_docs = 0
    bad: list[dict[str, Any]] = []
    for key, entry in sorted(manifest["entries"].items()):
        if keys is not None and key not in keys:
            continue
        uri = sources[key]
        column = "content" if "content" in dataset(uri).schema.names else "text"
        for shard in entry["shards"]:
            if checked >= max_docs:
                break
            prefix = root / entry["corpus"] / entry["partition"] / shard["name"]
            rows = pq.read_table(prefix.with_suffix(".parquet"),
                                 columns=["doc", "source_id", "fim", "escaped", "text"]).slice(0, max_docs - checked)
            src = read_rows(uri, rows["source_id"], [column])
            original = dict(zip(src["id"].to_pylist(), src[column].to_pylist()))
            for doc, sid, mode, escaped, text in zip(*(rows[c].to_pylist() for c in
                                                       ("doc", "source_id", "fim", "escaped", "text"))):
                want = original.get(sid)
                if want is not None and escaped:
                    for s in sentinels.values():
                        want = want.replace(s, s[0] + "\u200b" + s[1:])
                got = _reassemble(text, mode, sentinels) if mode else text
                if mode:
                    fim_docs += 1
                if want is None or got != want:
                    bad.append({"shard": str(prefix), "doc": doc, "source_id": sid, "fim": mode})
                checked += 1
    return CheckOutcome(not bad and checked > 0, {"documents": checked, "fim_documents": fim_docs,
                                                  "fim_share": round(fim_docs / checked, 4) if checked else None,
                                                  "not_reassembled": len(bad), "examples": bad[:10]})


def mixture_within_tolerance(root: Path, configured: dict[str, float], max_epochs: dict[str, float],
                             tolerance: float) -> CheckOutcome:
    """The blend a trainer reads (data_path.txt: weight, prefix pairs) draws each source's configured share
    within `tolerance`, repeating no source past its limit (its tokens counted from the .idx files)."""
    tokens = (root / "data_path.txt").read_text().split()
    pairs = list(zip(tokens[0::2], tokens[1::2]))
    blend = json.loads((root / "blend.json").read_text())
    share: dict[str, float] = defaultdict(float)
    available: dict[str, int] = defaultdict(int)
    for weight, prefix in pairs:
        corpus = Path(prefix).parent.parent.name
        share[corpus] += float(weight)
        available[corpus] += int(parse_idx(Path(prefix + ".idx")).sum())
    total_weight = sum(configured.values())
    want = {c: w / total_weight for c, w in configured.items()}
    diff = {c: round(share.get(c, 0.0) - w, 6) for c, w in want.items()}
    epochs = {c: (share[c] * blend["total_tokens"] / available[c]) if available.get(c) else 0.0 for c in want}
    over = {c: round(e, 4) for c, e in epochs.items() if e > max_epochs.get(c, 1.0) + 1e-6}
    ok = bool(pairs) and all(abs(d) <= tolerance for d in diff.values()) and not over
    return CheckOutcome(ok, {"realised_share": {c: round(share.get(c, 0.0), 6) for c in want},
                             "configured_share": {c: round(w, 6) for c, w in want.items()}, "difference": diff,
                             "epochs": {c: round(e, 4) for c, e in epochs.items()}, "over_repetition_limit": over,
                             "shards_in_blend": len(pairs), "missing_sources": [c for c in want if c not in share]})
