"""An asynchronous client for an OpenAI-compatible oracle (vLLM, or any compatible endpoint).

Many requests are in flight at once (a bounded worker pool over a stream of prompts), each is
retried with exponential backoff on timeouts, 429/5xx and dropped connections, and a reply is
recorded as it arrives so that an interrupted run keeps everything that was answered.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

import aiohttp
import httpx

from seedcoder_assets.core.quality.prompt import parse_rating

Status = Literal["ok", "parse_failure", "error"]


@dataclass(frozen=True)
class OracleSettings:
    base_url: str  # e.g. http://vllm:8000/v1
    model: str
    api_key: str | None = None  # read from the environment by the caller; never logged
    timeout_s: float = 120.0
    max_concurrency: int = 32
    max_retries: int = 5
    backoff_s: float = 0.5
    backoff_max_s: float = 30.0
    temperature: float = 0.0
    max_tokens: int = 512
    structured_regex: str | None = None  # vLLM `structured_outputs.regex`; None for other endpoints
    api: Literal["chat", "completions"] = "chat"
    abort_after_errors: int = 50  # consecutive failed prompts (after retries) that mean "server down"

    def __repr__(self) -> str:  # the key must never reach a log line or run metadata
        return f"OracleSettings(base_url={self.base_url!r}, model={self.model!r}, api_key={'***' if self.api_key else None})"


@dataclass(frozen=True)
class OracleReply:
    status: Status
    rating: int | None
    raw: str | None  # the reply text, kept for parse failures as much as for ratings
    error: str | None
    attempts: int
    latency_s: float
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass
class OracleRunStats:
    asked: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    not_asked: int = 0  # left for a later run after the server was judged down
    aborted: str | None = None
    seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def requests_per_s(self) -> float:
        return self.asked / self.seconds if self.seconds else 0.0


class _Retryable(Exception):
    pass


def _request_body(settings: OracleSettings, prompt: str) -> dict:
    body: dict = {"model": settings.model, "temperature": settings.temperature, "max_tokens": settings.max_tokens}
    if settings.api == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    if settings.structured_regex:
        body["structured_outputs"] = {"regex": settings.structured_regex}
    return body


def _reply_text(settings: OracleSettings, payload: dict) -> str:
    choice = payload["choices"][0]
    return choice["message"]["content"] if settings.api == "chat" else choice["text"]


async def ask(session: aiohttp.ClientSession, settings: OracleSettings, prompt: str,
              rng: random.Random | None = None) -> OracleReply:
    """One prompt, with retries; never raises for server or network trouble."""
    rng = rng or random.Random()
    path = "chat/completions" if settings.api == "chat" else "completions"  # relative to base_url
    start, error = time.perf_counter(), None
    for attempt in range(1, settings.max_retries + 2):
        try:
            async with session.post(path, json=_request_body(settings, prompt)) as response:
                status, body = response.status, await response.text()
            if status == 429 or status >= 500:
                raise _Retryable(f"HTTP {status}")
            if status >= 400:  # our request is wrong: retrying cannot help
                return OracleReply("error", None, None, f"HTTP {status}: {body[:300]}", attempt,
                                   time.perf_counter() - start)
            payload = json.loads(body)
            text = _reply_text(settings, payload)
            usage = payload.get("usage") or {}
            rating = parse_rating(text)
            # A reply cut by max_tokens explains most parse failures: say so next to the raw text.
            note = None if rating is not None else f"finish_reason={payload['choices'][0].get('finish_reason')}"
            return OracleReply("ok" if rating is not None else "parse_failure", rating, text, note, attempt,
                               time.perf_counter() - start, usage.get("prompt_tokens"), usage.get("completion_tokens"))
        except (_Retryable, aiohttp.ClientError, TimeoutError, ValueError, KeyError, IndexError, TypeError) as exc:
            # Client errors cover refused and dropped connections and torn bodies; the others timeouts
            # and malformed bodies. A retry usually fixes all of them.
            error = f"{type(exc).__name__}: {exc}"[:300]
            if attempt <= settings.max_retries:
                delay = min(settings.backoff_max_s, settings.backoff_s * 2 ** (attempt - 1))
                await asyncio.sleep(delay * (0.5 + rng.random() / 2))  # jitter spreads retry storms
    return OracleReply("error", None, None, error, settings.max_retries + 1, time.perf_counter() - start)


async def _run(settings: OracleSettings, prompts: Iterable[tuple[str, str]],
               on_reply: Callable[[str, OracleReply], None], stats: OracleRunStats) -> None:
    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    # aiohttp, not httpx: at 64 connections httpx's pool serves ~100 requests/s where aiohttp serves
    # ~600 against the same server (benchmarks/bench_quality.py).
    connector = aiohttp.TCPConnector(limit=settings.max_concurrency)
    queue: asyncio.Queue[tuple[str, str] | None] = asyncio.Queue(maxsize=settings.max_concurrency * 2)
    consecutive_errors = 0
    stop = asyncio.Event()

    async with aiohttp.ClientSession(base_url=settings.base_url.rstrip("/") + "/", headers=headers,
                                     connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=settings.timeout_s)) as client:

        async def worker(seed: int) -> None:
            nonlocal consecutive_errors
            rng = random.Random(seed)
            while (item := await queue.get()) is not None:
                key, prompt = item
                if stop.is_set():
                    stats.not_asked += 1
                    continue
                reply = await ask(client, settings, prompt, rng)
                stats.asked += 1
                stats.statuses[reply.status] += 1
                stats.retries += reply.attempts - 1
                stats.prompt_tokens += reply.prompt_tokens or 0
                stats.completion_tokens += reply.completion_tokens or 0
                consecutive_errors = consecutive_errors + 1 if reply.status == "error" else 0
                if consecutive_errors >= settings.abort_after_errors and not stop.is_set():
                    stats.aborted = f"{consecutive_errors} prompts in a row failed after retries; last: {reply.error}"
                    stop.set()
                on_reply(key, reply)

        workers = [asyncio.create_task(worker(i)) for i in range(settings.max_concurrency)]
        try:
            for item in prompts:  # a bounded queue: prompts are rendered only as fast as they are sent
                await queue.put(item)
        finally:
            for _ in workers:
                await queue.put(None)
            await asyncio.gather(*workers)


def label(settings: OracleSettings, prompts: Iterable[tuple[str, str]],
          on_reply: Callable[[str, OracleReply], None]) -> OracleRunStats:
    """Ask the oracle about every (key, prompt); `on_reply(key, reply)` is called as each answer arrives."""
    stats = OracleRunStats()
    start = time.perf_counter()
    asyncio.run(_run(settings, prompts, on_reply, stats))
    stats.seconds = time.perf_counter() - start
    return stats


def check_reachable(settings: OracleSettings, timeout_s: float = 10.0) -> str | None:
    """None when `GET /models` answers and serves `settings.model`; otherwise what is wrong, in words."""
    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    try:
        response = httpx.get(settings.base_url.rstrip("/") + "/models", headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        return f"cannot reach {settings.base_url}: {type(exc).__name__}: {exc}"
    if response.status_code != 200:
        return f"{settings.base_url}/models answered HTTP {response.status_code}"
    try:
        served = [m.get("id") for m in response.json().get("data", [])]
    except ValueError:
        return f"{settings.base_url}/models did not answer JSON"
    if served and settings.model not in served:
        return f"{settings.base_url} serves {served}, not {settings.model!r}"
    return None
