"""The `Upstream` port's contract, run against both adapters (fast and aiohttp).

Every provider-side behaviour is played by a small scripted server on loopback
(`upstream_servers`): answers split at arbitrary bytes, idle connections closed by the server,
answers sent before the upload was read, 1xx answers, huge headers, TLS with a test CA, a
CONNECT proxy, slow consumers and slow servers, each timeout phase, and cancellation.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import trustme
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bricksllm.errors import UpstreamError, UpstreamTimeout
from bricksllm.ports import Upstream, UpstreamRequest
from bricksllm.upstream.aiohttp_client import AiohttpUpstream
from bricksllm.upstream.fast import FastUpstream
from bricksllm.upstream.proxies import Proxies
from tests.contract.upstream_servers import (
    ConnectProxy,
    Request,
    Server,
    chunked,
    keep_alive,
    read_head,
    read_request,
    response,
)

Make = Callable[..., Upstream]


@pytest.fixture(params=["fast", "aiohttp"])
async def make(request: pytest.FixtureRequest) -> AsyncIterator[Make]:
    made: list[Upstream] = []

    def factory(**kw: Any) -> Upstream:
        cls = FastUpstream if request.param == "fast" else AiohttpUpstream
        up: Upstream = cls(**kw)
        made.append(up)
        return up

    yield factory
    for up in made:
        await up.close()


def req(
    url: str,
    method: str = "POST",
    body: Any = b"{}",
    headers: tuple[tuple[str, str], ...] = (),
    timeout: float = 5.0,
) -> UpstreamRequest:
    return UpstreamRequest(method, url, (("Content-Type", "application/json"), *headers), body, timeout)


async def body_of(up: Upstream, request: UpstreamRequest) -> tuple[int, bytes]:
    r = await up.send(request)
    try:
        return r.status, await r.read(1 << 26)
    finally:
        await r.aclose()


# --- the request on the wire ------------------------------------------------------------------


async def test_sends_the_request_as_built_and_reuses_the_connection(make: Make) -> None:
    seen: list[Request] = []

    def answer(r: Request) -> bytes:
        seen.append(r)
        return response(200, b'{"ok":true}', (("X-Upstream", "yes"),))

    async with Server(keep_alive(answer)) as srv:
        up = make()
        url = srv.url("/v1/chat/completions?api-version=2024-02-01&x=%2F")
        for _ in range(3):
            status, data = await body_of(up, req(url, headers=(("Authorization", "Bearer sk-1"),)))
            assert (status, data) == (200, b'{"ok":true}')
        r = await up.send(req(url, "GET", b""))
        assert r.headers["x-upstream"] == "yes"
        await r.read(100)
    assert srv.connections == 1
    first = seen[0]
    assert first.method == "POST" and first.target == "/v1/chat/completions?api-version=2024-02-01&x=%2F"
    assert first.header("host") == f"127.0.0.1:{srv.port}"
    assert first.header("authorization") == "Bearer sk-1"
    assert first.header("content-length") == "2" and first.body == b"{}"
    assert seen[-1].method == "GET" and seen[-1].body == b""


async def _upload(size: int, piece: int = 65536) -> AsyncIterator[bytes]:
    sent = 0
    while sent < size:
        n = min(piece, size - sent)
        yield bytes([sent % 251]) * n
        sent += n


@pytest.mark.parametrize("declared", [False, True])
async def test_streams_an_upload(make: Make, declared: bool) -> None:
    seen: list[Request] = []

    def answer(r: Request) -> bytes:
        seen.append(r)
        return response(200, hashlib.sha256(r.body).hexdigest().encode())

    size = 1_000_003
    expected = hashlib.sha256(b"".join([c async for c in _upload(size)])).hexdigest().encode()
    headers = (("Content-Length", str(size)),) if declared else ()
    async with Server(keep_alive(answer)) as srv:
        up = make()
        assert await body_of(up, req(srv.url(), body=_upload(size), headers=headers)) == (200, expected)
    if declared:
        assert seen[0].header("content-length") == str(size) and seen[0].header("transfer-encoding") is None
    else:
        assert seen[0].header("transfer-encoding") == "chunked"


# --- answers split anywhere -------------------------------------------------------------------

BODY = b'data: {"a":1}\n\ndata: {"b":"\xc3\xa9"}\n\ndata: [DONE]\n\n'
FRAMINGS = {
    "length": response(200, BODY, (("Content-Type", "text/event-stream"),)),
    "chunked": response(200, b"", (("Content-Type", "text/event-stream"), ("Transfer-Encoding", "chunked")))
    + chunked(BODY[:7], BODY[7:20], BODY[20:]),
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(framing=st.sampled_from(sorted(FRAMINGS)), cuts=st.lists(st.integers(1, 400), max_size=6))
async def test_answers_split_at_any_byte(make: Make, framing: str, cuts: list[int]) -> None:
    raw = FRAMINGS[framing]
    points = sorted({c % len(raw) for c in cuts} - {0})
    pieces = [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            for piece in pieces:
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0.001)

    async with Server(handler) as srv:
        up = make()
        r = await up.send(req(srv.url()))
        assert r.status == 200 and r.headers["content-type"] == "text/event-stream"
        assert b"".join([c async for c in r.chunks()]) == BODY
        await r.aclose()


async def test_every_single_split_point(make: Make) -> None:
    """Each byte position of a chunked answer, as the boundary between two reads."""
    raw = FRAMINGS["chunked"]
    cut = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            writer.write(raw[:cut])
            await writer.drain()
            await asyncio.sleep(0.002)
            writer.write(raw[cut:])
            await writer.drain()

    async with Server(handler) as srv:
        up = make()
        for cut in range(1, len(raw)):
            assert await body_of(up, req(srv.url())) == (200, BODY), cut


# --- connection reuse rules -------------------------------------------------------------------


async def test_server_closing_an_idle_connection(make: Make) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(response(200, b"one"))
        await writer.drain()
        await asyncio.sleep(0.05)  # then close the idle keep-alive connection

    async with Server(handler) as srv:
        up = make()
        assert await body_of(up, req(srv.url())) == (200, b"one")
        await asyncio.sleep(0.3)
        assert await body_of(up, req(srv.url())) == (200, b"one")
    assert srv.connections == 2


def _stale_second_request() -> Callable[..., Any]:
    """Answers the first request of a connection; closes on the second without answering,
    as a server does when its keep-alive timer fires just as the request arrives."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(response(200, b"fresh"))
        await writer.drain()
        await read_request(reader)

    return handler


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_idempotent_request_retried_once_on_a_stale_connection(make: Make, method: str) -> None:
    async with Server(_stale_second_request()) as srv:
        up = make()
        assert await body_of(up, req(srv.url(), method)) == (200, b"fresh")
        assert await body_of(up, req(srv.url(), method)) == (200, b"fresh")
    assert srv.connections == 2


async def test_post_is_not_replayed_on_a_stale_connection(make: Make) -> None:
    async with Server(_stale_second_request()) as srv:
        up = make()
        assert await body_of(up, req(srv.url())) == (200, b"fresh")
        with pytest.raises(UpstreamError):
            await body_of(up, req(srv.url()))
        assert await body_of(up, req(srv.url())) == (200, b"fresh")  # the pool is not poisoned


async def test_connection_close_and_http10_answers(make: Make) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        r = await read_request(reader)
        if r.target.endswith("10"):
            writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")
        else:
            writer.write(response(200, b"closing", (("Connection", "close"),)))
        await writer.drain()

    async with Server(handler) as srv:
        up = make()
        for path in ("/a10", "/b", "/c10", "/d"):
            expected = b"until the end" if path.endswith("10") else b"closing"
            assert await body_of(up, req(srv.url(path), "GET", b"")) == (200, expected)
    assert srv.connections == 4


async def test_head_answer_has_no_body(make: Make) -> None:
    def answer(r: Request) -> bytes:
        if r.method == "HEAD":
            return b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
        return response(200, b"after")

    async with Server(keep_alive(answer)) as srv:
        up = make()
        assert await body_of(up, req(srv.url(), "HEAD", b"")) == (200, b"")
        assert await body_of(up, req(srv.url())) == (200, b"after")


async def test_answer_before_the_upload_was_read(make: Make) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(response(413, b"too large", (("Connection", "close"),)))
        await writer.drain()
        async with asyncio.timeout(3):  # lingering close: drain what the client still sends
            while await reader.read(1 << 20):
                pass

    pulled = 0

    async def upload() -> AsyncIterator[bytes]:
        nonlocal pulled
        async for chunk in _upload(64 << 20):
            pulled += len(chunk)
            yield chunk

    async with Server(handler) as srv:
        up = make()
        assert await body_of(up, req(srv.url(), body=upload())) == (413, b"too large")
    assert pulled < 64 << 20


async def test_informational_answers_are_skipped(make: Make) -> None:
    def answer(r: Request) -> bytes:
        return (
            b"HTTP/1.1 100 Continue\r\n\r\n"
            b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n" + response(201, b"created")
        )

    async with Server(keep_alive(answer)) as srv:
        up = make()
        for _ in range(2):
            r = await up.send(req(srv.url()))
            assert r.status == 201 and "link" not in r.headers
            assert await r.read(100) == b"created"


async def test_huge_headers(make: Make) -> None:
    big = tuple((f"X-Big-{i}", "v" * 4000) for i in range(60))  # 240 kB of headers

    def answer(r: Request) -> bytes:
        if r.target.endswith("/too-big"):
            return response(200, b"", (("X-Huge", "h" * (2 << 20)),))
        return response(200, b"ok", big)

    async with Server(keep_alive(answer)) as srv:
        up = make()
        r = await up.send(req(srv.url()))
        assert r.headers["x-big-59"] == "v" * 4000 and await r.read(10) == b"ok"
        with pytest.raises(UpstreamError):
            await body_of(up, req(srv.url("/too-big")))


async def test_malformed_and_truncated_answers(make: Make) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        r = await read_request(reader)
        if r.target.endswith("/garbage"):
            writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
        await writer.drain()

    async with Server(handler) as srv:
        up = make()
        with pytest.raises(UpstreamError):
            await body_of(up, req(srv.url("/garbage")))
        r = await up.send(req(srv.url("/short")))
        with pytest.raises(UpstreamError):
            await r.read(1000)
        await r.aclose()


async def test_unreachable(make: Make, free_port: int) -> None:
    up = make()
    with pytest.raises(UpstreamError):
        await up.send(req(f"http://127.0.0.1:{free_port}/v1/x"))


# --- TLS and proxies --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def tls_server_context(ca: trustme.CA, sni: list[str | None]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(ctx)
    ctx.sni_callback = lambda sock, name, _ctx: sni.append(name)  # type: ignore[assignment,misc,func-returns-value]
    return ctx


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


async def test_tls_upstream_verified_with_sni(make: Make, ca: trustme.CA) -> None:
    sni: list[str | None] = []
    ok = keep_alive(lambda r: response(200, b"secure"))
    async with Server(ok, ssl_context=tls_server_context(ca, sni)) as srv:
        up = make(ssl_context=trusting(ca))
        assert await body_of(up, req(srv.url(host="localhost"))) == (200, b"secure")
        assert sni == ["localhost"]
        untrusting = make()  # the system trust store does not know the test CA
        with pytest.raises(UpstreamError):
            await up_send_and_read(untrusting, srv.url(host="localhost"))


async def up_send_and_read(up: Upstream, url: str) -> None:
    await body_of(up, req(url))


async def test_ssl_cert_file_is_honoured(
    ca: trustme.CA, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    monkeypatch.setenv("SSL_CERT_FILE", str(pem))
    ok = keep_alive(lambda r: response(200, b"trusted by SSL_CERT_FILE"))
    async with Server(ok, ssl_context=tls_server_context(ca, [])) as srv:
        up = FastUpstream()  # default context, built on first use from the environment
        try:
            assert await body_of(up, req(srv.url(host="localhost"))) == (200, b"trusted by SSL_CERT_FILE")
        finally:
            await up.close()


async def test_https_through_a_connect_proxy(make: Make, ca: trustme.CA) -> None:
    ok = keep_alive(lambda r: response(200, b"tunnelled"))
    async with Server(ok, ssl_context=tls_server_context(ca, [])) as srv, ConnectProxy() as proxy:
        user_proxy = proxy.url.replace("http://", "http://user:p%40ss@")
        up = make(ssl_context=trusting(ca), proxies=Proxies.parse(https_proxy=user_proxy))
        for _ in range(2):
            assert await body_of(up, req(srv.url(host="localhost"))) == (200, b"tunnelled")
    assert proxy.seen == [f"CONNECT localhost:{srv.port}"]  # one tunnel, reused
    assert proxy.auth == ["Basic dXNlcjpwQHNz"]


async def test_plain_http_through_a_proxy_and_no_proxy(make: Make) -> None:
    ok = keep_alive(lambda r: response(200, r.target.encode()))
    async with Server(ok) as srv, ConnectProxy() as proxy:
        up = make(proxies=Proxies.parse(http_proxy=proxy.url, no_proxy="localhost"))
        absolute = f"http://127.0.0.1:{srv.port}/v1/x?q=1"
        assert await body_of(up, req(srv.url("/v1/x?q=1"))) == (200, absolute.encode())
        assert proxy.seen == [f"POST http://127.0.0.1:{srv.port}/v1/x?q=1"]
        assert await body_of(up, req(srv.url("/v1/y", host="localhost"))) == (200, b"/v1/y")  # bypassed
        assert len(proxy.seen) == 1


# --- back-pressure ----------------------------------------------------------------------------


async def test_slow_consumer_slows_the_provider(make: Make) -> None:
    total = 128 << 20
    written = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal written
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total)
        piece = b"x" * 65536
        while written < total:
            writer.write(piece)
            written += len(piece)
            await writer.drain()

    async with Server(handler) as srv:
        up = make()
        r = await up.send(req(srv.url()))
        it = r.chunks()
        await it.__anext__()
        await asyncio.sleep(0.5)  # a slow client
        assert written < 32 << 20, written  # socket buffers only, not the whole answer
        await r.aclose()


async def test_upload_is_pulled_only_as_fast_as_the_provider_reads(make: Make) -> None:
    pulled = 0
    release = asyncio.Event()

    async def upload() -> AsyncIterator[bytes]:
        nonlocal pulled
        async for chunk in _upload(128 << 20):
            pulled += len(chunk)
            yield chunk

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        r = await read_request(reader)
        writer.write(response(200, str(len(r.body)).encode()))
        await writer.drain()

    async with Server(handler) as srv:
        up = make()
        task = asyncio.create_task(body_of(up, req(srv.url(), body=upload(), timeout=30)))
        await asyncio.sleep(0.5)
        assert pulled < 32 << 20, pulled
        release.set()
        assert await task == (200, str(128 << 20).encode())


# --- timeouts ---------------------------------------------------------------------------------


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(10)


async def test_connect_timeout_covers_the_tls_handshake(make: Make, ca: trustme.CA) -> None:
    async with Server(_silent) as srv:  # accepts TCP, never speaks TLS
        up = make(connect_timeout=0.2, ssl_context=trusting(ca))
        t0 = asyncio.get_running_loop().time()
        with pytest.raises(UpstreamTimeout):
            await up.send(req(f"https://localhost:{srv.port}/v1/x"))
        assert asyncio.get_running_loop().time() - t0 < 2


async def _answer_nothing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    await asyncio.sleep(10)


async def test_first_byte_timeout(make: Make) -> None:
    async with Server(_answer_nothing) as srv:
        up = make(first_byte_timeout=0.2)
        with pytest.raises(UpstreamTimeout):
            await up.send(req(srv.url(), timeout=10))


async def test_total_deadline_before_the_answer(make: Make) -> None:
    async with Server(_answer_nothing) as srv:
        up = make()
        with pytest.raises(UpstreamTimeout):
            await up.send(req(srv.url(), timeout=0.3))


async def test_idle_timeout_between_chunks(make: Make) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(response(200, b"", (("Transfer-Encoding", "chunked"),)) + b"5\r\nfirst\r\n")
        await writer.drain()
        await asyncio.sleep(10)

    async with Server(handler) as srv:
        up = make(idle_timeout=0.2)
        r = await up.send(req(srv.url(), timeout=10))
        it = r.chunks()
        assert await it.__anext__() == b"first"
        with pytest.raises(UpstreamTimeout):
            await it.__anext__()
        await r.aclose()


async def test_total_deadline_while_streaming(make: Make) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(response(200, b"", (("Transfer-Encoding", "chunked"),)))
        while True:
            writer.write(b"1\r\n.\r\n")
            await writer.drain()
            await asyncio.sleep(0.05)

    async with Server(handler) as srv:
        up = make(idle_timeout=1.0)
        r = await up.send(req(srv.url(), timeout=0.4))
        with pytest.raises(UpstreamTimeout):
            async for _ in r.chunks():
                pass
        await r.aclose()


# --- cancellation -----------------------------------------------------------------------------


async def test_cancelled_while_waiting_for_the_answer_closes_the_connection(make: Make) -> None:
    closed = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if await srv.wait_client_close(reader):
            closed.set()

    async with Server(handler) as srv:
        up = make()
        task = asyncio.create_task(up.send(req(srv.url(), timeout=10)))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with asyncio.timeout(2):
            await closed.wait()


async def test_client_leaving_mid_stream_closes_the_connection(make: Make) -> None:
    closed = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(response(200, b"", (("Transfer-Encoding", "chunked"),)) + b"5\r\nfirst\r\n")
        await writer.drain()
        if await srv.wait_client_close(reader, within=5):
            closed.set()

    async with Server(handler) as srv:
        up = make()
        r = await up.send(req(srv.url(), timeout=10))
        got: list[bytes] = []

        async def consume() -> None:
            try:
                async for chunk in r.chunks():
                    got.append(chunk)
            finally:
                await r.aclose()

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert got == [b"first"]
        async with asyncio.timeout(2):
            await closed.wait()
