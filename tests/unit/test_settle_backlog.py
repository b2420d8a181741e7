"""The settlement backlog: bounded, in order, idempotent retries left to the counters."""

from __future__ import annotations

import asyncio
import time

from bricksllm.domain.limits import AdmissionPlan, Quota, Reservation
from bricksllm.errors import Unavailable
from bricksllm.services.settle_backlog import SettleBacklog
from bricksllm.storage.memory_counters import MemoryCounters
from bricksllm.telemetry.metrics import InMemoryMetrics


class Flaky(MemoryCounters):
    """In-process counters that can be made unreachable."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True

    async def settle(self, reservation: Reservation, cost: int, tokens: int) -> None:
        if self.down:
            raise Unavailable("counter store unreachable")
        await super().settle(reservation, cost, tokens)


def res(i: int) -> Reservation:
    return Reservation(f"r{i}", AdmissionPlan((Quota("cost", 0, "k"),)), 0, 0, int(time.time()) + 60)


async def test_settlements_wait_until_the_counters_are_back() -> None:
    counters, metrics = Flaky(), InMemoryMetrics()
    backlog = SettleBacklog(counters, metrics, capacity=10)
    for i in range(5):
        backlog.add(res(i), 10, 0)
    assert not await backlog.flush() and len(backlog) == 5
    counters.down = False
    for _ in range(100):  # the background task retries by itself
        if not len(backlog):
            break
        await asyncio.sleep(0.05)
    assert len(backlog) == 0 and await counters.spend("k") == 50
    backlog.add(res(0), 10, 0)  # the same settlement again: counted once
    await backlog.close()
    assert await counters.spend("k") == 50


async def test_the_backlog_is_bounded_and_counts_what_it_drops() -> None:
    counters, metrics = Flaky(), InMemoryMetrics()
    backlog = SettleBacklog(counters, metrics, capacity=3)
    for i in range(5):
        backlog.add(res(i), i, 0)
    assert len(backlog) == 3 and backlog.dropped == 2
    assert metrics.counts["limits.settle_dropped"] == 2
    counters.down = False
    await backlog.close()
    assert await counters.spend("k") == 2 + 3 + 4  # the oldest two were dropped
