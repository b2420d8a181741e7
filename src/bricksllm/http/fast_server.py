"""`FastServer`: the proxy port served by asyncio Protocols and httptools, not aiohttp.web.

Measured on this machine, aiohttp.web costs several times the CPU per request of a protocol
that parses with httptools and writes bytes straight to the transport (bench/, issue 15). The
proxy needs no routing, middleware or request objects from a framework: every request but the
server's own `GET|POST /api/health` goes to one `ProxyHandler` as an `Inbound`, and its `Reply`
is written back, as bytes with a Content-Length or as a stream (chunked, or raw when the reply
declares a Content-Length). Connection handling lives in `fast_connection`.

Stopping is graceful: the listening socket closes at once, idle keep-alive connections close,
requests in flight finish (their connection closes after the reply) for up to `shutdown_grace`
seconds, then whatever is left is aborted and its handler cancelled. Several worker processes
can share the port with `reuse_port=True` (SO_REUSEPORT; the kernel spreads connections).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus

from bricksllm.errors import BricksError
from bricksllm.http.fast_connection import (
    _NO_BODY,
    HEALTH,
    HttpConnection,
    _Pending,
    error_body,
    reply_framing,
)
from bricksllm.ports import Metrics
from bricksllm.services.exchange import ProxyHandler, Reply
from bricksllm.telemetry.metrics import NullMetrics

log = logging.getLogger("bricksllm.proxy")

# The reason tag of a request the server answers itself, before any handler sees it.
REFUSAL_REASONS = {400: "invalid_request", 408: "request_timeout", 413: "request_too_large",
                   431: "request_too_large", 503: "unavailable"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class ServerLimits:
    max_header_bytes: int = 64 * 1024  # request line + headers
    max_body_bytes: int = 64 * 1024 * 1024
    header_timeout: float = 10.0  # a request head must arrive within this, once begun
    body_timeout: float = 60.0  # longest pause between request body bytes the handler waits for
    keepalive_timeout: float = 75.0  # an idle keep-alive connection is closed after this
    shutdown_grace: float = 10.0
    write_high_water: int = 256 * 1024  # transport buffer above which a streamed reply waits
    max_connections: int = 10_000  # client connections at once; more are answered 503 and closed


class FastServer:
    def __init__(
        self, handler: ProxyHandler, limits: ServerLimits = ServerLimits(), metrics: Metrics | None = None
    ) -> None:
        self.handler = handler
        self.limits = limits
        self.metrics = metrics or NullMetrics()
        self.max_header_bytes = limits.max_header_bytes
        self.max_body_bytes = limits.max_body_bytes
        self.header_timeout = limits.header_timeout
        self.body_timeout = limits.body_timeout
        self.keepalive_timeout = limits.keepalive_timeout
        self.write_high_water = limits.write_high_water
        self.connections: set[HttpConnection] = set()
        self.max_connections = limits.max_connections
        self.refused_connections = 0
        self._server: asyncio.Server | None = None
        self._all_closed: asyncio.Event | None = None
        self._date = (0, "")
        self._status_lines: dict[int, str] = {}

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self, host: str, port: int, *, reuse_port: bool = False, backlog: int = 1024) -> int:
        """Listen and return the bound port (useful with port 0)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: HttpConnection(self), host, port, backlog=backlog, reuse_port=reuse_port or None
        )
        sockname = self._server.sockets[0].getsockname()
        return int(sockname[1])

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return tuple(self._server.sockets) if self._server is not None else ()

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting; finish the requests in flight for up to `grace` seconds; abort the rest."""
        grace = self.limits.shutdown_grace if grace is None else grace
        if self._server is not None:
            self._server.close()
        self._all_closed = asyncio.Event()
        for conn in list(self.connections):
            conn.shutdown()
        if self.connections:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await self._all_closed.wait()
        tasks = [c._task for c in self.connections if c._task is not None]
        for conn in list(self.connections):
            conn.abort()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def refused(self, status: int) -> None:
        """Count a request the server answered itself (malformed, too large, too slow, over the
        connection cap) like the proxy's own refusals, with no provider, model nor route."""
        tags = {"provider": "none", "model": "none", "route": "unmatched", "status": str(status)}
        self.metrics.incr("proxy.requests", tags=tags)
        self.metrics.incr(
            "proxy.rejected", tags={**tags, "reason": REFUSAL_REASONS.get(status, "invalid_request")}
        )

    def connection_done(self) -> None:
        if self._all_closed is not None and not self.connections:
            self._all_closed.set()

    # --- one request ---------------------------------------------------------------------------

    async def respond(self, conn: HttpConnection, p: _Pending) -> bool:
        """Call the handler and write its reply; True when the connection may serve another."""
        inbound = p.inbound
        if inbound.path == "/api/health" and inbound.method in ("GET", "POST"):
            reply = Reply(200, [("Content-Type", "application/json")], HEALTH)
        else:
            try:
                reply = await self.handler.handle(inbound)
            except BricksError as exc:  # the service answers errors itself; this is a safety net
                reply = _error_reply(exc.status, exc.message)
            except ConnectionResetError:
                reply = _error_reply(400, "[BricksLLM] the client went away")
            except Exception:
                log.exception("the proxy handler failed")
                reply = _error_reply(500, "[BricksLLM] internal error")
        # an upload not received whole (not read, or still coming) ends the connection
        keep = p.keep_alive and not conn.closing and p.body.complete
        stream = reply.stream
        if conn.closed:
            if stream is not None:
                await _aclose(stream)
            return False
        transport = conn.transport
        assert transport is not None
        headers, declared = reply_framing(reply)
        status = reply.status
        no_body = p.head_only or status in _NO_BODY or status < 200
        if stream is None:
            length = declared if p.head_only and declared is not None else len(reply.body)
            head = self.head(status, headers, length, False, keep, p.http10)
            transport.write(head if no_body else head + reply.body)
            return keep
        if no_body:
            await _aclose(stream)
            transport.write(self.head(status, headers, declared, False, keep, p.http10))
            return keep
        chunked = declared is None and not p.http10
        if declared is None and p.http10:
            keep = False  # an HTTP/1.0 client reads the body until the connection closes
        transport.write(self.head(status, headers, declared, chunked, keep, p.http10))
        sent = 0
        try:
            while True:
                try:
                    chunk = await stream.__anext__()
                except StopAsyncIteration:
                    break
                if conn.closed:
                    break
                if not chunk:
                    continue
                transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
                sent += len(chunk)
                if conn._write_paused:
                    await conn.drain()
        except asyncio.CancelledError:
            await _aclose(stream)
            raise
        except Exception as exc:  # the upstream failed mid-answer: the client must see it cut short
            log.warning("a streamed reply failed after %d bytes: %s", sent, exc)
            conn.abort()
            await _aclose(stream)
            return False
        if conn.closed:  # the client left: the service stops the upstream call and bills
            await _aclose(stream)
            return False
        if chunked:
            transport.write(b"0\r\n\r\n")
        elif declared is not None and sent != declared:
            conn.abort()
            return False
        return keep

    def head(
        self, status: int, headers: list[tuple[str, str]], length: int | None, chunked: bool,
        keep: bool = True, http10: bool = False,
    ) -> bytes:  # fmt: skip
        line = self._status_lines.get(status)
        if line is None:
            try:
                phrase = HTTPStatus(status).phrase
            except ValueError:
                phrase = "Unknown"
            line = self._status_lines[status] = f"HTTP/1.1 {status} {phrase}\r\n"
        parts = [line]
        parts += [f"{name}: {value}\r\n" for name, value in headers]
        if chunked:
            parts.append("Transfer-Encoding: chunked\r\n")
        elif length is not None and status not in _NO_BODY:
            parts.append(f"Content-Length: {length}\r\n")
        if not keep:
            parts.append("Connection: close\r\n")
        elif http10:
            parts.append("Connection: keep-alive\r\n")
        parts.append(self._date_line())
        parts.append("\r\n")
        return "".join(parts).encode("utf-8", "surrogateescape")

    def _date_line(self) -> str:
        now = int(time.time())
        if self._date[0] != now:
            self._date = (now, f"Date: {formatdate(now, usegmt=True)}\r\n")
        return self._date[1]


def _error_reply(status: int, message: str) -> Reply:
    return Reply(status, [("Content-Type", "application/json")], error_body(status, message))


async def _aclose(stream: object) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:
            log.exception("closing a reply stream failed")
