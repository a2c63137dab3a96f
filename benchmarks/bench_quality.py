"""Quality branch throughput on real files: scorer training and inference on CPU.

    python benchmarks/bench_quality.py --files <syntax_checked_files partition> [--train-n 1500] [--score-n 4000]

Each measurement runs in its own process (peak RSS is that process's VmHWM). Labels come from the
fake oracle's deterministic heuristic (no LLM is reachable here), so MAE figures show the scorer
learns a rating function from content; they are not the paper's MAE against DeepSeek-V2. Train and
test are split by project (releases of one project on one side), as the pipeline does, and the tiny
Llama's tokenizer is trained without the test projects.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

PY = sys.executable
HERE = Path(__file__).resolve()


def vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _subset(files: str, n: int, dst: str) -> str:
    """A seeded uniform sample of `n` files of a partition, as a partition of its own (a fixed, real input)."""
    import random

    from seedcoder_assets.core.parquet_io import PartWriter, sample_rows
    from seedcoder_assets.core.schemas import FILE_SCHEMA

    if Path(dst, "_SUCCESS").exists():
        return dst
    rows = sample_rows(files, FILE_SCHEMA.names, n, seed=0)
    random.Random(0).shuffle(rows)
    with PartWriter(dst, FILE_SCHEMA) as out:
        out.write_rows(rows)
    return dst


def _examples(files: str, n: int):
    from seedcoder_assets.core.parquet_io import iter_batches
    from seedcoder_assets.core.quality.scorer import Example
    from seedcoder_assets.testing.fake_oracle import heuristic_rating

    out = []
    for batch in iter_batches(files, ["id", "repo", "language", "content"]):
        for row in batch.to_pylist():
            out.append(Example(row["id"], row["language"], row["content"], heuristic_rating(row["content"]),
                               row["repo"]))
            if len(out) >= n:
                return out
    return out


def cmd_train(args: argparse.Namespace) -> dict:
    from seedcoder_assets.core.quality.scorer import ScorerConfig, train_scorer

    examples = _examples(args.files, args.n)
    config = ScorerConfig(max_tokens=args.max_tokens, batch_size=args.batch_size, learning_rate=args.lr,
                          epochs=args.epochs, test_fraction=0.1, threads=os.cpu_count() or 2)
    start = time.perf_counter()
    report = train_scorer(examples, args.backbone, args.out, config, "bench", log=lambda m: None)
    ev = report.evaluation
    return {"backbone": args.name or Path(args.backbone).name, "n_train": report.n_train, "n_test": report.n_test,
            "max_tokens": args.max_tokens, "input_format": report.input_format, "epochs": args.epochs,
            "train_s": round(report.train_seconds, 1), "examples_per_s": round(report.n_train * args.epochs /
                                                                                  report.train_seconds, 2),
            "tokens_per_s": round(report.train_tokens / report.train_seconds), "mae": round(ev.mae, 3),
            "cmae": "n/a" if ev.cmae != ev.cmae else round(ev.cmae, 3), "cmae_present": round(ev.cmae_present, 3),
            "ratings_missing": ev.ratings_missing, "baseline_mae": round(ev.baseline_mae, 3),
            "total_s": round(time.perf_counter() - start, 1), "peak_rss_mb": round(vm_hwm_mb())}


def cmd_score(args: argparse.Namespace) -> dict:
    from seedcoder_assets.core.quality.corpus import score_files
    from seedcoder_assets.core.quality.scorer import QualityScorer

    scorer = QualityScorer.load(args.model, threads=os.cpu_count() or 2)
    stats = score_files(scorer, args.files, args.out, batch_size=args.batch_size)
    return {"model": args.name or Path(args.model).name, "batch_size": args.batch_size, "files": stats.files,
            "files_per_s": round(stats.files_per_s, 1), "tokens_per_s": round(stats.tokens_per_s),
            "mb_per_s": round(stats.bytes / 1e6 / stats.seconds, 3), "peak_rss_mb": round(vm_hwm_mb())}


def _child(*argv: str) -> dict:
    out = subprocess.run([PY, str(HERE), *argv], check=True, capture_output=True, text=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def _table(rows: list[dict]) -> str:
    cols = list(rows[0])
    return "\n".join(["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
                     + ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows])


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd")
    for name in ("train", "score"):
        s = sub.add_parser(name)
        s.add_argument("--files", required=True)
        s.add_argument("--n", type=int, default=1000)
        s.add_argument("--out", default="")
        s.add_argument("--backbone", default="")
        s.add_argument("--model", default="")
        s.add_argument("--max-tokens", type=int, default=256)
        s.add_argument("--batch-size", type=int, default=16)
        s.add_argument("--lr", type=float, default=2e-4)
        s.add_argument("--epochs", type=int, default=1)
        s.add_argument("--name", default="")
    p.add_argument("--files", help="a syntax_checked_files partition (the large crawl's, for the README)")
    p.add_argument("--train-n", type=int, default=1500)
    p.add_argument("--score-n", type=int, default=3000)
    p.add_argument("--work", default="benchmarks/out/work/quality")
    args = p.parse_args()
    if args.cmd:
        print(json.dumps({"train": cmd_train, "score": cmd_score}[args.cmd](args)))
        return

    from seedcoder_assets.core.quality.scorer import build_tiny_llama, minilm_path

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    subset = _subset(args.files, args.score_n, str(work / "files"))

    tiny = work / "tiny-llama"
    if not (tiny / "config.json").exists():  # its tokenizer never sees a test project (the scorer's split rule)
        from seedcoder_assets.core.parquet_io import iter_batches
        from seedcoder_assets.core.quality.scorer import is_held_out, split_group

        build_tiny_llama((t for b in iter_batches(subset, ["repo", "content"])
                          for r, t in zip(b.column("repo").to_pylist(), b.column("content").to_pylist())
                          if not is_held_out(split_group(r), 0.1, 0)), tiny)
    print("## Scorer training on CPU (one epoch, MSE; heuristic labels)\n")
    train_rows = []
    for name, backbone, lr, epochs in (("tiny-llama", str(tiny), 1e-3, 1), ("minilm", minilm_path(), 2e-4, 1),
                                       ("minilm", minilm_path(), 2e-4, 2)):
        out = work / f"scorer-{name}-{epochs}"
        train_rows.append(_child("train", "--files", subset, "--n", str(args.train_n), "--backbone", backbone,
                                 "--out", str(out), "--lr", str(lr), "--epochs", str(epochs), "--max-tokens", "256",
                                 "--name", name))
    print(_table(train_rows) + "\n")

    print(f"## Scorer inference on CPU ({args.score_n} real files, length-bucketed batches)\n")
    score_rows = [_child("score", "--files", subset, "--model", str(work / f"scorer-{name}-1"), "--out",
                         str(work / f"scores-{name}-{bs}"), "--batch-size", str(bs), "--name", name)
                  for name in ("tiny-llama", "minilm") for bs in (8, 32)]
    print(_table(score_rows))


if __name__ == "__main__":
    main()
