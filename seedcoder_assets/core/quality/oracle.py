"""An asynchronous client for an OpenAI-compatible oracle (vLLM, or any compatible endpoint).

Many requests are in flight at once (a bounded worker pool over a stream of prompts), each is
retried with exponential backoff on timeouts, 429/5xx and dropped connections, and a reply is
recorded as it arrives so that an interrupted run keeps everything that was answered.
"""

from __future__ import annotations

import asyncio
import collections
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
    # "The server is down": over the last `outage_window` requests, at least `outage_error_share` were server
    # failures (5xx, 429, timeouts, dropped connections). Refusals of a request (4xx) are that file's problem.
    outage_window: int = 100
    outage_error_share: float = 0.8

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
    server_failures: int = 0  # attempts that failed on the server's side (5xx, 429, timeouts, connections)


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


class _MalformedReply(ValueError):
    """The server answered 200 with a body that is not an OpenAI completion (a torn or odd body)."""


def _request_body(settings: OracleSettings, prompt: str) -> dict:
    body: dict = {"model": settings.model, "temperature": settings.temperature, "max_tokens": settings.max_tokens}
    if settings.api == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    if settings.structured_regex:
        body["structured_outputs"] = {"regex": settings.structured_regex}
    return body


def _parse_reply(settings: OracleSettings, body: str) -> tuple[str, dict, str | None]:
    """(reply text, usage, finish_reason) of a completion body; `_MalformedReply` for anything else.

    Only the body's shape is guarded here, so a TypeError or KeyError of our own code elsewhere is
    never mistaken for a bad answer and retried away.
    """
    try:
        payload = json.loads(body)
        choice = payload["choices"][0]
        text = choice["message"]["content"] if settings.api == "chat" else choice["text"]
        usage = payload.get("usage") or {}
        finish = choice.get("finish_reason")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise _MalformedReply(f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(text, str) or not isinstance(usage, dict):
        raise _MalformedReply(f"reply text is {type(text).__name__}")
    return text, usage, finish


Parse = Callable[[str], int | None]  # a reply's rating, or None: the reply does not parse


async def ask(session: aiohttp.ClientSession, settings: OracleSettings, prompt: str,
              rng: random.Random | None = None, parse: Parse | None = None) -> OracleReply:
    """One prompt, with retries; never raises for server or network trouble. `parse` reads the rating
    (the A.2.1 `Rating: [[X]]` by default; the web prompt's three lines for pages)."""
    rng = rng or random.Random()
    path = "chat/completions" if settings.api == "chat" else "completions"  # relative to base_url
    start, error, server_failures = time.perf_counter(), None, 0
    request = _request_body(settings, prompt)
    for attempt in range(1, settings.max_retries + 2):
        try:
            async with session.post(path, json=request) as response:
                status, body = response.status, await response.text()
            if status == 429 or status >= 500:
                raise _Retryable(f"HTTP {status}")
            if status >= 400:  # our request is wrong: retrying cannot help
                return OracleReply("error", None, None, f"HTTP {status}: {body[:300]}", attempt,
                                   time.perf_counter() - start, server_failures=server_failures)
            text, usage, finish = _parse_reply(settings, body)
            rating = (parse or parse_rating)(text)
            # A reply cut by max_tokens explains most parse failures: say so next to the raw text.
            note = None if rating is not None else f"finish_reason={finish}"
            return OracleReply("ok" if rating is not None else "parse_failure", rating, text, note, attempt,
                               time.perf_counter() - start, usage.get("prompt_tokens"), usage.get("completion_tokens"),
                               server_failures)
        except (_Retryable, _MalformedReply, aiohttp.ClientError, TimeoutError) as exc:
            # Refused and dropped connections, torn bodies, timeouts, 5xx/429: a retry usually fixes them.
            error = f"{type(exc).__name__}: {exc}"[:300]
            server_failures += 1
            if attempt <= settings.max_retries:
                delay = min(settings.backoff_max_s, settings.backoff_s * 2 ** (attempt - 1))
                await asyncio.sleep(delay * (0.5 + rng.random() / 2))  # jitter spreads retry storms
    return OracleReply("error", None, None, error, settings.max_retries + 1, time.perf_counter() - start,
                       server_failures=server_failures)


async def _run(settings: OracleSettings, prompts: Iterable[tuple[str, str]],
               on_reply: Callable[[str, OracleReply], None], stats: OracleRunStats, parse: Parse | None) -> None:
    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    # aiohttp, not httpx: at 64 connections httpx's pool serves ~100 requests/s where aiohttp serves
    # ~600 against the same server (benchmarks/bench_quality.py).
    connector = aiohttp.TCPConnector(limit=settings.max_concurrency)
    queue: asyncio.Queue[tuple[str, str] | None] = asyncio.Queue(maxsize=settings.max_concurrency * 2)
    recent: collections.deque[bool] = collections.deque(maxlen=settings.outage_window)  # True = server failure
    stop = asyncio.Event()

    async with aiohttp.ClientSession(base_url=settings.base_url.rstrip("/") + "/", headers=headers,
                                     connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=settings.timeout_s)) as client:

        async def worker(seed: int) -> None:
            rng = random.Random(seed)
            while (item := await queue.get()) is not None:
                key, prompt = item
                if stop.is_set():
                    stats.not_asked += 1
                    continue
                reply = await ask(client, settings, prompt, rng, parse)
                stats.asked += 1
                stats.statuses[reply.status] += 1
                stats.retries += reply.attempts - 1
                stats.prompt_tokens += reply.prompt_tokens or 0
                stats.completion_tokens += reply.completion_tokens or 0
                recent.extend([True] * reply.server_failures + [False] * (reply.attempts - reply.server_failures))
                failed = sum(recent)
                if (len(recent) >= settings.outage_window and failed >= settings.outage_error_share * len(recent)
                        and not stop.is_set()):
                    stats.aborted = (f"{failed} of the last {len(recent)} requests failed on the server's side; "
                                     f"last: {reply.error}")
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
          on_reply: Callable[[str, OracleReply], None], parse: Parse | None = None) -> OracleRunStats:
    """Ask the oracle about every (key, prompt); `on_reply(key, reply)` is called as each answer arrives."""
    stats = OracleRunStats()
    start = time.perf_counter()
    asyncio.run(_run(settings, prompts, on_reply, stats, parse))
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
