"""The fast proxy server over real sockets, with a fake `ProxyHandler` behind it.

Raw sockets check the wire (framing, pipelining order, 100-continue, limits, timeouts); the
aiohttp client checks that an ordinary client sees ordinary HTTP.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import aiohttp
import pytest

from bricksllm.errors import BricksError
from bricksllm.http.fast_server import FastServer, ServerLimits
from bricksllm.services.exchange import Inbound, Reply

Handle = Callable[[Inbound], Awaitable[Reply]]
Serve = Callable[..., Awaitable[tuple[FastServer, "FakeHandler", int]]]


@dataclass
class RecordedMetrics:
    """The counters the server sends, with their tags."""

    calls: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def incr(self, name: str, value: int = 1, tags: Mapping[str, str] | None = None) -> None:
        self.calls.append((name, dict(tags or {})))

    def timing(self, name: str, ms: float, tags: Mapping[str, str] | None = None) -> None: ...

    def gauge(self, name: str, value: float, tags: Mapping[str, str] | None = None) -> None: ...

    def histogram(self, name: str, value: float, tags: Mapping[str, str] | None = None) -> None: ...

    def rejected(self) -> list[tuple[str, str]]:
        return [(t["status"], t["reason"]) for n, t in self.calls if n == "proxy.rejected"]


@dataclass
class FakeHandler:
    handle_fn: Handle
    seen: list[Inbound] = field(default_factory=list)

    async def handle(self, inbound: Inbound) -> Reply:
        self.seen.append(inbound)
        return await self.handle_fn(inbound)


async def echo(inbound: Inbound) -> Reply:
    try:
        body = await inbound.body.read(1 << 20)
    except BricksError as exc:
        return Reply(exc.status, [("Content-Type", "text/plain")], exc.message.encode())
    info = f"{inbound.method} {inbound.path} ?{inbound.query} {len(body)}".encode()
    return Reply(200, [("Content-Type", "text/plain"), ("X-Echo", "1")], info + b"|" + body)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[tuple[FastServer, FakeHandler, int]]]]:
    servers: list[FastServer] = []

    async def start(fn: Handle = echo, **limits: float) -> tuple[FastServer, FakeHandler, int]:
        handler = FakeHandler(fn)
        server = FastServer(handler, ServerLimits(**limits), RecordedMetrics())  # type: ignore[arg-type]
        port = await server.start("127.0.0.1", 0)
        servers.append(server)
        return server, handler, port

    yield start
    for s in servers:
        await s.stop(grace=1)


_open: list[asyncio.StreamWriter] = []


@pytest.fixture(autouse=True)
async def _close_raw_connections() -> AsyncIterator[None]:
    yield
    while _open:
        writer = _open.pop()
        writer.transport.abort()
        writer.close()
    await asyncio.sleep(0)


async def raw(port: int, data: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    _open.append(writer)
    writer.write(data)
    await writer.drain()
    return reader, writer


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
            body += await reader.readexactly(size)
            await reader.readexactly(2)
        await reader.readexactly(2)
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    else:
        body = await reader.read()
    return status, headers, body


def post(path: str, body: bytes, *extra: str) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: x", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def test_health_is_answered_by_the_server(serve: Serve) -> None:
    _, handler, port = await serve()
    async with aiohttp.ClientSession() as s:
        for method in ("GET", "POST"):
            async with s.request(method, f"http://127.0.0.1:{port}/api/health") as r:
                assert r.status == 200 and await r.json() == {"status": "ok"}
    assert handler.seen == []


async def test_requests_become_inbounds_and_replies_go_back(serve: Serve) -> None:
    _, handler, port = await serve()
    async with aiohttp.ClientSession() as s:
        for i in range(3):
            url = f"http://127.0.0.1:{port}/api/providers/openai/v1/chat%2Fx?api-version=1&i={i}"
            async with s.post(url, data=b'{"a":1}', headers={"Authorization": "Bearer k"}) as r:
                assert r.status == 200 and r.headers["X-Echo"] == "1"
                expected = f"POST /api/providers/openai/v1/chat%2Fx ?api-version=1&i={i} 7|"
                assert await r.read() == expected.encode() + b'{"a":1}'
    first = handler.seen[0]
    assert first.headers["authorization"] == "Bearer k" and first.body.content_length == 7


async def test_keep_alive_and_pipelining_answer_in_order(serve: Serve) -> None:
    async def slow_first(inbound: Inbound) -> Reply:
        await asyncio.sleep(0.1 if inbound.path == "/1" else 0)
        return await echo(inbound)

    _, _, port = await serve(slow_first)
    reader, writer = await raw(port, post("/1", b"a") + post("/2", b"bb") + post("/3", b"ccc"))
    bodies = [(await read_response(reader))[2] for _ in range(3)]
    assert bodies == [b"POST /1 ? 1|a", b"POST /2 ? 2|bb", b"POST /3 ? 3|ccc"]
    writer.write(post("/4", b""))  # the same connection still serves
    assert (await read_response(reader))[2] == b"POST /4 ? 0|"
    writer.close()


def stream_of(chunks: list[bytes], delay: float = 0.0, closed: asyncio.Event | None = None) -> Handle:
    async def handle(inbound: Inbound) -> Reply:
        async def gen() -> AsyncIterator[bytes]:
            try:
                for c in chunks:
                    await asyncio.sleep(delay)
                    yield c
            finally:
                if closed is not None:
                    closed.set()

        return Reply(200, [("Content-Type", "text/event-stream")], stream=gen())

    return handle


async def test_streamed_reply_is_chunked_and_relayed_as_it_comes(serve: Serve) -> None:
    _, _, port = await serve(stream_of([b"data: 1\n\n", b"data: 2\n\n", b"data: [DONE]\n\n"], delay=0.15))
    async with aiohttp.ClientSession() as s, s.post(f"http://127.0.0.1:{port}/s", data=b"{}") as r:
        assert r.headers["Transfer-Encoding"] == "chunked"
        t0 = asyncio.get_running_loop().time()
        first = await r.content.readany()
        assert first == b"data: 1\n\n" and asyncio.get_running_loop().time() - t0 < 0.25
        assert first + await r.read() == b"data: 1\n\ndata: 2\n\ndata: [DONE]\n\n"


async def test_streamed_reply_with_a_declared_length_is_not_chunked(serve: Serve) -> None:
    async def binary(inbound: Inbound) -> Reply:
        async def gen() -> AsyncIterator[bytes]:
            yield b"\x00\x01"
            yield b"\x02"

        return Reply(200, [("Content-Type", "audio/mpeg"), ("Content-Length", "3")], stream=gen())

    _, _, port = await serve(binary)
    reader, _writer = await raw(port, post("/a", b""))
    status, headers, body = await read_response(reader)
    assert (status, headers.get("content-length"), body) == (200, "3", b"\x00\x01\x02")
    assert "transfer-encoding" not in headers


async def test_client_leaving_mid_stream_closes_the_reply_stream(serve: Serve) -> None:
    closed = asyncio.Event()
    _, _, port = await serve(stream_of([b"x" * 10] * 1000, delay=0.02, closed=closed))
    reader, writer = await raw(port, post("/s", b""))
    await reader.readuntil(b"\r\n\r\n")
    writer.transport.abort()
    async with asyncio.timeout(2):
        await closed.wait()


async def test_slow_client_pauses_the_reply_stream(serve: Serve) -> None:
    pulled = 0

    async def endless(inbound: Inbound) -> Reply:
        async def gen() -> AsyncIterator[bytes]:
            nonlocal pulled
            while True:
                pulled += 65536
                yield b"y" * 65536

        return Reply(200, [], stream=gen())

    _, _, port = await serve(endless)
    _reader, writer = await raw(port, post("/s", b""))
    await asyncio.sleep(0.5)  # the client reads nothing
    assert pulled < 32 << 20, pulled
    writer.transport.abort()


async def test_streamed_upload_with_back_pressure(serve: Serve) -> None:
    release = asyncio.Event()

    async def digest(inbound: Inbound) -> Reply:
        await release.wait()
        h = hashlib.sha256()
        async for chunk in inbound.body.chunks():
            h.update(chunk)
        return Reply(200, [], h.hexdigest().encode())

    _, _, port = await serve(digest, max_body_bytes=256 << 20)
    total, piece = 128 << 20, b"z" * (1 << 20)
    reader, writer = await raw(port, b"POST /u HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    sent = 0

    async def upload() -> None:
        nonlocal sent
        while sent < total:
            writer.write(b"%x\r\n%b\r\n" % (len(piece), piece))
            sent += len(piece)
            await writer.drain()
        writer.write(b"0\r\n\r\n")

    task = asyncio.create_task(upload())
    await asyncio.sleep(0.5)
    assert sent < 48 << 20, sent  # the server stopped reading while the handler did not take it
    release.set()
    await task
    status, _, body = await read_response(reader)
    assert (status, body) == (200, hashlib.sha256(piece * 128).hexdigest().encode())
    writer.close()


async def test_limits(serve: Serve) -> None:
    server, handler, port = await serve(max_header_bytes=4096, max_body_bytes=1000)
    reader, writer = await raw(port, post("/h", b"", "X-Big: " + "b" * 5000))
    assert (await read_response(reader))[0] == 431
    reader, writer = await raw(port, post("/b", b"x" * 2000))
    assert (await read_response(reader))[0] == 413
    reader, writer = await raw(port, b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    writer.write(b"%x\r\n%b\r\n0\r\n\r\n" % (1500, b"c" * 1500))
    assert (await read_response(reader))[0] == 413  # over the limit while the handler read it
    reader, writer = await raw(port, b"GARBAGE\r\n\r\n")
    assert (await read_response(reader))[0] == 400
    assert [i.path for i in handler.seen] == ["/c"]
    # the server's own refusals are counted (the handler's 413 is the proxy's to count)
    assert server.metrics.rejected() == [  # type: ignore[attr-defined]
        ("431", "request_too_large"),
        ("413", "request_too_large"),
        ("400", "invalid_request"),
    ]


async def test_connections_over_the_cap_are_answered_503_and_counted(serve: Serve) -> None:
    server, _, port = await serve(max_connections=2)
    for _ in range(2):
        reader, _ = await raw(port, post("/k", b""))
        assert (await read_response(reader))[0] == 200  # both kept open (keep-alive)
    reader, _ = await raw(port, post("/over", b""))
    status, _, body = await read_response(reader)
    assert status == 503 and b"too many connections" in body
    assert server.metrics.rejected() == [("503", "unavailable")]  # type: ignore[attr-defined]
    assert server.refused_connections == 1


async def test_expect_100_continue(serve: Serve) -> None:
    async def refuse_small(inbound: Inbound) -> Reply:
        if inbound.path == "/refuse":
            return Reply(401, [], b"no")  # answered without reading: no 100 Continue
        return await echo(inbound)

    _, _, port = await serve(refuse_small)
    head = b"POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    reader, writer = await raw(port, head)
    assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"hello")
    assert (await read_response(reader))[2] == b"POST /ok ? 5|hello"
    reader, writer = await raw(port, head.replace(b"/ok", b"/refuse"))
    status, headers, body = await read_response(reader)
    assert (status, headers.get("connection"), body) == (401, "close", b"no")


async def test_timeouts(serve: Serve) -> None:
    server, _, port = await serve(header_timeout=0.2, body_timeout=0.2, keepalive_timeout=0.2)
    reader, _ = await raw(port, b"POST /slowloris HTTP/1.1\r\nHost: x\r\n")
    assert (await read_response(reader))[0] == 408
    assert server.metrics.rejected() == [("408", "request_timeout")]  # type: ignore[attr-defined]
    reader, _ = await raw(port, b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
    status, _, body = await read_response(reader)
    assert status == 400 and b"did not arrive in time" in body
    reader, _writer = await raw(port, post("/k", b""))
    assert (await read_response(reader))[0] == 200
    async with asyncio.timeout(2):
        assert await reader.read() == b""  # the idle keep-alive connection is closed


async def test_http10_and_head(serve: Serve) -> None:
    _, _, port = await serve(stream_of([b"one ", b"two"]))
    reader, writer = await raw(port, b"POST /s HTTP/1.0\r\nContent-Length: 0\r\n\r\n")
    status, headers, body = await read_response(reader)
    assert (status, "transfer-encoding" in headers, body) == (200, False, b"one two")
    reader, writer = await raw(port, b"HEAD /s HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    writer.write(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await read_response(reader))[2] == b'{"status":"ok"}'  # no body bytes after HEAD


async def test_a_failing_handler_answers_500_and_the_server_lives_on(serve: Serve) -> None:
    async def broken(inbound: Inbound) -> Reply:
        raise RuntimeError("bug")

    _, _, port = await serve(broken)
    reader, _writer = await raw(port, post("/x", b"") + post("/y", b""))
    assert (await read_response(reader))[0] == 500
    assert (await read_response(reader))[0] == 500


async def test_graceful_drain(serve: Serve) -> None:
    async def slow(inbound: Inbound) -> Reply:
        await asyncio.sleep(10 if inbound.path == "/forever" else 0.3)
        return Reply(200, [], b"done")

    server, _, port = await serve(slow)
    idle_reader, _ = await raw(port, b"")
    reader, _ = await raw(port, post("/slow", b""))
    await asyncio.sleep(0.05)
    stopping = asyncio.create_task(server.stop(grace=2))
    await asyncio.sleep(0.05)
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)  # no longer accepting
    assert await idle_reader.read() == b""  # the idle connection was closed at once
    status, headers, body = await read_response(reader)
    assert (status, headers.get("connection"), body) == (200, "close", b"done")
    await stopping

    server, _, port = await serve(slow)
    reader, _writer = await raw(port, post("/forever", b""))
    await asyncio.sleep(0.05)
    t0 = asyncio.get_running_loop().time()
    await server.stop(grace=0.2)
    assert asyncio.get_running_loop().time() - t0 < 1.5
    assert await reader.read() == b""
