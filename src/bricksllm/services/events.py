"""The event writer: events are queued on the request path and written in batches off it.

`record()` never blocks and never does I/O. A background task flushes a batch when it is full
or every `flush_interval` seconds. If the store is down, the batch stays in the buffer and is
retried with capped exponential backoff and jitter, so a short database outage loses nothing;
the buffer is bounded (`max_buffer`), and only when it is full are the oldest events dropped —
and counted. An outage is logged once when it starts and once when it ends (with how long it
lasted and how many attempts failed), never once per retry. A row the store refuses (bad data,
not an outage) is dropped alone, so it never blocks the rows behind it. `stop()` flushes
everything that is left and returns how many events could not be written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque

from bricksllm.domain.models import Event
from bricksllm.errors import Unavailable
from bricksllm.outages import OutageLog
from bricksllm.ports import EventStore, Metrics

log = logging.getLogger(__name__)


class EventWriter:
    def __init__(
        self,
        store: EventStore,
        metrics: Metrics,
        *,
        batch_size: int = 500,
        flush_interval: float = 0.2,
        max_buffer: int = 100_000,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._buffer: deque[Event] = deque()
        self._max_buffer = max_buffer
        self._full = asyncio.Event()
        self._writing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        self._outage = OutageLog(log, "events cannot be written")

    def record(self, event: Event) -> None:
        if len(self._buffer) >= self._max_buffer:
            self._buffer.popleft()
            self.dropped += 1
            self._metrics.incr("events.dropped")
        self._buffer.append(event)
        if len(self._buffer) >= self._batch_size:
            self._full.set()

    @property
    def pending(self) -> int:
        return len(self._buffer)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-writer")

    async def stop(self, grace: float = 10.0) -> int:
        """Flush what is left (retrying for up to `grace` seconds); returns the number of events
        lost: still unwritten, dropped on overflow or refused by the store."""
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self._buffer and loop.time() < deadline:
            if not await self.flush():
                await asyncio.sleep(0.2)
        if self._buffer:
            log.error("%d events could not be written before shutdown", len(self._buffer))
        return len(self._buffer) + self.dropped

    async def flush(self) -> bool:
        """Write up to one batch. Returns False if the store is unreachable (the batch is kept)."""
        async with self._writing:
            if not self._buffer:
                return True
            batch = [self._buffer[i] for i in range(min(self._batch_size, len(self._buffer)))]
            self._metrics.gauge("events.queue_depth", len(self._buffer))
            self._metrics.histogram("events.batch_size", len(batch))
            try:
                await self._store.insert_events(batch)
                done = batch
            except Unavailable as exc:
                self._metrics.incr("events.write_error")
                self._outage.failed(exc)
                return False
            except Exception:  # not an outage: retrying the batch cannot help; keep all but the bad ones
                log.exception("a batch of %d events was refused; writing them one by one", len(batch))
                done = await self._write_one_by_one(batch)
            self._outage.recovered(f"{len(self._buffer)} events waiting")
            handled = {id(e) for e in done}
            while self._buffer and id(self._buffer[0]) in handled:  # overflow may have dropped some already
                self._buffer.popleft()
            self._metrics.incr("events.written", len(done))
            return len(done) == len(batch)

    async def _write_one_by_one(self, batch: list[Event]) -> list[Event]:
        """Write each event alone; drop (and count) the ones the store refuses. Stops at an outage
        and returns the events handled so far."""
        for i, event in enumerate(batch):
            try:
                await self._store.insert_events([event])
            except Unavailable:
                return batch[:i]
            except Exception:
                self.dropped += 1
                self._metrics.incr("events.rejected")
                log.error("event %s was refused by the store and dropped", event.id)
        return batch

    async def _run(self) -> None:
        backoff = self._flush_interval
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), backoff)
            self._full.clear()
            ok = True
            while ok and self._buffer:
                ok = await self.flush()
                if len(self._buffer) < self._batch_size:
                    break
            # capped exponential backoff, with jitter so instances do not retry in step
            backoff = self._flush_interval if ok else min(backoff * 2, 5.0) * random.uniform(0.8, 1.2)
