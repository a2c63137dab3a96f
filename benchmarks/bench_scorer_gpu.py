"""Scorer throughput on a GPU: bf16 training steps and inference over a batch-size sweep, on real files.

    python benchmarks/bench_scorer_gpu.py --backbone /models/llama-1.3b --files <syntax_checked_files partition> \\
        [--batch-sizes 8,16,32,64] [--max-tokens 2048] [--precision bf16] [--device cuda]

For each batch size: training examples/s and tokens/s over `--steps` AdamW steps (after 2 warm-up
steps), inference files/s and tokens/s, and peak GPU memory. The same code path as the assets
(`train_scorer`'s encoder and autocast; `QualityScorer.score`). It also runs on CPU for a dry run:
`--device cpu --precision fp32 --backbone <tiny llama>`.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", required=True)
    p.add_argument("--files", required=True)
    p.add_argument("--batch-sizes", default="8,16,32,64")
    p.add_argument("--max-tokens", type=int, default=2048)
    p.add_argument("--input-format", default="auto")
    p.add_argument("--precision", default="bf16", choices=["bf16", "fp16", "fp32"])
    p.add_argument("--device", default="cuda")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--n-files", type=int, default=2048)
    args = p.parse_args()

    import torch

    from seedcoder_assets.core.parquet_io import iter_batches
    from seedcoder_assets.core.quality.scorer import Encoder, QualityScorer, _load_for_regression

    items: list[tuple[str, str]] = []
    for batch in iter_batches(args.files, ["language", "content"]):
        items += list(zip(batch.column("language").to_pylist(), batch.column("content").to_pylist()))
        if len(items) >= args.n_files:
            break
    items = items[: args.n_files]
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[args.precision]
    tokenizer, model = _load_for_regression(args.backbone)
    model.to(args.device)
    fmt = args.input_format
    if fmt == "auto":
        fmt = "prompt" if Encoder(tokenizer, "prompt", args.max_tokens).content_budget() >= 256 else "content"
    encode = Encoder(tokenizer, fmt, args.max_tokens)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    cuda = args.device.startswith("cuda")
    results = []
    for bs in [int(b) for b in args.batch_sizes.split(",")]:
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        try:
            model.train()
            tokens, times = 0, []
            for step in range(args.steps + 2):
                chunk = [items[(step * bs + i) % len(items)] for i in range(bs)]
                enc = encode(chunk).to(args.device)
                target = torch.rand(bs, device=args.device) * 10
                if cuda:
                    torch.cuda.synchronize()
                start = time.perf_counter()
                with torch.autocast(device_type=args.device.split(":")[0], dtype=dtype, enabled=dtype is not None):
                    loss = torch.nn.functional.mse_loss(model(**enc).logits.squeeze(-1).float(), target)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                if cuda:
                    torch.cuda.synchronize()
                if step >= 2:  # warm-up steps (allocator, kernels) are not timed
                    times.append(time.perf_counter() - start)
                    tokens += int(enc["attention_mask"].sum())
            train_s = float(np.sum(times))
            scorer = QualityScorer(model, tokenizer, fmt, args.max_tokens, "bench", args.device, dtype)
            start = time.perf_counter()
            scorer.score(items, batch_size=bs)
            if cuda:
                torch.cuda.synchronize()
            infer_s = time.perf_counter() - start
            row = {"batch_size": bs, "train_examples_per_s": round(bs * args.steps / train_s, 2),
                   "train_tokens_per_s": round(tokens / train_s), "infer_files_per_s": round(len(items) / infer_s, 1),
                   "infer_tokens_per_s": round(scorer.tokens_seen / infer_s),
                   "peak_gpu_mem_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None}
        except torch.OutOfMemoryError:
            row = {"batch_size": bs, "error": "out of memory"}
            if cuda:
                torch.cuda.empty_cache()
        results.append(row)
        print(json.dumps(row), flush=True)
    print(json.dumps({"backbone": args.backbone, "input_format": fmt, "max_tokens": args.max_tokens,
                      "precision": args.precision, "device": args.device, "results": results}))


if __name__ == "__main__":
    main()
