"""Prometheus exposition with `prometheus-client`: one private registry holding a counter,
histogram or gauge for every metric of the catalogue (labels = its tags), rendered by
`GET /metrics` on the admin port (or on METRICS_PORT)."""

from __future__ import annotations

from typing import Any

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
        self._children: dict[tuple[str, tuple[str, ...]], Any] = {}
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

    def record(self, metric: Metric, value: float, labels: tuple[str, ...]) -> None:
        child = self._children.get((metric.name, labels))
        if child is None:
            family = self._families[metric.name]
            child = family.labels(*labels) if labels else family
            self._children[(metric.name, labels)] = child
        if metric.type == "counter":
            child.inc(value)
        elif metric.type == "timing":
            child.observe(value / 1000)
        elif metric.type == "histogram":
            child.observe(value)
        else:
            child.set(value)

    def render(self) -> bytes:
        return generate_latest(self.registry)
