"""What only the fast adapter promises, beyond the shared contract in test_upstream.py:
a bounded pool, idle expiry (ours and the server's `Keep-Alive: timeout`), and a POST replayed
on a stale connection when the caller marked it with an `Idempotency-Key`."""

from __future__ import annotations

import asyncio

from bricksllm.ports import UpstreamRequest
from bricksllm.upstream.fast import FastUpstream
from tests.contract.upstream_servers import Request, Server, keep_alive, read_request, response


def post(url: str, *headers: tuple[str, str]) -> UpstreamRequest:
    return UpstreamRequest("POST", url, headers, b"{}", 5.0)


async def test_post_with_an_idempotency_key_is_replayed_on_a_stale_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(response(200, b"fresh"))
        await writer.drain()
        await read_request(reader)  # then close without answering

    async with Server(handler) as srv:
        up = FastUpstream()
        try:
            for _ in range(2):
                r = await up.send(post(srv.url(), ("Idempotency-Key", "k-1")))
                assert (r.status, await r.read(100)) == (200, b"fresh")
        finally:
            await up.close()
    assert srv.connections == 2


async def test_the_pool_is_bounded_per_origin() -> None:
    in_flight = peak = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal in_flight, peak
        while True:
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.02)
            in_flight -= 1
            writer.write(response(200, b"ok"))
            await writer.drain()

    async with Server(handler) as srv:
        up = FastUpstream(connections=3)
        try:

            async def one() -> bytes:
                r = await up.send(post(srv.url()))
                return await r.read(10)

            assert await asyncio.gather(*(one() for _ in range(12))) == [b"ok"] * 12
        finally:
            await up.close()
    assert srv.connections == 3 and peak == 3


async def test_idle_connections_expire() -> None:
    async with Server(keep_alive(lambda r: response(200, b"ok"))) as srv:
        up = FastUpstream(keepalive_expiry=0.1)
        try:
            for _ in range(2):
                r = await up.send(post(srv.url()))
                assert await r.read(10) == b"ok"
                await asyncio.sleep(0.3)  # the idle connection is closed by the sweep
        finally:
            await up.close()
    assert srv.connections == 2


async def test_the_servers_keep_alive_timeout_is_respected() -> None:
    def answer(r: Request) -> bytes:
        return response(200, b"ok", (("Keep-Alive", "timeout=1"),))

    async with Server(keep_alive(answer)) as srv:
        up = FastUpstream()
        try:
            for _ in range(3):  # timeout=1: retired at once (a second of margin), never reused
                r = await up.send(post(srv.url()))
                assert await r.read(10) == b"ok"
                await asyncio.sleep(0.01)
        finally:
            await up.close()
    assert srv.connections == 3
