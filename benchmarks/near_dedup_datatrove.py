"""datatrove's 4-stage MinHash dedup, reading and writing Parquet like our stages; run in benchmarks/.venv-datatrove.

    .venv-datatrove/bin/python near_dedup_datatrove.py INPUT_PARTITION WORKDIR [--buckets 32 --hashes 4]

INPUT_PARTITION is a folder of Parquet parts with `id` and `content` (our exact_deduped_files).
Writes the kept files as Parquet (WORKDIR/kept) as its pipeline does, and, after the timer,
WORKDIR/assign.jsonl: {id, cluster, kept} for every file.
"""

import argparse
import json
import re
import time
from pathlib import Path

import pyarrow.parquet as pq
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup.minhash import (
    MinhashConfig,
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupFilter,
    MinhashDedupSignature,
)
from datatrove.pipeline.readers import ParquetReader
from datatrove.pipeline.writers import ParquetWriter
from datatrove.utils.word_tokenizers import WordTokenizer


class RegexWords(WordTokenizer):
    """The default 'en' tokenizer needs spaCy; code is split on \\w+ like the truth's definition."""

    def word_tokenize(self, text):
        return re.findall(r"\w+", text)

    def sent_tokenize(self, text):
        return [text]

    def span_tokenize(self, text):
        return [(0, len(text))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("work")
    ap.add_argument("--buckets", type=int, default=32)
    ap.add_argument("--hashes", type=int, default=4)
    a = ap.parse_args()
    w = Path(a.work)
    cfg = MinhashConfig(n_grams=5, num_buckets=a.buckets, hashes_per_bucket=a.hashes)

    def reader():  # the id and the text only, as our steps read them
        return ParquetReader(a.input, glob_pattern="*.parquet", id_key="id", text_key="content", read_metadata=False)

    t0 = time.perf_counter()
    stages = [
        [reader(), MinhashDedupSignature(output_folder=f"{w}/sigs", config=cfg, language=RegexWords())],
        [MinhashDedupBuckets(input_folder=f"{w}/sigs", output_folder=f"{w}/buckets", config=cfg)],
        [MinhashDedupCluster(input_folder=f"{w}/buckets", output_folder=f"{w}/remove", config=cfg,
                             save_cluster_id=True)],
        [reader(),
         MinhashDedupFilter(input_folder=f"{w}/remove", exclusion_writer=ParquetWriter(f"{w}/removed"),
                            load_cluster_ids=True),
         ParquetWriter(f"{w}/kept")],
    ]
    tasks = [1, cfg.num_buckets, 1, 1]
    for i, (pipe, n) in enumerate(zip(stages, tasks)):
        LocalPipelineExecutor(pipeline=pipe, tasks=n, workers=1, logging_dir=f"{w}/logs{i}").run()
    seconds = time.perf_counter() - t0
    with open(w / "assign.jsonl", "w") as out:
        for kept, folder in ((True, "kept"), (False, "removed")):
            for f in sorted((w / folder).glob("*.parquet")):
                t = pq.read_table(f, columns=["id", "metadata"]).to_pylist()
                for row in t:
                    cluster = (row.get("metadata") or {}).get("minhash_cluster_id", -1)
                    out.write(json.dumps({"id": row["id"], "cluster": cluster, "kept": kept}) + "\n")
    hwm = next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM:"))
    print(json.dumps({"seconds": seconds, "peak_rss_mb": hwm / 1024}))


if __name__ == "__main__":
    main()
