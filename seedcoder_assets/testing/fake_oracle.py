"""A small OpenAI-compatible server for tests and benchmarks, with injectable faults.

It speaks `/v1/models`, `/v1/chat/completions` and `/v1/completions` over HTTP/1.1 keep-alive,
rates a file with a deterministic heuristic (comments, structure, literal-heavy data -> 0) and a web
page by another (code-like lines, technical words, the URL's path for its category), and
can answer 500s, drop connections, stall, tear the JSON body or answer without a rating. Faults
are chosen by a hash of the prompt, so a test knows which prompts hit which fault; transient
faults hit only the first attempts, so a retrying client recovers, while an unparseable answer
is permanent for its prompt (like a temperature-0 model).

Run standalone: python -m seedcoder_assets.testing.fake_oracle --port 8011
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import threading
from collections import Counter
from dataclasses import dataclass, field

_CODE_MARK = " code to be assessed:\n"
_PAGE_MARK = "\nPage text:\n"  # the web prompt (core/web/prompt.py)
_CODE_LINE = re.compile(r"[;{}()=]\s*$|^\s*(\$ |>>> |#include|import |from \S+ import|def |class |SELECT |CREATE |"
                        r"git |cmake|<\w+[ >])|\w+\(.*\)|--\w+")
_TECH = re.compile(r"\b(function|variable|compile[rd]?|syntax|argument|parameter|return|module|library|api|"
                   r"command|option|directive|configur\w*|server|query|string|integer|class|method|script|"
                   r"source|build|install|package|debug\w*|exception|error)s?\b", re.I)
_COMMENT = re.compile(r"^\s*(#|//|/\*|\*|--|;|%|\"\"\"|''')")
_DEFINITION = re.compile(r"\b(def|class|function|func|fn|fun|sub|proc|struct|impl|interface|module)\b")


def heuristic_rating(content: str) -> int:
    """A deterministic, learnable stand-in for an LLM judgement, with the zero score policy for data files."""
    lines = [line for line in content.splitlines() if line.strip()]
    if len(lines) < 3:
        return 0
    literal = sum(ch.isdigit() or ch in "\"',[]{}" for ch in content) / max(1, len(content))
    if literal > 0.35:
        return 0
    comments = sum(bool(_COMMENT.match(line)) for line in lines) / len(lines)
    definitions = min(12, len(_DEFINITION.findall(content)))
    long_lines = sum(len(line) > 120 for line in lines) / len(lines)
    score = 2.0 + 12.0 * min(comments, 0.35) + 0.35 * definitions - 6.0 * long_lines
    return max(1, min(10, round(score)))


def heuristic_web_answer(prompt: str) -> str:
    """A deterministic stand-in for an LLM's judgement of a web page (the three lines of the web prompt):
    code-related by the share of code-like lines and of technical words, a category from the URL's path,
    and a rating from both (at most 2 when not code-related)."""
    head, _, text = prompt.partition(_PAGE_MARK)
    url = next((line[5:] for line in head.splitlines() if line.startswith("URL: ")), "").lower()
    lines = [line for line in text.splitlines() if line.strip()]
    words = max(1, len(text.split()))
    code_share = sum(bool(_CODE_LINE.search(line)) for line in lines) / max(1, len(lines))
    tech = len(_TECH.findall(text)) / words
    code_related = code_share >= 0.08 or tech >= 0.02
    path = url.split("//", 1)[-1]
    category = ("reference_api" if re.search(r"/(api|ref|reference|library|mod|functions?)[/._-]", path)
                else "qa_forum" if re.search(r"faq|forum|lists?/|questions|mailing", path)
                else "blog_tutorial" if re.search(r"tutorial|howto|intro|getting.?started|guide", path)
                else "ecommerce" if re.search(r"shop|store|price|buy", path)
                else "documentation" if code_related else "other")
    rating = min(10, round(2 + 25 * code_share + 60 * tech + min(3, words / 800))) if code_related else \
        min(2, round(10 * tech))
    return (f"The page was judged on its technical substance and code.\nCategory: [[{category}]]\n"
            f"Code-related: [[{'yes' if code_related else 'no'}]]\nRating: [[{rating}]]")


@dataclass
class Faults:
    p_500: float = 0.0  # answer HTTP 500 on the first attempt(s)
    p_drop: float = 0.0  # close the connection without answering
    p_torn: float = 0.0  # send half a JSON body
    p_delay: float = 0.0  # stall `delay_s` before answering (a client timeout shorter than that retries)
    delay_s: float = 0.0
    p_unparseable: float = 0.0  # answer text without a rating, on every attempt
    transient_attempts: int = 1  # how many attempts a transient fault lasts
    down: bool = False  # every request gets 503
    p_request_500: float = 0.0  # every request, retries included, fails with this probability (an overloaded server)
    p_too_long: float = 0.0  # these prompts are refused with HTTP 400 on every attempt (prompt over the context)
    latency_s: float = 0.0  # added to every answer (a model's decode time)


@dataclass
class FakeOracleState:
    model: str = "fake-oracle"
    faults: Faults = field(default_factory=Faults)
    attempts: Counter[str] = field(default_factory=Counter)  # prompt hash -> requests seen
    requests: int = 0


def _fraction(digest: bytes, salt: int) -> float:
    return int.from_bytes(hashlib.blake2b(digest + bytes([salt]), digest_size=8).digest(), "big") / 2**64


def _respond(status: int, body: bytes, content_type: str = "application/json") -> bytes:
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error",
              503: "Service Unavailable"}[status]
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n")
    return head.encode() + body


async def _answer(state: FakeOracleState, path: str, body: bytes) -> bytes | None:
    """Bytes to send back, or None to drop the connection."""
    f = state.faults
    if path == "/v1/models":
        return _respond(200, json.dumps({"object": "list", "data": [{"id": state.model, "object": "model"}]}).encode())
    if path not in ("/v1/chat/completions", "/v1/completions"):
        return _respond(404, b'{"error": "not found"}')
    state.requests += 1
    if f.down:
        return _respond(503, b'{"error": "down"}')
    request = json.loads(body)
    chat = "messages" in request
    prompt = request["messages"][-1]["content"] if chat else request["prompt"]
    digest = hashlib.blake2b(prompt.encode(), digest_size=16).digest()
    key = digest.hex()
    state.attempts[key] += 1
    transient = state.attempts[key] <= f.transient_attempts
    if _fraction(digest, 6) < f.p_too_long:
        return _respond(400, b'{"error": "This model\'s maximum context length is 8192 tokens"}')
    if _fraction(hashlib.blake2b(digest + state.attempts[key].to_bytes(4, "big")).digest(), 7) < f.p_request_500:
        return _respond(500, b'{"error": "overloaded"}')
    if transient and _fraction(digest, 1) < f.p_500:
        return _respond(500, b'{"error": "injected"}')
    if transient and _fraction(digest, 2) < f.p_drop:
        return None
    if _fraction(digest, 3) < f.p_delay and transient:
        await asyncio.sleep(f.delay_s)
    if f.latency_s:
        await asyncio.sleep(f.latency_s)
    content = prompt.split(_CODE_MARK, 1)[-1]
    if _fraction(digest, 4) < f.p_unparseable:
        text = "The code is fine overall, I would give it eight out of ten."
    elif _PAGE_MARK in prompt:
        text = heuristic_web_answer(prompt)
    else:
        text = f"The file was judged on readability, modularity, clarity and reusability.\nRating: [[{heuristic_rating(content)}]]"
    choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"} if chat
              else {"index": 0, "text": text, "finish_reason": "stop"})
    payload = json.dumps({"id": key, "object": "chat.completion" if chat else "text_completion", "model": state.model,
                          "choices": [choice],
                          "usage": {"prompt_tokens": len(prompt) // 4, "completion_tokens": len(text) // 4}}).encode()
    if transient and _fraction(digest, 5) < f.p_torn:
        return _respond(200, payload)[: -len(payload) // 2]  # headers promise more than arrives
    return _respond(200, payload)


async def _handle(state: FakeOracleState, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            path = request_line.split(" ")[1]
            length = 0
            for line in header_lines:
                if line.lower().startswith("content-length:"):
                    length = int(line.split(":", 1)[1])
            body = await reader.readexactly(length) if length else b""
            out = await _answer(state, path, body)
            if out is None:
                break
            writer.write(out)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


class FakeOracle:
    """Serves on 127.0.0.1 from a background thread: `with FakeOracle() as oracle: oracle.base_url`."""

    def __init__(self, faults: Faults | None = None, model: str = "fake-oracle", port: int = 0) -> None:
        self.state = FakeOracleState(model=model, faults=faults or Faults())
        self._port = port
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(lambda r, w: _handle(self.state, r, w), "127.0.0.1", self._port,
                                            backlog=1024)
        self._port = server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stop.wait()
        server.close()
        handlers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/v1"

    def __enter__(self) -> FakeOracle:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8011)
    parser.add_argument("--model", default="fake-oracle")
    parser.add_argument("--latency-s", type=float, default=0.0)
    args = parser.parse_args()
    state = FakeOracleState(model=args.model, faults=Faults(latency_s=args.latency_s))

    async def serve() -> None:
        server = await asyncio.start_server(lambda r, w: _handle(state, r, w), "127.0.0.1", args.port, backlog=4096)
        print(f"fake oracle on http://127.0.0.1:{args.port}/v1", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
