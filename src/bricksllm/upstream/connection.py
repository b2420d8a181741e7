"""One keep-alive HTTP/1.1 connection to a provider, and the answer it is reading.

`Connection` is an asyncio Protocol fed straight by the event loop and parsed by httptools
(llhttp, the parser uvicorn uses): no stream reader, no per-chunk task switches. It carries one
exchange at a time. `FastResponse` is that exchange seen from the caller: the status and headers
once they arrive, then the body as a buffer of chunks the consumer drains.

Why it is shaped like this:
- Back-pressure: past `HIGH_WATER` buffered body bytes the socket stops being read, and reading
  resumes when the consumer has taken them, so a slow client slows the provider down instead of
  filling our memory. Uploads wait on the transport's own pause/resume signals.
- Timeouts cost one timer per wait (`loop.call_at`), armed only while we actually wait for the
  provider: a slow consumer never trips the idle timeout.
- The connection goes back to the pool the moment the answer is complete (the body chunks
  belong to the response from then on), never when it was cut short, when the upload was not
  finished, or when the server asked to close it.
- Every failure becomes `UpstreamError` / `UpstreamTimeout` here; cancellation (the client left)
  aborts the connection, since a half-read answer can never be reused.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import httptools
from multidict import CIMultiDict

from bricksllm.errors import UpstreamError, UpstreamTimeout

if TYPE_CHECKING:
    from bricksllm.upstream.pool import Pool

HIGH_WATER = 512 * 1024  # buffered body bytes past which we stop reading the socket
LOW_WATER = 64 * 1024

_PHASES = {
    "first_byte": "[BricksLLM] the provider did not start answering in time",
    "idle": "[BricksLLM] the provider stopped sending for too long",
    "total": "[BricksLLM] the provider did not answer in time",
    "tunnel": "[BricksLLM] the proxy did not open a tunnel in time",
}


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing; carries the error to report."""

    def __init__(self, error: UpstreamError) -> None:
        self.error = error


class Connection(asyncio.Protocol):
    def __init__(self, pool: Pool, max_header_bytes: int) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.response: FastResponse | None = None
        self.closed = False
        self.discarded = False  # counted out of the pool
        self.uses = 0
        self.idle_since = -1.0  # when it went idle; -1 while busy
        self.expires_at = math.inf  # from the server's `Keep-Alive: timeout=N`
        self.reading_paused = False
        self._max_header_bytes = max_header_bytes
        self._header_bytes = 0
        self._headers: list[tuple[str, str]] = []
        self._framed = False  # Content-Length or Transfer-Encoding seen
        self._informational = False
        self._write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._tunnel: asyncio.Future[None] | None = None
        self._tunnel_buf = b""

    # --- transport events --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._tunnel is not None:
            self._tunnel_data(data)
            return
        r = self.response
        if r is None:
            self.abort()  # nothing was asked: a confused or hostile server
            return
        r._received = True
        try:
            self.parser.feed_data(data)
        except _Refused as exc:
            self._fail(exc.error)
        except Exception as exc:
            # httptools wraps what a callback raised: find our own error if it was ours
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, _Refused):
                self._fail(cause.error)
            else:
                self._fail(UpstreamError(f"[BricksLLM] the provider sent a malformed answer ({exc})"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.discard(self)
        self._wake_drain()
        if self._tunnel is not None and not self._tunnel.done():
            self._tunnel.set_exception(UpstreamError("[BricksLLM] the proxy closed the connection"))
        r = self.response
        self.response = None
        if r is None:
            return
        if r.status and r._eof_delimited and exc is None:
            r._on_end()  # HTTP/1.0 style: the body ends with the connection
        else:
            r._on_error(UpstreamError("[BricksLLM] the provider closed the connection before answering"))

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_drain()

    def _wake_drain(self) -> None:
        d, self._drain = self._drain, None
        if d is not None and not d.done():
            d.set_result(None)

    async def drain(self) -> None:
        """Wait while the transport's write buffer is full (streamed uploads)."""
        if self._write_paused and not self.closed:
            self._drain = asyncio.get_running_loop().create_future()
            await self._drain
        if self.closed:
            raise ConnectionResetError("connection closed")

    # --- parser callbacks ---------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._headers = []
        self._header_bytes = 0
        self._framed = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > self._max_header_bytes:
            raise _Refused(
                UpstreamError(f"[BricksLLM] the provider's headers are over {self._max_header_bytes} bytes")
            )
        n = len(name)
        if n in (14, 17, 10):
            lower = name.lower()
            if lower in (b"content-length", b"transfer-encoding"):
                self._framed = True
            elif lower == b"keep-alive":
                self._keep_alive_hint(value)
        self._headers.append((name.decode("latin-1"), value.decode("utf-8", "surrogateescape")))

    def _keep_alive_hint(self, value: bytes) -> None:
        for part in value.split(b","):
            key, _, seconds = part.strip().partition(b"=")
            if key.lower() == b"timeout" and seconds.strip().isdigit():
                # retire the connection a second before the server would close it under us
                loop = asyncio.get_running_loop()
                self.expires_at = loop.time() + max(0, int(seconds) - 1)

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:
            if status == 101:
                raise _Refused(UpstreamError("[BricksLLM] the provider switched protocols"))
            self._informational = True  # 100 Continue, 103 Early Hints: skipped
            return
        r = self.response
        if r is None:
            raise _Refused(UpstreamError("[BricksLLM] an answer came without a request"))
        r.status = status
        r.headers = CIMultiDict(self._headers)
        r._eof_delimited = not self._framed and status not in (204, 304)
        r._wake()
        if r._head_only:  # HEAD: no body follows, whatever the headers say; not reused
            self.response = None
            r._on_end()
            self.close()

    def on_body(self, body: bytes) -> None:
        r = self.response
        if r is None or not body:
            return
        r._chunks.append(body)
        r._buffered += len(body)
        r._wake()
        if r._buffered > HIGH_WATER and not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        r = self.response
        if r is None:
            return
        self.response = None
        reusable = r._request_sent and self.parser.should_keep_alive() and not self.closed
        r._on_end()
        if reusable:
            self.pool.release(self)
        else:
            self.close()

    # --- CONNECT tunnel -----------------------------------------------------------------------

    async def open_tunnel(self, request: bytes) -> None:
        """Send a CONNECT request and wait for the proxy's 2xx (read by hand: httptools would
        expect a body after a response without a length)."""
        assert self.transport is not None
        self._tunnel = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        try:
            await self._tunnel
        finally:
            self._tunnel = None

    def _tunnel_data(self, data: bytes) -> None:
        assert self._tunnel is not None
        self._tunnel_buf += data
        end = self._tunnel_buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._tunnel_buf) > self._max_header_bytes:
                self._tunnel.set_exception(UpstreamError("[BricksLLM] the proxy's answer is too large"))
            return
        status_line = self._tunnel_buf.split(b"\r\n", 1)[0].split()
        leftover = self._tunnel_buf[end + 4 :]
        self._tunnel_buf = b""
        if len(status_line) < 2 or not status_line[1].startswith(b"2") or leftover:
            code = status_line[1].decode("latin-1", "replace") if len(status_line) > 1 else "?"
            self._tunnel.set_exception(UpstreamError(f"[BricksLLM] the proxy refused the tunnel ({code})"))
            return
        self._tunnel.set_result(None)

    # --- closing ------------------------------------------------------------------------------

    def _fail(self, error: UpstreamError) -> None:
        r, self.response = self.response, None
        if r is not None:
            r._on_error(error)
        self.abort()

    def close(self) -> None:
        """Close after what was written is flushed (a normal end without keep-alive)."""
        self.closed = True
        self.pool.discard(self)
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection now: used whenever the exchange did not end cleanly."""
        self.closed = True
        self.pool.discard(self)
        if self.transport is not None:
            self.transport.abort()


class FastResponse:
    """An answer being read from a `Connection` (implements `ports.UpstreamResponse`)."""

    def __init__(
        self, conn: Connection, deadline: float, idle_timeout: float | None, *, head_only: bool
    ) -> None:
        self.status = 0
        self.headers: CIMultiDict[str] = CIMultiDict()
        self._conn: Connection | None = conn
        self._loop = asyncio.get_running_loop()
        self._deadline = deadline
        self._idle = idle_timeout
        self._head_only = head_only
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._done = False
        self._error: UpstreamError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._request_sent = False
        self._received = False  # any byte came back on this exchange (a stale connection has none)
        self._eof_delimited = False
        self._writer: asyncio.Task[None] | None = None
        self._first_byte_at = deadline

    # --- fed by the connection ----------------------------------------------------------------

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _on_end(self) -> None:
        self._done = True
        self._conn = None
        self._stop_writer()
        self._wake()

    def _on_error(self, error: UpstreamError) -> None:
        if not self._done:
            self._error = error
            self._done = True
        self._conn = None
        self._stop_writer()
        self._wake()

    def _stop_writer(self) -> None:
        w = self._writer
        if w is not None and not w.done():
            w.cancel()

    # --- waiting -----------------------------------------------------------------------------

    async def wait_head(self) -> None:
        """Until the final status and headers; `_first_byte_at` may move (set when an upload ends)."""
        while not self.status and not self._done:
            await self._wait(min(self._first_byte_at, self._deadline), "first_byte")
        if not self.status:
            raise self._error or UpstreamError("[BricksLLM] the provider closed the connection")

    async def _wait(self, at: float, phase: str) -> None:
        loop = self._loop
        if at >= self._deadline:
            phase = "total"
        if at <= loop.time():
            self._expire(phase)
            return
        w = self._waiter = loop.create_future()
        timer = loop.call_at(at, self._expire, phase)
        try:
            await w
        except BaseException:
            self.abort()  # cancelled: the client left, the connection can never be reused
            raise
        finally:
            timer.cancel()
            self._waiter = None

    def _expire(self, phase: str) -> None:
        conn = self._conn
        self._on_error(UpstreamTimeout(_PHASES[phase]))
        if conn is not None:
            conn.response = None
            conn.abort()

    # --- ports.UpstreamResponse ---------------------------------------------------------------

    def chunks(self) -> AsyncIterator[bytes]:
        return self

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        while True:
            chunks = self._chunks
            if chunks:
                data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
                chunks.clear()
                self._buffered = 0
                conn = self._conn
                if conn is not None and conn.reading_paused and conn.transport is not None:
                    conn.reading_paused = False
                    conn.transport.resume_reading()
                return data
            if self._error is not None:
                raise self._error
            if self._done:
                raise StopAsyncIteration
            at = self._deadline
            if self._idle is not None:
                at = min(at, self._loop.time() + self._idle)
            await self._wait(at, "idle")

    async def read(self, limit: int) -> bytes:
        parts: list[bytes] = []
        size = 0
        async for chunk in self:
            size += len(chunk)
            if size > limit:
                self.abort()
                raise UpstreamError(f"[BricksLLM] the provider's answer is over {limit} bytes")
            parts.append(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def abort(self) -> None:
        conn = self._conn
        self._on_error(UpstreamError("[BricksLLM] the answer was abandoned"))
        if conn is not None:
            if conn.response is self:
                conn.response = None
            conn.abort()

    async def aclose(self) -> None:
        if not self._done:
            self.abort()
        self._chunks.clear()
