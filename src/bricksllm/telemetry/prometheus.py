"""Prometheus exposition with `prometheus-client`: every metric of the catalogue as a counter,
histogram or gauge (labels = its tags), rendered by `GET /metrics` on the admin port (or on
METRICS_PORT).

The values live in plain cells that this module owns and that `prometheus-client` reads through
its custom-collector interface at scrape time (`collect`), rather than in the library's metric
objects: those take a lock and search the buckets in Python on every observation, which
measured about twice the cost of everything else the metrics do for a request. Everything
happens on the event loop's thread, scrapes included, so the cells need no lock.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.core import (
    Metric as Family,
)
from prometheus_client.utils import floatToGoString

from bricksllm.telemetry.catalogue import CATALOGUE, PREFIX, Metric

__all__ = ["CONTENT_TYPE_LATEST", "PrometheusSink", "label_names"]


def label_names(metric: Metric, key_tags: bool) -> tuple[str, ...]:
    return metric.tags + (("key_id",) if key_tags and metric.keyed else ())


class _Value:
    """A counter's total or a gauge's last value."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def add(self, amount: float) -> None:
        self.value += amount

    def set(self, value: float) -> None:
        self.value = value


class _Histogram:
    __slots__ = ("bounds", "counts", "scale", "sum")

    def __init__(self, bounds: tuple[float, ...], scale: float) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.scale = scale
        self.sum = 0.0

    def observe(self, value: float) -> None:
        value *= self.scale
        self.counts[bisect_left(self.bounds, value)] += 1  # the first bucket whose bound is >= value
        self.sum += value

    def buckets(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        total = 0
        for bound, count in zip((*map(floatToGoString, self.bounds), "+Inf"), self.counts, strict=True):
            total += count
            out.append((bound, total))
        return out


class PrometheusSink:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, *, key_tags: bool = False) -> None:
        self._labels = {m.name: label_names(m, key_tags) for m in CATALOGUE}
        self._cells: dict[str, dict[tuple[str, ...], _Value | _Histogram]] = {m.name: {} for m in CATALOGUE}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def recorder(self, metric: Metric, labels: tuple[str, ...]) -> Callable[[float], None]:
        """The call that records one value of `metric` with these label values (timings come in
        milliseconds and are exposed in seconds)."""
        cells = self._cells[metric.name]
        cell = cells.get(labels)
        if cell is None:
            if metric.type in ("counter", "gauge"):
                cell = _Value()
            else:
                cell = _Histogram(metric.buckets, 0.001 if metric.type == "timing" else 1.0)
            cells[labels] = cell
        if isinstance(cell, _Histogram):
            return cell.observe
        return cell.add if metric.type == "counter" else cell.set

    def collect(self) -> Iterator[Family]:
        """Read by `prometheus-client` at each scrape."""
        for m in CATALOGUE:
            name, labels = (PREFIX + m.name).replace(".", "_"), list(self._labels[m.name])
            cells = self._cells[m.name].items()
            if m.type in ("counter", "gauge"):
                kind = CounterMetricFamily if m.type == "counter" else GaugeMetricFamily
                values = kind(name, m.meaning, labels=labels)
                for label_values, cell in cells:
                    assert isinstance(cell, _Value)
                    values.add_metric(list(label_values), cell.value)
                yield values
            else:
                suffix = "_seconds" if m.type == "timing" else ""
                histogram = HistogramMetricFamily(name + suffix, m.meaning, labels=labels)
                for label_values, cell in cells:
                    assert isinstance(cell, _Histogram)
                    histogram.add_metric(list(label_values), cell.buckets(), cell.sum)
                yield histogram

    def render(self) -> bytes:
        return generate_latest(self.registry)
