"""What the client gets, and what is recorded, for every way an upstream can fail (the README's
failure table). The upstream is a raw asyncio server misbehaving exactly as each row says."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tests.integration.conftest import GatewayFactory, Running

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi there"}]}
Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def chunk(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


DELTA = chunk({"model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"content": "partial answer"}}]})
DONE = b"data: [DONE]\n\n"
SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunked(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


async def read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (int(ln.split(b":")[1]) for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")), 0
    )
    await reader.readexactly(length)


def answer(status: int, body: bytes, content_type: str = "application/json") -> Behaviour:
    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        head = f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
        writer.write(head.encode() + body)
        await writer.drain()

    return run


def stream(events: list[bytes], *, then: str = "end", pause: float = 0.0) -> Behaviour:
    """SSE events, then "end" (a proper last chunk), "reset" (the connection cut) or "stall"."""

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(SSE_HEAD)
        for event in events:
            writer.write(chunked(event))
            await writer.drain()
            await asyncio.sleep(pause)
        if then == "end":
            writer.write(b"0\r\n\r\n")
        elif then == "reset":
            writer.transport.abort()
            return
        elif then == "stall":
            await asyncio.sleep(30)
        await writer.drain()

    return run


def silent(seconds: float) -> Behaviour:
    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(seconds)

    return run


@contextlib.asynccontextmanager
async def upstream(behaviour: Behaviour) -> AsyncIterator[str]:
    handlers: set[asyncio.Task[Any]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            with contextlib.suppress(Exception):
                await behaviour(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        for task in handlers:  # a stalling handler must not outlive the test
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)


async def call(gw: Running, url: str, body: dict[str, Any], **headers: str) -> tuple[int, bytes]:
    await gw.create_key(await gw.create_setting(url))
    async with gw.http.post(
        gw.openai_base + "/chat/completions",
        json=body,
        headers={"Authorization": "Bearer my-secret-key", **headers},
    ) as resp:
        return resp.status, await resp.read()


async def last_event(gw: Running) -> dict[str, Any]:
    await gw.flush_events()
    events = (await gw.admin("GET", "/api/events?limit=1"))[1]
    return dict(events[0])


STREAM = {**CHAT, "stream": True}


@pytest.mark.parametrize(
    ("name", "behaviour", "body", "status", "in_body", "event_status", "billed"),
    [
        ("429 with a body", answer(429, b'{"error": {"message": "slow down", "type": "rate_limit"}}'), CHAT,
         429, b"slow down", 429, False),
        ("503 without a body", answer(503, b""), CHAT, 503, b"", 503, False),
        ("500 with a body", answer(500, b'{"error": {"message": "boom"}}'), CHAT, 500, b"boom", 500, False),
        ("malformed JSON 200", answer(200, b"{not json at all"), CHAT, 200, b"{not json", 200, False),
        ("a stream without [DONE]", stream([DELTA]), STREAM, 200, b"partial answer", 200, True),
        ("a stream reset mid-way", stream([DELTA], then="reset"), STREAM, 200, b"bricksllm_error", 502, True),
        ("a slow drip", stream([DELTA] * 5 + [DONE], pause=0.1), STREAM, 200, b"[DONE]", 200, True),
    ],
)  # fmt: skip
async def test_upstream_failures(
    gateway: Running, name: str, behaviour: Behaviour, body: dict[str, Any], status: int, in_body: bytes,
    event_status: int, billed: bool,
) -> None:  # fmt: skip
    async with upstream(behaviour) as url:
        got_status, got = await call(gateway, url, body)
    assert got_status == status and in_body in got, (name, got_status, got[:200])
    event = await last_event(gateway)
    assert event["status"] == event_status, name
    assert (event["cost_in_usd"] > 0) is billed, name  # what was generated is billed, estimated


async def test_refused_connection_is_502(gateway: Running) -> None:
    async with upstream(answer(200, b"{}")) as url:
        pass  # the port is closed again: nothing listens there
    status, body = await call(gateway, url, CHAT)
    assert status == 502 and b"could not be reached" in body
    assert (await last_event(gateway))["status"] == 502


async def test_dns_failure_is_502(gateway: Running) -> None:
    status, body = await call(gateway, "http://no-such-host.invalid", CHAT)
    assert status == 502 and b"could not be reached" in body
    assert (await last_event(gateway))["status"] == 502


async def test_timeout_before_the_answer_is_504(gateway: Running) -> None:
    async with upstream(silent(5)) as url:
        status, body = await call(gateway, url, CHAT, **{"x-request-timeout": "300ms"})
    assert status == 504 and b"did not answer in time" in body
    assert (await last_event(gateway))["status"] == 504


async def test_a_stream_that_stalls_mid_way_is_ended_with_an_error_event(
    start_gateway: GatewayFactory,
) -> None:
    gw = await start_gateway(upstream_idle_timeout=0.3)
    async with upstream(stream([DELTA], then="stall")) as url:
        status, body = await call(gw, url, STREAM)
    assert status == 200 and b"partial answer" in body and b"bricksllm_error" in body
    event = await last_event(gw)
    assert event["status"] == 504 and event["cost_in_usd"] > 0
