"""Checks of a phase's shards, independent of the code that wrote them: the .idx files parsed here from
Megatron's layout, the .bin sizes from the file system, the FIM documents taken apart at their sentinels and
compared with the decontaminated records they came from, the blend read as a trainer reads it."""

from __future__ import annotations

import json
import struct
from collections import defaultdict
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from seedcoder_assets.core.checks import CheckOutcome
from seedcoder_assets.core.parquet_io import dataset, read_rows
from seedcoder_assets.core.training.fim import SENTINEL_IN_TEXT
from seedcoder_assets.core.training.mixture import EMPTY_TEXT


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


def _encoder(tokenizer_json: str, special: dict[str, int]):
    """The tokenizer as the check builds it: special tokens added in id order, their text in data is text."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tokenizer_json)
    tok.add_special_tokens([t for t, _ in sorted(special.items(), key=lambda kv: kv[1]) if tok.token_to_id(t) is None])
    tok.encode_special_tokens = True
    return tok


def _expected_ids(tok, text: str, mode: str | None, sentinels: dict[str, str], special: dict[str, int],
                  eos: int) -> list[int]:
    if not mode:
        return tok.encode(text, add_special_tokens=False).ids + [eos]
    first, second = (sentinels["suffix"], sentinels["prefix"]) if mode == "spm" else (sentinels["prefix"],
                                                                                      sentinels["suffix"])
    a, rest = text[len(first):].split(second, 1)
    b, c = rest.split(sentinels["middle"], 1)
    return [special[first], *tok.encode(a, add_special_tokens=False).ids, special[second],
            *tok.encode(b, add_special_tokens=False).ids, special[sentinels["middle"]],
            *tok.encode(c, add_special_tokens=False).ids, eos]


def tokens_match_shards(root: Path, tokenizer_json: str, keys: list[str] | None = None,
                        sample_per_shard: int = 20) -> CheckOutcome:
    """Every shard on disk is consistent (.idx parsed here, .bin size, Parquet rows) and listed in the manifest,
    whose per-source tokens it sums to. In the shards of `keys` (default all; the run's new ones), the end of
    document id closes each document and occurs nowhere else, the sentinels' ids occur three times in order in
    a FIM document and never in another, and sampled documents tokenized again are the ids in the .bin."""
    manifest = json.loads((root / "manifest.json").read_text())
    special, eos = manifest["special_ids"], manifest["special_ids"][manifest["eos"]]
    fim = manifest["params"]["fim"]
    sentinels = {k: fim[k] for k in ("prefix", "suffix", "middle")}
    order = [special[sentinels[k]] for k in (("suffix", "prefix", "middle") if fim["mode"] == "spm"
                                              else ("prefix", "suffix", "middle"))]
    tok = _encoder(tokenizer_json, special)
    problems: list[str] = [f"special token {t}: id {tok.token_to_id(t)} here, {i} in the manifest"
                           for t, i in special.items() if tok.token_to_id(t) != i]
    on_disk: dict[str, int] = defaultdict(int)
    sampled = scanned = 0
    listed = {f"{e['corpus']}/{e['partition']}/{s['name']}" for e in manifest["entries"].values() for s in e["shards"]}
    found = set()
    for corpus, partition, prefix in _shards(root):
        found.add(f"{corpus}/{partition}/{prefix.name}")
        try:
            lengths = parse_idx(prefix.with_suffix(".idx"))
            on_disk[corpus] += int(lengths.sum())
            if prefix.with_suffix(".bin").stat().st_size != 4 * int(lengths.sum()):
                problems.append(f"{prefix}.bin: size is not 4 x the tokens its index lists")
            text = pq.ParquetFile(prefix.with_suffix(".parquet"))
            if text.metadata.num_rows != len(lengths):
                problems.append(f"{prefix}.parquet: {text.metadata.num_rows} rows for {len(lengths)} documents")
                continue
            if keys is not None and f"{corpus}/{partition}" not in keys:
                continue
            meta = text.read(columns=["tokens", "fim"])
            if not np.array_equal(meta["tokens"].to_numpy(), lengths):
                problems.append(f"{prefix}.parquet: token counts differ from the index")
                continue
            # Mapped, not read: a shard of 250M tokens is 1 GB; only the control ids' positions are held.
            ids = (np.memmap(prefix.with_suffix(".bin"), np.int32, mode="r") if lengths.sum()
                   else np.zeros(0, np.int32))
            ends = np.cumsum(lengths.astype(np.int64))
            is_fim = np.array([m is not None for m in meta["fim"].to_pylist()], bool)
            eos_at = np.flatnonzero(ids == eos)
            if len(eos_at) != len(lengths) or not np.array_equal(eos_at, ends - 1):
                problems.append(f"{prefix}: the end-of-document id is not exactly each document's last token")
            at = {sid: np.flatnonzero(ids == sid) for sid in order}
            for sid, positions in at.items():
                per_doc = np.bincount(np.searchsorted(ends, positions, side="right"), minlength=len(lengths))
                if not np.array_equal(per_doc, is_fim.astype(np.int64)):
                    problems.append(f"{prefix}: a sentinel id ({sid}) is not once in each FIM document and absent "
                                    "elsewhere")
            if is_fim.any() and all(len(p) == is_fim.sum() for p in at.values()):
                firsts = np.stack([at[sid] for sid in order])
                if not (np.all(firsts[0] < firsts[1]) and np.all(firsts[1] < firsts[2])):
                    problems.append(f"{prefix}: the sentinels are out of order")
            scanned += len(lengths)
            starts = ends - lengths
            for g in np.linspace(0, text.num_row_groups - 1, min(sample_per_shard, text.num_row_groups)).astype(int):
                group = text.read_row_group(int(g), columns=["doc", "fim", "text"])
                d, mode, body = (group[c][0].as_py() for c in ("doc", "fim", "text"))
                if ids[starts[d]:ends[d]].tolist() != _expected_ids(tok, body, mode, sentinels, special, eos):
                    problems.append(f"{prefix} document {d}: ids differ from its text tokenized again")
                sampled += 1
            del ids
        except (OSError, ValueError, pa.ArrowException) as exc:  # a missing or unreadable file: a failure
            problems.append(f"{prefix}: {type(exc).__name__}: {exc}")
    listed_tokens: dict[str, int] = defaultdict(int)
    for e in manifest["entries"].values():
        listed_tokens[e["corpus"]] += e["tokens"]
    if dict(on_disk) != {k: v for k, v in listed_tokens.items() if v}:
        problems.append(f"per-source tokens: manifest {dict(listed_tokens)}, shards {dict(on_disk)}")
    if listed != found:
        problems.append(f"shards listed but missing: {sorted(listed - found)[:5]}; on disk, unlisted: "
                        f"{sorted(found - listed)[:5]}")
    return CheckOutcome(not problems, {"tokens_per_source": dict(on_disk), "shards": len(found),
                                       "documents_scanned": scanned, "documents_retokenized": sampled,
                                       "problems": problems[:10]})


def _sql_list(paths: list[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def every_record_once(root: Path, sources: dict[str, str], keys: list[str] | None = None) -> CheckOutcome:
    """Each (corpus, partition) of `keys` holds every record of its decontaminated partition once, and nothing
    else: DuckDB anti-joins the shards' source ids with the partition's ids both ways (streamed, spilling).
    A record without a document must have a reason judged here from its text (no text; a sentinel in it
    where the policy drops those), and those counts must be the manifest's. The FIM share is within four
    standard deviations of the configured rate."""
    from seedcoder_assets.core.object_store import duckdb_connect
    from seedcoder_assets.core.parquet_io import duckdb_source

    manifest = json.loads((root / "manifest.json").read_text())
    fim = manifest["params"]["fim"]
    rate, drops_sentinels = fim["rate"], fim.get("on_sentinel", "drop") == "drop"
    sentinels = [fim[k] for k in ("prefix", "suffix", "middle")]
    con = duckdb_connect()
    problems, shares, counts = [], {}, {}
    for key, entry in sorted(manifest["entries"].items()):
        if keys is not None and key not in keys:
            continue
        files = [root / entry["corpus"] / entry["partition"] / f"{s['name']}.parquet" for s in entry["shards"]]
        try:
            src = duckdb_source(sources[key])
            column = "content" if "content" in dataset(sources[key]).schema.names else "text"
            missing = [f for f in files if not f.exists()]
            if missing:
                problems.append(f"{key}: shards listed but missing: {[str(f) for f in missing[:3]]}")
                continue
            docs = (f"(SELECT source_id, fim FROM read_parquet({_sql_list(files)}))" if files else
                    "(SELECT NULL::VARCHAR AS source_id, NULL::VARCHAR AS fim WHERE false)")
            n, distinct, fims = con.execute(f"SELECT count(*), count(DISTINCT source_id), count(fim) "
                                            f"FROM {docs}").fetchone()
            foreign = con.execute(f"SELECT count(*) FROM {docs} d ANTI JOIN {src} s ON d.source_id = s.id").fetchone()[0]
            has_sentinel = " OR ".join(f"contains(t, ${i + 1})" for i in range(len(sentinels)))
            empty, with_sentinel, unexplained = con.execute(
                f"SELECT count(*) FILTER (WHERE coalesce(t, '') = ''), "
                f"count(*) FILTER (WHERE coalesce(t, '') <> '' AND ({has_sentinel})), "
                f"count(*) FILTER (WHERE coalesce(t, '') <> '' AND NOT ({has_sentinel})) "
                f"FROM (SELECT s.{column} AS t FROM {src} s ANTI JOIN {docs} d ON s.id = d.source_id)",
                sentinels).fetchone()
        except (OSError, ValueError, duckdb.Error) as exc:  # an unreadable shard or partition fails the check
            problems.append(f"{key}: {type(exc).__name__}: {exc}")
            continue
        counts[key] = {"documents": n, "foreign": foreign, "no_text": empty, "holding_a_sentinel": with_sentinel,
                       "unexplained": unexplained}
        listed = entry["dropped"]
        if distinct != n:
            problems.append(f"{key}: {n - distinct} documents repeat a record")
        if foreign:
            problems.append(f"{key}: {foreign} documents come from no record of the partition")
        if unexplained or (with_sentinel and not drops_sentinels):
            problems.append(f"{key}: {unexplained + (0 if drops_sentinels else with_sentinel)} records lost "
                            "(no document, and nothing in their text to drop them for)")
        if listed.get(EMPTY_TEXT, 0) != empty or listed.get(SENTINEL_IN_TEXT, 0) != (with_sentinel if
                                                                                    drops_sentinels else 0):
            problems.append(f"{key}: the manifest counts {listed} dropped; the records without a document: "
                            f"{empty} without text, {with_sentinel} holding a sentinel")
        spread = 4 * (n * rate * (1 - rate)) ** 0.5 + 1
        shares[key] = round(fims / n, 4) if n else None
        if abs(fims - rate * n) > spread:
            problems.append(f"{key}: {fims} FIM documents of {n}, configured rate {rate}")
    return CheckOutcome(not problems, {"fim_share": shares, "configured_rate": rate, "records": counts,
                                       "problems": problems[:10]})


def _reassemble(text: str, mode: str, sentinels: dict[str, str]) -> str | None:
    p, s, m = sentinels["prefix"], sentinels["suffix"], sentinels["middle"]
    first, second = (s, p) if mode == "spm" else (p, s)
    if not text.startswith(first) or text.count(p) != 1 or text.count(s) != 1 or text.count(m) != 1:
        return None
    a, rest = text[len(first):].split(second, 1)
    b, middle = rest.split(m, 1)
    prefix, suffix = (b, a) if mode == "spm" else (a, b)
    return prefix + middle + suffix


def _first_rows(path: Path, limit: int):
    """The first `limit` rows of a shard's Parquet, a batch at a time (not the whole shard)."""
    columns = ["doc", "source_id", "fim", "escaped", "text"]
    for batch in pq.ParquetFile(path).iter_batches(batch_size=1024, columns=columns):
        if limit <= 0:
            return
        yield batch.slice(0, limit)
        limit -= batch.num_rows


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
    entries = [(k, e) for k, e in sorted(manifest["entries"].items()) if keys is None or k in keys]
    # Every shard is read, up to an equal part of `max_docs` each (a prefix of the first shards would leave
    # the rest unread).
    per_shard = max(64, -(-max_docs // max(1, sum(len(e["shards"]) for _, e in entries))))
    for key, entry in entries:
        uri = sources[key]
        column = "content" if "content" in dataset(uri).schema.names else "text"
        for shard in entry["shards"]:
            prefix = root / entry["corpus"] / entry["partition"] / shard["name"]
            try:
                batches = list(_first_rows(prefix.with_suffix(".parquet"), per_shard))
            except (OSError, pa.ArrowException) as exc:  # a missing or unreadable shard fails the check
                bad.append({"shard": str(prefix), "error": f"{type(exc).__name__}: {exc}"})
                continue
            if not batches:
                continue
            rows = pa.Table.from_batches(batches)
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
    return CheckOutcome(not bad, {"documents": checked, "fim_documents": fim_docs,
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
    unreadable: list[str] = []
    for weight, prefix in pairs:
        corpus = Path(prefix).parent.parent.name
        share[corpus] += float(weight)
        try:
            available[corpus] += int(parse_idx(Path(prefix + ".idx")).sum())
        except (OSError, ValueError) as exc:  # a trainer could not read it either
            unreadable.append(f"{prefix}: {type(exc).__name__}: {exc}")
    total_weight = sum(configured.values())
    want = {c: w / total_weight for c, w in configured.items()}
    diff = {c: round(share.get(c, 0.0) - w, 6) for c, w in want.items()}
    epochs = {c: (share[c] * blend["total_tokens"] / available[c]) if available.get(c) else 0.0 for c in want}
    over = {c: round(e, 4) for c, e in epochs.items() if e > max_epochs.get(c, 1.0) + 1e-6}
    ok = bool(pairs) and all(abs(d) <= tolerance for d in diff.values()) and not over and not unreadable
    return CheckOutcome(ok, {"realised_share": {c: round(share.get(c, 0.0), 6) for c in want},
                             "configured_share": {c: round(w, 6) for c, w in want.items()}, "difference": diff,
                             "epochs": {c: round(e, 4) for c, e in epochs.items()}, "over_repetition_limit": over,
                             "shards_in_blend": len(pairs), "missing_sources": [c for c in want if c not in share],
                             "unreadable_shards": unreadable[:10]})
