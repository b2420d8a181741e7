"""Metrics adapters implementing `bricksllm.ports.Metrics`: the do-nothing default, a counting
one for tests, and `Telemetry`, which hands every figure to statsd and/or Prometheus."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from bricksllm.telemetry.catalogue import BY_NAME, PREFIX, MetricType
from bricksllm.telemetry.prometheus import PrometheusSink, label_names
from bricksllm.telemetry.statsd import StatsdSink


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


class Telemetry:
    """Every metric to statsd (when enabled) and to the Prometheus registry (when scraped).
    Tags are taken in the catalogue's order (missing ones empty); a name missing from the
    catalogue still goes to statsd with the tags given, but Prometheus needs it declared."""

    def __init__(
        self, statsd: StatsdSink | None, prometheus: PrometheusSink | None, *, key_tags: bool = False
    ) -> None:
        self.statsd = statsd
        self.prometheus = prometheus
        self.key_tags = key_tags
        self._labels = {name: label_names(m, key_tags) for name, m in BY_NAME.items()}

    def incr(self, name: str, value: int = 1, tags: Mapping[str, str] | None = None) -> None:
        self._emit(name, "counter", value, tags)

    def timing(self, name: str, ms: float, tags: Mapping[str, str] | None = None) -> None:
        self._emit(name, "timing", ms, tags)

    def gauge(self, name: str, value: float, tags: Mapping[str, str] | None = None) -> None:
        self._emit(name, "gauge", value, tags)

    def histogram(self, name: str, value: float, tags: Mapping[str, str] | None = None) -> None:
        self._emit(name, "histogram", value, tags)

    def _emit(self, name: str, type: MetricType, value: float, tags: Mapping[str, str] | None) -> None:
        names = self._labels.get(name)
        if names is None:
            names = tuple(tags) if tags else ()
        values = tuple(tags.get(n, "") for n in names) if tags else ("",) * len(names)
        if self.statsd is not None:
            self.statsd.send(PREFIX + name, type, value, names, values)
        if self.prometheus is not None and name in BY_NAME:
            self.prometheus.record(BY_NAME[name], value, values)

    def close(self) -> None:
        if self.statsd is not None:
            self.statsd.close()
