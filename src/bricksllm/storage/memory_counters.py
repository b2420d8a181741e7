"""Live request, spend and token counters held in this process (the embedded backend).

Admission must be exact: `admit` reads every counter and its reservations, applies
`domain.limits.decide`, counts the request and reserves the estimates without a single `await`
in between, so on one event loop it is one critical section: 200 concurrent calls against a
budget reserve it exactly. Windowed counters expire at their window's end plus the same grace the
Redis backend gives its keys (a heap of expiry times drops them in O(log n) each), and
reservations at their lease (the calls in flight are scanned once a second). Settled reservation
ids are remembered in two generations of sets, for between one and two `SETTLED_MEMORY_SECONDS`.
Memory stays bounded by the live windows, the calls in flight and the settlements of the last
seconds, whatever the request rate. Counters are lost on restart: the composition root rebuilds
them from recorded events with `seed`.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable

from bricksllm.domain.limits import Admission, Quota, Reservation, amount, decide

# A settled reservation's id is remembered at least this long, so a settlement applied twice counts
# once (in-process, a settlement is retried at once or never).
SETTLED_MEMORY_SECONDS = 10
LEASE_SCAN_SECONDS = 1  # how often reservations in flight are checked for an ended lease


class MemoryCounters:
    """Dict-backed `Counters`. `now` is injected so tests can move time without sleeping."""

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self._values: dict[str, int] = {}
        self._expires: dict[str, int] = {}  # counter id -> unix seconds; absent = never
        self._heap: list[tuple[int, str]] = []  # (expires at, counter id); may hold stale entries
        self._reserved: dict[str, int] = {}  # counter id -> sum of its live reservations
        # (counter id, reservation id) -> (amount, lease end): the calls in flight
        self._held: dict[tuple[str, str], tuple[int, int]] = {}
        self._lease_scan_at = 0.0
        self._settled: set[str] = set()  # reservation ids settled in this generation...
        self._settled_before: set[str] = set()  # ... and in the previous one
        self._settled_rotate_at = 0.0

    def __len__(self) -> int:
        """Number of live counters (for tests and metrics)."""
        self._sweep(self._now())
        return len(self._values)

    def reserved(self, counter_id: str) -> int:
        """What calls in flight hold on a counter (for tests)."""
        self._sweep(self._now())
        return self._reserved.get(counter_id, 0)

    def remembered(self) -> int:
        """Reservations in flight plus settled ids still remembered (for tests): bounded by the
        calls of the last seconds, never by the calls since start."""
        self._sweep(self._now())
        return len(self._held) + len(self._settled) + len(self._settled_before)

    async def admit(self, reservation: Reservation) -> Admission:
        # No await below: read, decide, count and reserve happen in one step of the event loop.
        now = self._now()
        self._sweep(now)
        quotas = reservation.plan.quotas
        counted = [self._values.get(q.counter_id, 0) for q in quotas]
        reserved = [self._reserved.get(q.counter_id, 0) for q in quotas]
        admission = decide(reservation.plan, counted, reserved, reservation.cost, reservation.tokens)
        if admission.allowed:
            for quota in quotas:
                if quota.metric == "requests":
                    self._add(quota, 1, now)
                elif quota.reserves:
                    self._reserve(quota, reservation, now)
        return admission

    async def settle(self, reservation: Reservation, cost: int, tokens: int) -> None:
        now = self._now()
        self._sweep(now)
        if reservation.id in self._settled or reservation.id in self._settled_before:
            return
        self._settled.add(reservation.id)
        for quota in reservation.plan.quotas:
            self._release(quota.counter_id, reservation.id)
            if quota.metric == "requests":
                if not reservation.counted:
                    self._add(quota, 1, now)
                continue
            self._add(quota, amount(quota, cost, tokens), now)

    async def spend(self, key_id: str) -> int:
        return self._values.get(Quota("cost", 0, key_id).counter_id, 0)

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

    def _reserve(self, quota: Quota, reservation: Reservation, now: float) -> None:
        held = amount(quota, reservation.cost, reservation.tokens)
        if held <= 0 or reservation.lease_until <= now:
            return
        counter_id = quota.counter_id
        self._held[(counter_id, reservation.id)] = (held, reservation.lease_until)
        self._reserved[counter_id] = self._reserved.get(counter_id, 0) + held

    def _release(self, counter_id: str, reservation_id: str) -> None:
        entry = self._held.pop((counter_id, reservation_id), None)
        if entry is None:
            return
        left = self._reserved[counter_id] - entry[0]
        if left:
            self._reserved[counter_id] = left
        else:
            del self._reserved[counter_id]

    def _add(self, quota: Quota, value: int, now: float) -> None:
        if value == 0:
            return
        counter_id, expires_at = quota.counter_id, quota.expires_at
        if expires_at is not None and expires_at <= now:
            return  # the window is over: like an EXPIREAT in the past on Redis, nothing stays
        if counter_id in self._values:
            self._values[counter_id] += value
            return
        self._values[counter_id] = value
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
        if now >= self._lease_scan_at:
            self._lease_scan_at = now + LEASE_SCAN_SECONDS
            ended = [held for held, (_, lease) in self._held.items() if lease <= now]
            for counter_id, reservation_id in ended:  # not settled in time: the process died, or hangs
                self._release(counter_id, reservation_id)
        if now >= self._settled_rotate_at:
            self._settled_rotate_at = now + SETTLED_MEMORY_SECONDS
            self._settled_before, self._settled = self._settled, set()
