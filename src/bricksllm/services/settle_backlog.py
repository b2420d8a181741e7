"""Settlements that could not reach the counters, kept until they can.

When Redis is unreachable a finished call's settlement is queued here (bounded: past
`capacity` the oldest is dropped and counted; the recorded events stay the durable record the
start-up seed rebuilds counters from) and applied, in order, once Redis answers again. Calls of
keys without limits are queued here on purpose, so their (reporting-only) spend never makes a
call wait for Redis. Settling is idempotent per reservation, so a settlement whose answer was
lost may be applied again safely.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging

from bricksllm.domain.limits import Reservation
from bricksllm.errors import Unavailable
from bricksllm.outages import OutageLog
from bricksllm.ports import Counters, Metrics

log = logging.getLogger(__name__)
RETRY_SECONDS = 0.5
BATCH = 256  # settlements sent at once


class SettleBacklog:
    def __init__(self, counters: Counters, metrics: Metrics, *, capacity: int) -> None:
        self._counters = counters
        self._metrics = metrics
        self._queue: collections.deque[tuple[Reservation, int, int]] = collections.deque()
        self._capacity = capacity
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._flushing = asyncio.Lock()
        self._outage = OutageLog(log, "spend settlements are kept until the counters are back")
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, reservation: Reservation, cost: int, tokens: int) -> None:
        if len(self._queue) >= self._capacity:
            self._queue.popleft()
            self.dropped += 1
            self._metrics.incr("limits.settle_dropped")
        self._queue.append((reservation, cost, tokens))
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                if not await self.flush():
                    await asyncio.sleep(RETRY_SECONDS)

    async def flush(self) -> bool:
        """Apply what is queued, a batch at a time (settlements add up, so their order does not
        matter; concurrent ones share a Redis pipeline); False if the counters are unreachable."""
        async with self._flushing:  # one flush at a time: the background task's, or close()'s
            return await self._flush()

    async def _flush(self) -> bool:
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
            results = await asyncio.gather(
                *(self._counters.settle(*item) for item in batch), return_exceptions=True
            )
            failed = []
            for item, result in zip(batch, results, strict=True):
                if isinstance(result, Unavailable):
                    failed.append(item)
                elif isinstance(result, Exception):  # one that can never apply must not block the rest
                    self._metrics.incr("limits.settle_error")
                    log.warning("dropping a settlement that cannot be applied: %r", result)
            if failed:
                self._queue.extendleft(reversed(failed))
                self._wake.set()  # the background task retries them
                self._outage.failed(next(r for r in results if isinstance(r, Unavailable)))
                return False
        self._outage.recovered()
        return True

    async def close(self) -> None:
        """Apply what can be applied now, then stop (what is left is rebuilt from events)."""
        if self._queue:
            await self.flush()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
