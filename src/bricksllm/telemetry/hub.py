"""`Telemetry`: the `ports.Metrics` adapter that hands every figure to statsd and/or the
Prometheus registry, gathered per event-loop tick in `Series`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from bricksllm.telemetry.catalogue import BY_NAME, PREFIX, MetricType
from bricksllm.telemetry.prometheus import CONTENT_TYPE_LATEST, PrometheusSink, label_names
from bricksllm.telemetry.statsd import StatsdSink, number

# Series kept ready (statsd line heads, Prometheus children); the cache is emptied beyond this.
MAX_SERIES = 20_000
VALUES_PER_LINE = 64  # timing values packed in one DogStatsD line
# Values are handed on this long after the first one of a batch arrives (0: at the end of the
# event-loop tick). A UDP send costs this machine ~10-20 µs of kernel time, so sending every tick
# under load would cost more than the metrics themselves (bench/statsd_client.py); statsd
# servers aggregate over 10 s anyway, and a scrape hands on what is pending first.
FLUSH_INTERVAL = 0.1


class Series:
    """One metric with its tags fixed: its statsd line head and its Prometheus cell are made
    once. `add` only keeps the value; `Telemetry.flush` hands a batch's values on (client-side
    aggregation, as the DogStatsD clients do): a counter as one sum, a gauge as its last value,
    timings one by one to Prometheus and, to DogStatsD, several to a line (`name:1.2:3.4|ms`,
    protocol 1.1; plain statsd gets one line each)."""

    __slots__ = ("_head", "_kind", "_owner", "_record", "_tail", "_values")

    def __init__(
        self,
        owner: Telemetry,
        kind: MetricType,
        head: tuple[str, str],
        record: Callable[[float], None] | None,
    ) -> None:
        self._owner = owner
        self._kind = kind
        self._head, self._tail = head
        self._record = record
        self._values: list[float] = []

    def add(self, value: float) -> None:
        values = self._values
        values.append(value)
        if len(values) == 1:
            self._owner.dirty(self)

    def drain(self, lines: list[str] | None, packed: bool) -> None:
        values, self._values = self._values, []
        if not values:
            return
        kind = self._kind
        if kind == "counter":
            values = [sum(values)]
        elif kind == "gauge":
            values = values[-1:]
        if self._record is not None:
            for value in values:
                self._record(value)
        if lines is not None:
            head, tail = self._head, self._tail
            if packed:
                for i in range(0, len(values), VALUES_PER_LINE):
                    lines.append(f"{head}:{':'.join(map(number, values[i : i + VALUES_PER_LINE]))}{tail}")
            else:
                lines.extend(f"{head}:{number(v)}{tail}" for v in values)


class Telemetry:
    """Every metric to statsd (when enabled) and to the Prometheus registry (when scraped), in
    batches `flush_interval` seconds apart (0: every event-loop tick). Tags are taken in the
    catalogue's order (missing ones empty); a name missing from the catalogue still goes to
    statsd with the tags given, but Prometheus needs it declared. Also what `GET /metrics`
    serves (`http.admin_metrics.Exposition`)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(
        self,
        statsd: StatsdSink | None,
        prometheus: PrometheusSink | None,
        *,
        key_tags: bool = False,
        flush_interval: float = FLUSH_INTERVAL,
    ) -> None:
        self.statsd = statsd
        self._interval = flush_interval
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None
        self.prometheus = prometheus
        self.key_tags = key_tags
        self._labels = {name: label_names(m, key_tags) for name, m in BY_NAME.items()}
        self._series: dict[tuple[str, MetricType, tuple[str, ...]], Series] = {}
        self._dirty: list[Series] = []

    def incr(self, name: str, value: int = 1, tags: Mapping[str, str] | None = None) -> None:
        self.series(name, "counter", tags).add(value)

    def timing(self, name: str, ms: float, tags: Mapping[str, str] | None = None) -> None:
        self.series(name, "timing", tags).add(ms)

    def gauge(self, name: str, value: float, tags: Mapping[str, str] | None = None) -> None:
        self.series(name, "gauge", tags).add(value)

    def histogram(self, name: str, value: float, tags: Mapping[str, str] | None = None) -> None:
        self.series(name, "histogram", tags).add(value)

    def series(self, name: str, kind: MetricType, tags: Mapping[str, str] | None) -> Series:
        """The series of `name` with these tags (cached; the cache is bounded)."""
        names = self._labels.get(name)
        if names is None:
            names = tuple(tags) if tags else ()
        values = tuple(tags.get(n, "") for n in names) if tags else ("",) * len(names)
        key = (name, kind, values)
        found = self._series.get(key)
        if found is None:
            if len(self._series) >= MAX_SERIES:
                self.flush()
                self._series.clear()
            head = self.statsd.head(PREFIX + name, kind, names, values) if self.statsd else ("", "")
            metric = BY_NAME.get(name)
            record = self.prometheus.recorder(metric, values) if self.prometheus and metric else None
            found = self._series[key] = Series(self, kind, head, record)
        return found

    def dirty(self, series: Series) -> None:
        self._dirty.append(series)
        if self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # not on an event loop (start-up, a thread): at once
                self.flush()
                return
            if self._interval:
                self._timer = loop.call_later(self._interval, self.flush)
            else:
                self._timer = loop.call_soon(self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        dirty, self._dirty = self._dirty, []
        lines: list[str] | None = [] if self.statsd is not None else None
        packed = self.statsd is not None and self.statsd.datadog
        for series in dirty:
            series.drain(lines, packed)
        if lines and self.statsd is not None:
            self.statsd.send(lines)

    def render(self) -> bytes:
        """The Prometheus text format, this tick's values included."""
        self.flush()
        return self.prometheus.render() if self.prometheus is not None else b""

    def close(self) -> None:
        self.flush()
        if self.statsd is not None:
            self.statsd.close()
