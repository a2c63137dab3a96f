"""Training-ready output on a real crawl: FIM, tokenization and shard writing per core, a whole partition's
shards with peak RSS, and Megatron's own writer and reader as the peer and the judge.

    python benchmarks/bench_training.py --files <a syntax_checked_files partition> --work <dir> [--mb 200]

The first --mb of the partition's files are the corpus. The tokenizer is a byte-level BPE of 32,000 ids
trained here on 20 MB of the same files (tokenizers; no hub). Timed in this process with thread pools pinned
to one thread: the FIM transform (regular phase, rate 0.5), tokenization (the end-of-document id appended),
tokenization again with tokenizers' `encode_batch` (offsets computed, as most pipelines call it), and shard
writing: ours (.bin/.idx) and megatron-core's IndexedDatasetBuilder on the same ids, the two byte for byte the
same files, then ours with the Parquet text rows the stage writes beside them. Then the whole partition
through `write_partition` in a spawned process (its peak RSS is the kernel's), read back by Megatron's
IndexedDataset and checked by the shard checks.
"""

from __future__ import annotations

import os

os.environ.update({"OMP_NUM_THREADS": "1", "RAYON_NUM_THREADS": "1", "RAYON_RS_NUM_CPUS": "1",
                   "POLARS_MAX_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"})

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from seedcoder_assets.core.longctx.corpus import encode_in_batches  # noqa: E402
from seedcoder_assets.core.parquet_io import PartWriter, iter_batches  # noqa: E402
from seedcoder_assets.core.schemas import FILE_SCHEMA  # noqa: E402
from seedcoder_assets.core.training.checks import fim_reassembles, tokens_match_shards  # noqa: E402
from seedcoder_assets.core.training.fim import FimParams, fim_document  # noqa: E402
from seedcoder_assets.core.training.mixture import Encoder, PhaseInput, PhaseParams, SourceMix, write_partition  # noqa: E402
from seedcoder_assets.core.training.shards import ShardWriter, TokenWriter  # noqa: E402


def corpus(files: str, dst: str, mb: float) -> tuple[list[str], list[str]]:
    ids, texts, size = [], [], 0
    with PartWriter(dst, FILE_SCHEMA) as out:
        for batch in iter_batches(files, [f.name for f in FILE_SCHEMA]):
            out.write_table(pa.Table.from_batches([batch]).cast(FILE_SCHEMA))
            ids += batch.column("id").to_pylist()
            texts += batch.column("content").to_pylist()
            size += sum(batch.column("size").to_pylist())
            if size >= mb * 1e6:
                break
    return ids, texts


def train_tokenizer(texts: list[str], folder: Path) -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    path = folder / "tokenizer.json"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        tok = Tokenizer(models.BPE(unk_token=None))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        sample, size = [], 0
        for t in texts:
            sample.append(t)
            size += len(t)
            if size > 20e6:
                break
        tok.train_from_iterator(sample, trainers.BpeTrainer(vocab_size=32_000, special_tokens=["<s>", "</s>"],
                                                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                            show_progress=False))
        tok.save(str(path))
    return str(path)


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.process_time() - cpu, time.perf_counter() - wall


def whole_partition(work: Path, src: str, tokenizer: str, params: PhaseParams) -> None:
    encoder = Encoder(tokenizer, params.fim.sentinels)
    entry, cpu, wall = timed(lambda: write_partition("regular", params, encoder, PhaseInput("quality_files", "full", src),
                                                     work / "out" / "phase" / "quality_files" / "full"))
    (work / "child.json").write_text(json.dumps({"cpu": cpu, "wall": wall, "entry": entry,
                                                 "rss": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM): ru_maxrss would start from the parent's RSS at the fork."""
    return next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM:")) / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--mb", type=float, default=200)
    args = ap.parse_args()
    work = Path(args.work)
    shutil.rmtree(work / "out", ignore_errors=True)
    src = str(work / "corpus")
    ids, texts = corpus(args.files, src, args.mb)
    mb = sum(len(t.encode()) for t in texts) / 1e6
    tokenizer = train_tokenizer(texts, work / "tokenizer")
    fim = FimParams(rate=0.5)
    encoder = Encoder(tokenizer, fim.sentinels)
    rows = {}

    docs, cpu, wall = timed(lambda: [fim_document(t, i, "regular", fim) for i, t in zip(ids, texts)])
    rows["FIM (SPM, rate 0.5)"] = (mb / cpu, cpu, wall, f"{sum(d.cuts is not None for d in docs):,} of {len(docs):,} "
                                                        "documents rewritten")
    written = [d for d in docs if d is not None and d.text]

    def tokenize():
        out, batch, size = [], [], 0
        for d in written:
            batch.append(d)
            size += len(d.text)
            if size > 4e6:
                out += encoder.encode(batch, fim)
                batch, size = [], 0
        return out + (encoder.encode(batch, fim) if batch else [])

    token_ids, cpu, wall = timed(tokenize)
    tokens = sum(len(a) for a in token_ids)
    rows["tokenize (byte-level BPE, 32,000 ids; encode_batch_fast)"] = (
        mb / cpu, cpu, wall, f"{tokens / cpu / 1e6:.2f} M tokens/CPU-s; {tokens:,} tokens")

    class WithOffsets:  # the call most pipelines make (Megatron's preprocess_data, datatrove): character offsets
        encode_batch_fast = encoder.tok.encode_batch  # computed, in the stage's own batches; its ids must be ours

    def with_offsets():
        pieces = [p for d in written for p in ((d.text,) if d.parts is None else (d.parts[2], d.parts[0], d.parts[1]))]
        return encode_in_batches(WithOffsets, pieces)

    plain, cpu, wall = timed(with_offsets)
    text_ids = np.concatenate(token_ids)  # ours without the control ids (a document's text never holds them)
    text_ids = text_ids[~np.isin(text_ids, list(encoder.special.values()))]
    same_ids = sum(len(p) for p in plain) == len(text_ids) and np.array_equal(
        text_ids, np.fromiter((i for p in plain for i in p), np.int32, len(text_ids)))
    del text_ids
    rows["tokenize: tokenizers encode_batch (offsets computed)"] = (
        mb / cpu, cpu, wall, f"{sum(len(p) for p in plain) / cpu / 1e6:.2f} M tokens/CPU-s; the same ids as ours: "
                             f"{same_ids}")
    del plain
    # the same text rows the stage writes (ours writes them; megatron-core's builder has none)
    empty = {k: [None] * len(token_ids) for k in ("corpus", "partition", "source_id", "fim", "fim_start",
                                                  "fim_end", "escaped")} | {"text": [d.text for d in written]}

    def ours():
        prefix = work / "out" / "ours" / "x" / "part-00000"
        prefix.parent.mkdir(parents=True, exist_ok=True)
        w = TokenWriter(str(prefix))
        for start in range(0, len(token_ids), 2048):
            w.write(token_ids[start:start + 2048])
        w.close()

    def ours_with_text():
        w = ShardWriter(work / "out" / "ours" / "y" / "part-00000")
        for start in range(0, len(token_ids), 2048):
            w.write(token_ids[start:start + 2048], {k: v[start:start + 2048] for k, v in empty.items()})
        return w.close()

    _, cpu, wall = timed(ours)
    rows["shards: ours (.bin/.idx, TokenWriter)"] = (tokens * 4 / 1e6 / cpu, cpu, wall, "MB of int32 ids per CPU-s")
    same = None
    try:
        import torch
        from megatron.core.datasets.indexed_dataset import IndexedDataset, IndexedDatasetBuilder

        def theirs():
            prefix = work / "out" / "megatron" / "part-00000"
            prefix.parent.mkdir(parents=True, exist_ok=True)
            b = IndexedDatasetBuilder(f"{prefix}.bin", dtype=np.int32)
            for a in token_ids:
                b.add_item(torch.from_numpy(a))
                b.end_document()
            b.finalize(f"{prefix}.idx")

        _, cpu, wall = timed(theirs)
        rows["shards: megatron-core IndexedDatasetBuilder (.bin/.idx)"] = (tokens * 4 / 1e6 / cpu, cpu, wall,
                                                                          "MB of int32 ids per CPU-s")
        same = all((work / "out" / "ours" / "x" / f"part-00000.{e}").read_bytes()
                   == (work / "out" / "megatron" / f"part-00000.{e}").read_bytes() for e in ("bin", "idx"))
    except ImportError:
        IndexedDataset = None
    _, cpu, wall = timed(ours_with_text)
    rows["shards: ours as the stage writes them (.bin/.idx + Parquet rows with the text, zstd)"] = (
        tokens * 4 / 1e6 / cpu, cpu, wall, "MB of int32 ids per CPU-s")

    # the whole partition: read, FIM, tokenize, write, in a spawned process (its own memory, not this one's)
    params = PhaseParams(sources=[SourceMix(corpus="quality_files", weight=1.0)], fim=fim)
    proc = multiprocessing.get_context("spawn").Process(target=whole_partition, args=(work, src, tokenizer, params))
    proc.start()
    proc.join()
    child = json.loads((work / "child.json").read_text())
    shards = sorted((work / "out" / "phase" / "quality_files" / "full").glob("part-*.idx"))
    read_back = sum(len(IndexedDataset(str(p.with_suffix("")))) for p in shards) if IndexedDataset else None
    rows["whole partition (write_partition)"] = (mb / child["cpu"], child["cpu"], child["wall"],
                                                 f"peak RSS {child['rss']:.0f} MB; {len(shards)} shard{'s' if len(shards) != 1 else ''}")

    print(f"## Training-ready output: {len(texts):,} files, {mb:,.0f} MB of a real crawl\n")
    print("| step | MB/CPU-s | CPU s | wall s | notes |")
    print("|---|---:|---:|---:|---|")
    for name, (rate, cpu, wall, note) in rows.items():
        print(f"| {name} | {rate:.1f} | {cpu:.1f} | {wall:.1f} | {note} |")
    print(f"\nOur .bin/.idx byte for byte the same as megatron-core's builder's: {same}. Megatron's IndexedDataset "
          f"reads {read_back} documents from the partition's shards ({len(written):,} written).")
    # the checks, timed: what they cost on this partition
    phase_root = work / "out" / "phase"
    manifest = {"entries": {"quality_files/full": {**child["entry"], "corpus": "quality_files", "partition": "full"}},
                "special_ids": encoder.special, "eos": encoder.eos, "params": params.model_dump()}
    (phase_root / "manifest.json").write_text(json.dumps(manifest))
    tm, cpu, _ = timed(lambda: tokens_match_shards(phase_root, tokenizer))
    fr, cpu2, _ = timed(lambda: fim_reassembles(phase_root, {"quality_files/full": src}, max_docs=10**9))
    print(f"Checks: tokens_match_shards {tm.passed} ({cpu:.1f} CPU-s), fim_reassembles {fr.passed} over "
          f"{fr.metadata['documents']:,} documents ({cpu2:.1f} CPU-s).")


if __name__ == "__main__":
    main()
