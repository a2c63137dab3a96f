"""Oracle client throughput: ours (aiohttp underneath) vs bare httpx and aiohttp loops, same server.

    python benchmarks/bench_oracle_clients.py --files <syntax_checked_files partition>

The server is the fake OpenAI-compatible oracle in another process (`--latency` stands in for a
model's decode time); prompts are the A.2.1 prompt around real files. Requests/s at 1, 8 and 64
requests in flight show whether the client could ever be the bottleneck in front of a vLLM server.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time

import aiohttp
import httpx

from seedcoder_assets.core.parquet_io import iter_batches
from seedcoder_assets.core.quality.oracle import OracleSettings, label
from seedcoder_assets.core.quality.prompt import render_prompt


def _prompts(files: str, n: int) -> list[tuple[str, str]]:
    out = []
    for batch in iter_batches(files, ["id", "language", "content"]):
        for row in batch.to_pylist():
            out.append((row["id"], render_prompt(row["language"], row["content"], 24_000).text))
            if len(out) == n:
                return out
    return out


def _body(prompt: str) -> dict:
    return {"model": "fake-oracle", "messages": [{"role": "user", "content": prompt}], "max_tokens": 512}


async def _httpx(url: str, prompts, c: int) -> None:
    sem = asyncio.Semaphore(c)
    async with httpx.AsyncClient(base_url=url, limits=httpx.Limits(max_connections=c, max_keepalive_connections=c),
                                 timeout=120) as client:
        async def one(p: str) -> None:
            async with sem:
                (await client.post("/chat/completions", json=_body(p))).json()

        await asyncio.gather(*(one(p) for _, p in prompts))


async def _aiohttp(url: str, prompts, c: int) -> None:
    sem = asyncio.Semaphore(c)
    async with aiohttp.ClientSession(base_url=url + "/", connector=aiohttp.TCPConnector(limit=c)) as session:
        async def one(p: str) -> None:
            async with sem, session.post("chat/completions", json=_body(p)) as r:
                await r.json()

        await asyncio.gather(*(one(p) for _, p in prompts))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", required=True)
    ap.add_argument("--port", type=int, default=8471)
    args = ap.parse_args()
    print("| client | in flight | server latency ms | requests | requests/s |\n|---|---|---|---|---|")
    for latency, n in ((0.0, 2000), (0.05, 600)):
        server = subprocess.Popen([sys.executable, "-m", "seedcoder_assets.testing.fake_oracle", "--port",
                                   str(args.port), "--latency-s", str(latency)], stdout=subprocess.PIPE, text=True)
        server.stdout.readline()
        url = f"http://127.0.0.1:{args.port}/v1"
        prompts = _prompts(args.files, n)
        try:
            for c in (1, 8, 64):
                for name, run in (("ours", None), ("httpx", _httpx), ("aiohttp", _aiohttp)):
                    start = time.perf_counter()
                    if run is None:
                        label(OracleSettings(url, "fake-oracle", max_concurrency=c), prompts, lambda k, r: None)
                    else:
                        asyncio.run(run(url, prompts, c))
                    rate = len(prompts) / (time.perf_counter() - start)
                    print(f"| {name} | {c} | {latency * 1000:.0f} | {len(prompts)} | {rate:.0f} |", flush=True)
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
