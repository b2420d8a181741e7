"""The embedded (single-process) circuit breaker and response cache of routes.

`MemoryBreaker` counts failures in a row per upstream; `MemoryCache` is a bounded LRU (entries
and bytes) whose entries also expire after their ttl. The clock is injected, so both are tested
without waiting.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class MemoryBreaker:
    """Implements `ports.Breaker` in this process."""

    def __init__(self, failures: int, cooldown: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._threshold = failures
        self._cooldown = cooldown
        self._clock = clock
        self._failures: dict[str, int] = {}
        self._open_until: dict[str, float] = {}

    async def allow(self, upstream: str) -> bool:
        until = self._open_until.get(upstream)
        return until is None or self._clock() >= until

    async def record(self, upstream: str, ok: bool) -> None:
        if ok:
            self._failures.pop(upstream, None)
            self._open_until.pop(upstream, None)
            return
        if len(self._failures) > 100_000:  # upstreams are few; this only bounds a pathological case
            self._failures.clear()
        count = self._failures[upstream] = self._failures.get(upstream, 0) + 1
        if count >= self._threshold:
            self._open_until[upstream] = self._clock() + self._cooldown

    async def close(self) -> None:
        return None


class MemoryCache:
    """Implements `ports.ResponseCache`: least recently used entries go first once either bound
    is reached; an expired entry is never returned."""

    def __init__(self, max_entries: int, max_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._bytes = 0

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if self._clock() >= expires:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return value

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        if len(value) > self._max_bytes:
            return
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (self._clock() + ttl, value)
        self._bytes += len(value)
        while len(self._entries) > self._max_entries or self._bytes > self._max_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        _, value = self._entries.pop(key)
        self._bytes -= len(value)

    async def close(self) -> None:
        self._entries.clear()
        self._bytes = 0
