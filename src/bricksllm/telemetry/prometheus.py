"""Prometheus exposition with `prometheus-client`: one private registry holding a counter,
histogram or gauge for every metric of the catalogue (labels = its tags), rendered by
`GET /metrics` on the admin port (or on METRICS_PORT)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from bricksllm.telemetry.catalogue import CATALOGUE, PREFIX, Metric


def label_names(metric: Metric, key_tags: bool) -> tuple[str, ...]:
    return metric.tags + (("key_id",) if key_tags and metric.keyed else ())


class PrometheusSink:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, *, key_tags: bool = False) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._families: dict[str, Any] = {}
        for m in CATALOGUE:
            name = (PREFIX + m.name).replace(".", "_")
            labels = label_names(m, key_tags)
            family: Any
            if m.type == "counter":
                family = Counter(name, m.meaning, labels, registry=self.registry)
            elif m.type == "gauge":
                family = Gauge(name, m.meaning, labels, registry=self.registry)
            else:
                suffix = "_seconds" if m.type == "timing" else ""
                family = Histogram(
                    name + suffix, m.meaning, labels, buckets=m.buckets, registry=self.registry
                )
            self._families[m.name] = family

    def recorder(self, metric: Metric, labels: tuple[str, ...]) -> Callable[[float], None]:
        """The call that records one value of `metric` with these label values."""
        family = self._families[metric.name]
        child = family.labels(*labels) if labels else family
        if metric.type == "counter":
            return cast(Callable[[float], None], child.inc)
        if metric.type == "gauge":
            return cast(Callable[[float], None], child.set)
        if metric.type == "timing":  # milliseconds in, seconds out
            observe = child.observe
            return lambda ms: observe(ms / 1000)
        return cast(Callable[[float], None], child.observe)

    def render(self) -> bytes:
        return generate_latest(self.registry)
