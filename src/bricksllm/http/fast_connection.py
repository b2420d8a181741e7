"""One client connection of the fast proxy server: httptools parsing in, `Reply` bytes out.

An asyncio Protocol fed by the event loop (as uvicorn's httptools protocol is): each parsed
request becomes an `Inbound` whose body (`RequestBody`) fills as bytes arrive, and runs as one
task through the `ProxyHandler`. Requests are answered strictly in order: a pipelined request
waits in `_queue` until the one before it has been written.

Why the details are as they are:
- Flow control both ways. Reading pauses while a body holds more than `BODY_HIGH_WATER` bytes
  the handler has not taken, and while requests wait in the queue; writing a streamed reply
  waits on the transport's pause/resume signals, so a slow client slows the upstream read.
- Every wait has a timer (one per connection, re-armed per phase): headers must arrive within
  `header_timeout`, body bytes may pause at most `body_timeout`, and an idle keep-alive
  connection is closed after `keepalive_timeout`.
- A client that leaves mid-stream gets its reply stream `aclose()`d at the next chunk, so the
  service stops the upstream call and bills what was generated (the exchange contract).
- A request body that was not read to the end means the connection cannot be reused: after the
  reply we half-close (FIN) and discard what still arrives for a moment before closing, so the
  client reads our answer instead of a reset.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, cast

import httptools
from multidict import CIMultiDict

from bricksllm.errors import Invalid, TooLarge
from bricksllm.providers.base import openai_error_body
from bricksllm.services.exchange import Inbound, Reply

if TYPE_CHECKING:
    from bricksllm.http.fast_server import FastServer

log = logging.getLogger("bricksllm.proxy")

BODY_HIGH_WATER = 256 * 1024
LINGER = 2.0  # seconds to discard an unread upload after answering, before closing
HEALTH = b'{"status":"ok"}'
_FRAMING = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})
_NO_BODY = frozenset({204, 304})


# Errors the server answers before any handler runs (a handler's own use its provider's shape).
_ERROR_CODES = {400: "invalid_request", 408: "request_timeout", 413: "request_too_large",
                431: "request_headers_too_large", 500: "internal_error"}  # fmt: skip


def error_body(status: int, message: str) -> bytes:
    return openai_error_body(status, message, _ERROR_CODES.get(status, "error"))


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message


class RequestBody:
    """`exchange.BodySource` over the bytes the connection receives."""

    def __init__(self, conn: HttpConnection, content_length: int | None, expect_continue: bool) -> None:
        self.content_length = content_length
        self._conn = conn
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._received = 0
        self.complete = False
        self._error: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._expect_continue = expect_continue

    def _feed(self, data: bytes) -> None:
        self._received += len(data)
        if self._received > self._conn.server.max_body_bytes:
            self._fail(TooLarge(f"[BricksLLM] request body over {self._conn.server.max_body_bytes} bytes"))
            return
        self._chunks.append(data)
        self._buffered += len(data)
        self._wake()
        if self._buffered > BODY_HIGH_WATER:
            self._conn.pause_reading()

    def _end(self) -> None:
        self.complete = True
        self._wake()

    def _fail(self, error: Exception) -> None:
        if self._error is None and not self.complete:
            self._error = error
        self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def _next(self) -> bytes | None:
        while True:
            if self._chunks:
                data = self._chunks.popleft() if len(self._chunks) == 1 else b"".join(self._chunks)
                self._chunks.clear()
                self._buffered = 0
                self._conn.resume_reading()
                return data
            if self._error is not None:
                raise self._error
            if self.complete:
                return None
            if self._expect_continue:
                self._expect_continue = False
                self._conn.write_continue()
            self._conn.resume_reading()
            self._waiter = asyncio.get_running_loop().create_future()
            self._conn.arm_body_timer()
            try:
                await self._waiter
            finally:
                self._waiter = None
                self._conn.disarm_timer()

    async def read(self, limit: int) -> bytes:
        if self.content_length is not None and self.content_length > limit:
            raise TooLarge(f"[BricksLLM] request body over {limit} bytes")
        parts: list[bytes] = []
        size = 0
        while (chunk := await self._next()) is not None:
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"[BricksLLM] request body over {limit} bytes")
            parts.append(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def chunks(self) -> AsyncIterator[bytes]:
        while (chunk := await self._next()) is not None:
            yield chunk


class _Pending:
    """A request parsed (head complete), waiting for its turn or being handled."""

    __slots__ = ("body", "head_only", "http10", "inbound", "keep_alive")

    def __init__(self, inbound: Inbound, body: RequestBody, keep_alive: bool, http10: bool) -> None:
        self.inbound = inbound
        self.body = body
        self.keep_alive = keep_alive
        self.http10 = http10
        self.head_only = inbound.method == "HEAD"


class HttpConnection(asyncio.Protocol):
    def __init__(self, server: FastServer) -> None:
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.closed = False
        self.closing = False  # answer what is in flight, then close (shutdown)
        self._url = b""
        self._headers: list[tuple[str, str]] = []
        self._head_bytes = 0
        self._current: _Pending | None = None  # the request being parsed
        self._queue: deque[_Pending] = deque()  # parsed, waiting to be handled, in order
        self._task: asyncio.Task[None] | None = None
        self._reading_paused = False
        self._write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._lingering = False
        self._in_head = False
        self._active: _Pending | None = None  # the request being handled

    # --- transport events --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        if len(self.server.connections) >= self.server.max_connections:
            # over the cap: answered and closed at once, so a flood of (idle) connections cannot
            # take the file descriptors the admin port, the databases and the upstreams need
            self.server.refused_connections += 1
            self.server.refused(503)
            body = error_body(503, "[BricksLLM] too many connections; try again shortly")
            transport.write(
                self.server.head(503, [("Content-Type", "application/json")], len(body), False) + body
            )
            transport.close()
            self.closed = True
            return
        transport.set_write_buffer_limits(high=self.server.write_high_water)
        self.server.connections.add(self)
        self._arm(self.server.header_timeout)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return
        try:
            self.parser.feed_data(data)
        except _Refused as exc:
            self._refuse(exc.status, exc.message)
        except httptools.HttpParserUpgrade:
            self._refuse(400, "protocol upgrades are not supported")
        except Exception as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, _Refused):
                self._refuse(cause.status, cause.message)
            else:
                self._refuse(400, "malformed HTTP request")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        self.disarm_timer()
        d, self._drain = self._drain, None
        if d is not None and not d.done():
            d.set_result(None)
        for pending in (self._current, *self._queue):
            if pending is not None:
                pending.body._fail(ConnectionResetError("the client went away"))
        if self._task is not None and self._task.done():
            self._task = None
        self.server.connection_done()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        d, self._drain = self._drain, None
        if d is not None and not d.done():
            d.set_result(None)

    async def drain(self) -> None:
        if self._write_paused and not self.closed:
            self._drain = self.loop.create_future()
            await self._drain

    def pause_reading(self) -> None:
        if not self._reading_paused and self.transport is not None and not self.closed:
            self._reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._reading_paused and self.transport is not None and not self.closed and not self._queue:
            self._reading_paused = False
            self.transport.resume_reading()

    # --- timers -------------------------------------------------------------------------------

    def _arm(self, seconds: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_later(seconds, self._expired)

    def arm_body_timer(self) -> None:
        self._arm(self.server.body_timeout)

    def disarm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        active = self._active
        if active is not None:
            if active.body._waiter is not None:  # the handler waits for body bytes that do not come
                active.body._fail(Invalid("[BricksLLM] the request body did not arrive in time"))
        elif self._in_head:
            self._refuse(408, "the request head did not arrive in time")
        else:
            self.close()  # an idle keep-alive connection, or one that never sent a request

    # --- parser callbacks ---------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_head = True
        self._url = b""
        self._headers = []
        self._head_bytes = 0
        if self._task is None:
            self._arm(self.server.header_timeout)

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        self._headers.append((name.decode("latin-1"), value.decode("utf-8", "surrogateescape")))

    def _count(self, n: int) -> None:
        self._head_bytes += n
        if self._head_bytes > self.server.max_header_bytes:
            raise _Refused(431, "request headers too large")

    def on_headers_complete(self) -> None:
        self._in_head = False
        parser = self.parser
        method = parser.get_method().decode("ascii")
        url = self._url
        if url[:1] != b"/":
            parsed = httptools.parse_url(url)  # absolute-form: http://host/path?query
            path, query = (parsed.path or b"/"), (parsed.query or b"")
        else:
            path, _, query = url.partition(b"?")
            path = path.partition(b"#")[0]
        headers = CIMultiDict(self._headers)
        length_text = headers.get("content-length")
        content_length = int(length_text) if length_text is not None and length_text.isdigit() else None
        if content_length is not None and content_length > self.server.max_body_bytes:
            raise _Refused(413, f"request body over {self.server.max_body_bytes} bytes")
        expect = headers.get("expect", "").lower() == "100-continue"
        http10 = parser.get_http_version() == "1.0"
        body = RequestBody(self, content_length, expect and not http10)
        inbound = Inbound(method, path.decode("latin-1"), query.decode("latin-1"), headers, body)
        pending = _Pending(inbound, body, parser.should_keep_alive(), http10)
        self._current = pending
        if self._task is None:
            self.disarm_timer()
            self._start(pending)
        else:
            self._queue.append(pending)
            self.pause_reading()

    def on_body(self, body: bytes) -> None:
        if self._current is not None:
            self._current.body._feed(body)

    def on_message_complete(self) -> None:
        if self._current is not None:
            self._current.body._end()
            self._current = None

    # --- answering ----------------------------------------------------------------------------

    def _start(self, pending: _Pending) -> None:
        self._active = pending
        self._task = self.loop.create_task(self._answer(pending))

    async def _answer(self, pending: _Pending) -> None:
        keep = False
        try:
            keep = await self.server.respond(self, pending)
        except Exception:  # a bug: never leave the client hanging, never kill the server
            log.exception("proxy request failed")
            if not self.closed:
                self.transport.abort()  # type: ignore[union-attr]
        finally:
            self._active = None
            self._task = None
        if self.closed:
            return
        if not keep or self.closing or not pending.body.complete:
            self._finish_unread(pending)
            return
        if self._queue:
            nxt = self._queue.popleft()
            self.resume_reading()
            self._start(nxt)
        else:
            self.resume_reading()
            self._arm(self.server.keepalive_timeout)

    def _finish_unread(self, pending: _Pending) -> None:
        """Close after the reply; if the client may still be uploading, linger first."""
        if pending.body.complete or self.transport is None:
            self.close()
            return
        self._lingering = True
        self._queue.clear()
        self.resume_reading()
        try:
            self.transport.write_eof()
        except (NotImplementedError, OSError, RuntimeError):
            self.close()
            return
        self.loop.call_later(LINGER, self.close)

    def write_continue(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _refuse(self, status: int, message: str) -> None:
        """A request the server answers itself and then closes the connection."""
        self.pause_reading()
        if self._task is None and self.transport is not None and not self.closed:
            self.server.refused(status)
            body = error_body(status, f"[BricksLLM] {message}")
            self.transport.write(
                self.server.head(status, [("Content-Type", "application/json")], len(body), False) + body
            )
        self.close()

    def close(self) -> None:
        if not self.closed and self.transport is not None:
            self.closed = True
            self.disarm_timer()
            self.transport.close()

    def shutdown(self) -> None:
        """Graceful stop: an idle connection closes now, a busy one after its current reply."""
        self.closing = True
        if self._task is None and self._current is None:
            self.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


def reply_framing(reply: Reply) -> tuple[list[tuple[str, str]], int | None]:
    """The reply's headers minus those the server decides, and the length it declared."""
    out: list[tuple[str, str]] = []
    length: int | None = None
    for name, value in reply.headers:
        if name.lower() in _FRAMING:
            if name.lower() == "content-length" and value.strip().isdigit():
                length = int(value)
            continue
        out.append((name, value))
    return out, length
