"""A bounded keep-alive pool of `Connection`s to one origin (or one proxy route).

Idle connections are reused last-in first-out, so under steady load the same warm few serve and
the rest age out; an idle connection is closed after `expiry` seconds (or a second before the
server's own `Keep-Alive: timeout`), by a single timer per pool. At `limit` connections a
request waits for one to be released, bounded by its own deadline. `discard` is idempotent:
a connection leaves the count exactly once, however it ends.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

from bricksllm.errors import UpstreamTimeout
from bricksllm.upstream.connection import Connection

Dial = Callable[["Pool", float], Awaitable[Connection]]


class Pool:
    def __init__(self, dial: Dial, *, limit: int, expiry: float) -> None:
        self._dial = dial
        self.limit = limit
        self.expiry = expiry
        self.size = 0  # open connections, idle or busy
        self.idle: deque[Connection] = deque()  # oldest on the left
        self._waiters: deque[asyncio.Future[Connection | None]] = deque()
        self._sweep: asyncio.TimerHandle | None = None

    async def acquire(self, deadline: float, *, fresh: bool = False) -> Connection:
        """A live connection: an idle one (unless `fresh`), a new one, or the next released."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        idle = self.idle
        while idle and not fresh:
            conn = idle.pop()
            since, conn.idle_since = conn.idle_since, -1.0
            if conn.closed or now - since >= self.expiry or now >= conn.expires_at:
                conn.close()
                continue
            conn.uses += 1
            return conn
        if fresh and self.size >= self.limit and idle:
            oldest = idle.popleft()
            oldest.idle_since = -1.0
            oldest.close()  # make room for the retry rather than queue behind others
        while self.size >= self.limit:
            waiter: asyncio.Future[Connection | None] = loop.create_future()
            self._waiters.append(waiter)
            timer = loop.call_at(deadline, _expire_waiter, waiter)
            try:
                conn_or_none = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    handed = waiter.result()
                    if handed is not None:
                        self.release(handed)
                    else:
                        self._wake_one()
                raise
            finally:
                timer.cancel()
            if conn_or_none is not None and not conn_or_none.closed:
                conn_or_none.uses += 1
                return conn_or_none
        self.size += 1
        try:
            conn = await self._dial(self, deadline)
        except BaseException:
            self.size -= 1
            self._wake_one()
            raise
        conn.uses = 1
        return conn

    def release(self, conn: Connection) -> None:
        """A connection whose exchange ended cleanly: to a waiter, else to the idle list."""
        if conn.closed:
            return
        if conn.reading_paused and conn.transport is not None:
            conn.reading_paused = False
            conn.transport.resume_reading()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        conn.idle_since = asyncio.get_running_loop().time()
        self.idle.append(conn)
        if self._sweep is None:
            self._schedule_sweep(conn.idle_since + self.expiry)

    def discard(self, conn: Connection) -> None:
        if conn.discarded:
            return
        conn.discarded = True
        self.size -= 1
        if conn.idle_since >= 0:  # on the idle list
            self.idle.remove(conn)
            conn.idle_since = -1.0
        self._wake_one()

    def _wake_one(self) -> None:
        """Capacity freed: let one waiter dial a new connection."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _schedule_sweep(self, when: float) -> None:
        self._sweep = asyncio.get_running_loop().call_at(when, self._sweep_idle)

    def _sweep_idle(self) -> None:
        self._sweep = None
        now = asyncio.get_running_loop().time()
        while self.idle:
            conn = self.idle[0]
            if not conn.closed and now - conn.idle_since < self.expiry and now < conn.expires_at:
                break
            conn.close()  # discard() takes it off the list
        if self.idle:
            oldest = self.idle[0]
            self._schedule_sweep(min(oldest.idle_since + self.expiry, oldest.expires_at))

    def close(self) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        while self.idle:
            self.idle[-1].close()  # discard() takes it off the list
        for waiter in self._waiters:
            if not waiter.done():
                waiter.cancel()
        self._waiters.clear()


def _expire_waiter(waiter: asyncio.Future[Connection | None]) -> None:
    if not waiter.done():
        waiter.set_exception(UpstreamTimeout("[BricksLLM] no connection to the provider became free in time"))
