"""`ConfigListener`: PostgreSQL LISTEN on a dedicated asyncpg connection, reconnecting quietly.

Config writes `pg_notify` the schema's channel in their transaction, so every instance hears
about a change when it commits. Notifications are best effort: while the connection is down
they are lost, so after every reconnect the listener calls `on_change` once (the caller reloads
and compares versions) and callers keep polling `version()` as a backstop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from bricksllm.outages import OutageLog
from bricksllm.storage.pg_connect import connect_writable

log = logging.getLogger(__name__)


class ConfigListener:
    def __init__(
        self,
        channel: str,
        connect_args: Mapping[str, Any],
        on_change: Callable[[], None],
        *,
        retry_interval: float = 1.0,
        health_interval: float = 30.0,
    ) -> None:
        self._channel = channel
        self._connect_args = dict(connect_args)
        self._on_change = on_change
        self._retry_interval = retry_interval
        self._health_interval = health_interval
        self._listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._outage = OutageLog(log, f"config change notifications on {channel} are not heard")

    async def start(self, wait: float = 5.0) -> None:
        """Start listening; returns once LISTEN is active (or after `wait` seconds, leaving the
        background task to keep trying)."""
        self._task = asyncio.create_task(self._run(), name=f"listen:{self._channel}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), wait)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _notified(self, *_args: object) -> None:
        try:
            self._on_change()
        except Exception:
            log.exception("config change callback failed")

    async def _run(self) -> None:
        reconnecting = False
        while True:
            try:
                await self._session(reconnecting)
            except Exception as exc:  # any failure means: reconnect later
                self._outage.failed(exc)
            self._listening.clear()
            reconnecting = True
            await asyncio.sleep(self._retry_interval)

    async def _session(self, reconnecting: bool) -> None:
        """One connection's life: LISTEN, then wait until it drops or its server stops accepting
        writes (checked every `health_interval`, since a half-open TCP connection never reports
        being closed)."""
        conn = await connect_writable(**self._connect_args)
        try:
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(self._channel, self._notified)
            self._listening.set()
            if reconnecting:
                self._outage.recovered()
                self._notified()  # changes made while we were away went unheard
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), self._health_interval)
                if lost.is_set():
                    break
                # a server fenced read-only stays up, but the primary (whose commits NOTIFY) is
                # elsewhere now: reconnect, through the host list, to the one accepting writes
                read_only = await conn.fetchval("SHOW transaction_read_only", timeout=self._health_interval)
                if read_only == "on":
                    raise ConnectionError("the server no longer accepts writes")
        finally:
            conn.terminate()
