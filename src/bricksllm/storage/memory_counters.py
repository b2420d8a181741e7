"""Live rate and spend counters held in this process (the embedded, single-instance backend).

Admission must be exact: `admit` reads every counter, applies `domain.limits.decide` and
increments the rate counter without a single `await` in between, so on one event loop it is
atomic and 50 concurrent admits against a limit of 10 admit exactly 10. Windowed counters
expire at their window's end plus the same grace the Redis backend gives its keys; a heap of
expiry times lets every operation drop ended windows in O(log n) each, so memory stays
bounded by the live windows no matter how many old ones there were. Counters are lost on
restart: the composition root rebuilds them from recorded events with `seed`.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable

from bricksllm.domain.limits import Admission, AdmissionPlan, Quota, Window, decide

# Keep a window's counter this long after the window ends, so a request planned just before


def expiry(window: Window) -> int:
    """When a counter of `window` may be forgotten (unix seconds)."""
    return window.expires_at


class MemoryCounters:
    """Dict-backed `Counters`. `now` is injected so tests can move time without sleeping."""

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self._values: dict[str, int] = {}
        self._expires: dict[str, int] = {}  # counter id -> unix seconds; absent = never
        self._heap: list[tuple[int, str]] = []  # (expires at, counter id); may hold stale entries

    def __len__(self) -> int:
        """Number of live counters (for tests and metrics)."""
        self._sweep(self._now())
        return len(self._values)

    async def admit(self, key_id: str, plan: AdmissionPlan) -> Admission:
        # No await below: read, decide and increment happen in one step of the event loop.
        now = self._now()
        self._sweep(now)
        spent = [self._values.get(q.counter_id(key_id), 0) for q in plan.spend]
        rate = plan.rate
        used = self._values.get(rate.counter_id(key_id), 0) if rate is not None else 0
        admission = decide(plan, spent, used)
        if admission.allowed and rate is not None:
            expires_at = expiry(rate.window) if rate.window is not None else None
            self._add(rate.counter_id(key_id), 1, expires_at, now)
        return admission

    async def settle(self, key_id: str, micros: int, window: Window | None) -> None:
        if micros == 0:
            return
        now = self._now()
        self._sweep(now)
        self._add(Quota("spend", 0).counter_id(key_id), micros, None, now)
        if window is not None:
            self._add(Quota("spend_window", 0, window).counter_id(key_id), micros, expiry(window), now)

    async def spend(self, key_id: str) -> int:
        return self._values.get(Quota("spend", 0).counter_id(key_id), 0)

    async def seed(self, counter_id: str, value: int, expires_at: int | None) -> None:
        """Set a counter that does not exist yet (start-up rebuild from recorded events); one whose
        window has already ended is ignored."""
        now = self._now()
        self._sweep(now)
        if (expires_at is not None and expires_at <= now) or counter_id in self._values:
            return
        self._values[counter_id] = value
        self._set_expiry(counter_id, expires_at)

    async def close(self) -> None:
        return None

    def _add(self, counter_id: str, amount: int, expires_at: int | None, now: float) -> None:
        if expires_at is not None and expires_at <= now:
            return  # the window is over: like an EXPIREAT in the past on Redis, nothing stays
        if counter_id in self._values:
            self._values[counter_id] += amount
            return
        self._values[counter_id] = amount
        self._set_expiry(counter_id, expires_at)

    def _set_expiry(self, counter_id: str, expires_at: int | None) -> None:
        if expires_at is None:
            self._expires.pop(counter_id, None)
            return
        self._expires[counter_id] = expires_at
        heapq.heappush(self._heap, (expires_at, counter_id))

    def _sweep(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            expires_at, counter_id = heapq.heappop(heap)
            if self._expires.get(counter_id) == expires_at:  # skip entries a seed superseded
                del self._expires[counter_id]
                del self._values[counter_id]
