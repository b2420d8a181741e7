"""A very fast mock of OpenAI's chat completions endpoint, for benchmarks only.

Raw asyncio Protocol + httptools (+ uvloop when installed): one process serves ~90k req/s on
one core, so the gateway under test, not the mock, is always the bottleneck. It speaks the real
wire format: `POST /v1/chat/completions` answers a JSON chat completion with `usage`, or, when
the body says `"stream": true`, an SSE stream (chunked transfer encoding) of several `data:`
chunks, a usage chunk when `stream_options.include_usage` is true, then `data: [DONE]`.
HTTP/1.1 keep-alive; `GET /health` answers 200. Bodies are inspected with byte patterns, never
parsed, to keep the mock's own cost negligible.

    python bench/mock_upstream.py --port 9100 [--delay-ms 0] [--chunks 8] [--chunk-delay-ms 0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import httptools

T = TypeVar("T")

_STREAM = re.compile(rb'"stream"\s*:\s*true')
_USAGE = re.compile(rb'"include_usage"\s*:\s*true')
_MODEL = re.compile(rb'"model"\s*:\s*"([^"\\]{1,100})"')

PROMPT_TOKENS, COMPLETION_TOKENS = 9, 12
_WORDS = ["Hello", "!", " How", " can", " I", " assist", " you", " today", "?", " Just", " ask", "."]


def _chat_json(model: str, created: int) -> bytes:
    body = {
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Hello! How can I assist you today?",
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": COMPLETION_TOKENS,
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_06737a9306",
    }
    return json.dumps(body, separators=(",", ":")).encode()


def _sse_events(model: str, created: int, chunks: int, include_usage: bool) -> list[bytes]:
    """The `data:` events of one stream, each framed as one HTTP chunk."""
    base = {
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "service_tier": "default",
        "system_fingerprint": "fp_06737a9306",
    }
    extra = {"usage": None} if include_usage else {}
    deltas: list[tuple[dict[str, object], object]] = [
        ({"role": "assistant", "content": "", "refusal": None}, None)
    ]
    for i in range(max(1, chunks)):
        deltas.append(({"content": _WORDS[i % len(_WORDS)]}, None))
    deltas.append(({}, "stop"))
    events = []
    for delta, finish in deltas:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        events.append({**base, "choices": [choice], **extra})
    if include_usage:
        usage = {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": max(1, chunks),
            "total_tokens": PROMPT_TOKENS + max(1, chunks),
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        }
        events.append({**base, "choices": [], "usage": usage})
    out = [b"data: " + json.dumps(e, separators=(",", ":")).encode() + b"\n\n" for e in events]
    out.append(b"data: [DONE]\n\n")
    return [b"%x\r\n%s\r\n" % (len(e), e) for e in out]


_COMMON = (
    b"date: Thu, 01 Jan 2026 00:00:00 GMT\r\nopenai-version: 2020-10-01\r\nopenai-processing-ms: 120\r\n"
)
_JSON_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n" + _COMMON + b"x-request-id: req_mock\r\n"
)
_SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
    b"transfer-encoding: chunked\r\ncache-control: no-cache\r\n" + _COMMON + b"x-request-id: req_mock\r\n"
)
_END_CHUNK = b"0\r\n\r\n"


class Responses:
    """Pre-rendered responses per (model, stream, include_usage); rendering is done once."""

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks
        self.created = int(time.time())
        self._json: dict[str, bytes] = {}
        self._sse: dict[tuple[str, bool], list[bytes]] = {}

    def json(self, model: str, keep_alive: bool) -> bytes:
        body = self._json.get(model)
        if body is None:
            body = self._json[model] = _chat_json(model, self.created)
        conn = b"" if keep_alive else b"connection: close\r\n"
        return _JSON_HEAD + conn + b"content-length: %d\r\n\r\n" % len(body) + body

    def sse(self, model: str, include_usage: bool, keep_alive: bool) -> tuple[bytes, list[bytes]]:
        events = self._sse.get((model, include_usage))
        if events is None:
            events = self._sse[(model, include_usage)] = _sse_events(
                model, self.created, self.chunks, include_usage
            )
        conn = b"" if keep_alive else b"connection: close\r\n"
        return _SSE_HEAD + conn + b"\r\n", [*events, _END_CHUNK]


_NOT_FOUND = (
    b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 76\r\n\r\n"
    b'{"error":{"message":"mock: unknown route","type":"invalid_request_error"}}\r\n'
)
_HEALTH = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok"


class MockProtocol(asyncio.Protocol):
    """One connection. Requests are answered in order (pipelining-safe when there is no delay)."""

    def __init__(self, responses: Responses, delay: float, chunk_delay: float) -> None:
        self.responses = responses
        self.delay = delay
        self.chunk_delay = chunk_delay
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body: list[bytes] = []

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                self.transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        keep_alive = self.parser.should_keep_alive()
        method = self.parser.get_method()
        path = self.url.split(b"?", 1)[0]
        body = b"".join(self.body)
        if method == b"POST" and path.endswith(b"/chat/completions"):
            m = _MODEL.search(body)
            model = m.group(1).decode() if m else "gpt-4o-mini"
            if _STREAM.search(body):
                head, events = self.responses.sse(model, bool(_USAGE.search(body)), keep_alive)
                self._answer_stream(head, events, keep_alive)
            else:
                self._answer(self.responses.json(model, keep_alive), keep_alive)
        elif method == b"GET" and path in (b"/health", b"/v1/health"):
            self._answer(_HEALTH, keep_alive)
        else:
            self._answer(_NOT_FOUND, keep_alive)

    # answers
    def _answer(self, data: bytes, keep_alive: bool) -> None:
        if self.delay:
            asyncio.get_running_loop().call_later(self.delay, self._write, data, keep_alive)
        else:
            self._write(data, keep_alive)

    def _write(self, data: bytes, keep_alive: bool) -> None:
        t = self.transport
        if t is None:
            return
        t.write(data)
        if not keep_alive:
            t.close()

    def _answer_stream(self, head: bytes, events: list[bytes], keep_alive: bool) -> None:
        if not self.delay and not self.chunk_delay:
            self._write(head + b"".join(events), keep_alive)
            return
        asyncio.get_running_loop().create_task(self._stream(head, events, keep_alive))

    async def _stream(self, head: bytes, events: list[bytes], keep_alive: bool) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.transport is None:
            return
        self.transport.write(head)
        for ev in events:
            if self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
            if self.transport is None:
                return
            self.transport.write(ev)
        if not keep_alive and self.transport is not None:
            self.transport.close()


async def serve(host: str, port: int, delay_ms: float, chunks: int, chunk_delay_ms: float) -> None:
    loop = asyncio.get_running_loop()
    responses = Responses(chunks)
    server = await loop.create_server(
        lambda: MockProtocol(responses, delay_ms / 1000, chunk_delay_ms / 1000),
        host,
        port,
        backlog=4096,
        reuse_address=True,
    )
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"mock upstream listening on http://{host}:{port}", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9100)
    p.add_argument("--delay-ms", type=float, default=0.0, help="delay before the response (first byte)")
    p.add_argument("--chunks", type=int, default=8, help="content chunks per SSE stream")
    p.add_argument("--chunk-delay-ms", type=float, default=0.0, help="delay between SSE chunks")
    a = p.parse_args(argv)
    run_loop(serve(a.host, a.port, a.delay_ms, a.chunks, a.chunk_delay_ms))


def run_loop(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


if __name__ == "__main__":
    main()
