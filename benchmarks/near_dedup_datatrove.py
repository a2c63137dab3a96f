"""datatrove's 4-stage MinHash dedup on a JSONL of {id, text}; run with benchmarks/.venv-datatrove.

    .venv-datatrove/bin/python near_dedup_datatrove.py INPUT.jsonl WORKDIR

Writes WORKDIR/assign.jsonl: {id, cluster, kept} for every document.
"""

import json
import re
import sys
import time
from pathlib import Path

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup.minhash import (
    MinhashConfig,
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupFilter,
    MinhashDedupSignature,
)
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
from datatrove.utils.word_tokenizers import WordTokenizer


class RegexWords(WordTokenizer):
    """The default 'en' tokenizer needs spaCy; code is split on \\w+ like our own shingler."""

    def word_tokenize(self, text):
        return re.findall(r"\w+", text)

    def sent_tokenize(self, text):
        return [text]

    def span_tokenize(self, text):
        return [(0, len(text))]


def main(inp: str, work: str) -> None:
    w = Path(work)
    cfg = MinhashConfig()  # datatrove defaults: 5-grams, 14 buckets x 8 hashes
    src = str(Path(inp).parent)
    glob = Path(inp).name
    t0 = time.perf_counter()
    stages = [
        [JsonlReader(src, glob_pattern=glob, id_key="id", text_key="text"),
         MinhashDedupSignature(output_folder=f"{w}/sigs", config=cfg, language=RegexWords())],
        [MinhashDedupBuckets(input_folder=f"{w}/sigs", output_folder=f"{w}/buckets", config=cfg)],
        [MinhashDedupCluster(input_folder=f"{w}/buckets", output_folder=f"{w}/remove", config=cfg,
                             save_cluster_id=True)],
        [JsonlReader(src, glob_pattern=glob, id_key="id", text_key="text"),
         MinhashDedupFilter(input_folder=f"{w}/remove", exclusion_writer=JsonlWriter(f"{w}/removed", compression=None),
                            load_cluster_ids=True),
         JsonlWriter(f"{w}/kept", compression=None)],
    ]
    tasks = [1, cfg.num_buckets, 1, 1]
    for i, (pipe, n) in enumerate(zip(stages, tasks)):
        LocalPipelineExecutor(pipeline=pipe, tasks=n, workers=1, logging_dir=f"{w}/logs{i}").run()
    seconds = time.perf_counter() - t0
    with open(w / "assign.jsonl", "w") as out:
        for kept, folder in ((True, "kept"), (False, "removed")):
            for f in sorted((w / folder).glob("*.jsonl")):
                for line in f.open():
                    d = json.loads(line)
                    out.write(json.dumps({"id": d["id"], "cluster": d["metadata"].get("minhash_cluster_id", -1),
                                          "kept": kept}) + "\n")
    hwm = next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM:"))
    print(json.dumps({"seconds": seconds, "peak_rss_mb": hwm / 1024}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
