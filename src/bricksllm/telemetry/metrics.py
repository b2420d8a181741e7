"""Metrics adapters implementing `bricksllm.ports.Metrics`: the do-nothing default and a counting
one for tests. The real one, `telemetry.hub.Telemetry`, is imported only when metrics are on."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping


class NullMetrics:
    """Does nothing; the default so development and tests need no statsd or Prometheus."""

    def incr(self, name: str, value: int = 1, tags: Mapping[str, str] | None = None) -> None:
        return None

    def timing(self, name: str, ms: float, tags: Mapping[str, str] | None = None) -> None:
        return None

    def gauge(self, name: str, value: float, tags: Mapping[str, str] | None = None) -> None:
        return None

    def histogram(self, name: str, value: float, tags: Mapping[str, str] | None = None) -> None:
        return None


class InMemoryMetrics:
    """Counts in a dict; used by tests to assert that something was counted."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def incr(self, name: str, value: int = 1, tags: Mapping[str, str] | None = None) -> None:
        self.counts[name] += value

    def timing(self, name: str, ms: float, tags: Mapping[str, str] | None = None) -> None:
        self.counts[name + ".count"] += 1

    def gauge(self, name: str, value: float, tags: Mapping[str, str] | None = None) -> None:
        self.counts[name + ".count"] += 1

    def histogram(self, name: str, value: float, tags: Mapping[str, str] | None = None) -> None:
        self.counts[name + ".count"] += 1
