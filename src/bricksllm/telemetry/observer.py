"""Turns each finished proxy request (`services.proxy_record.Outcome`) into metrics: the request
counter and latency, upstream latency, time to first byte, the gateway's overhead, refusals by
reason, tokens and cost. Names and tags: `telemetry.catalogue`.

Tag values come from the gateway's own vocabulary (provider names, route patterns, statuses,
reasons) except the model, which the client chooses: a process keeps at most `max_models`
distinct model values and reports any further one as `other`, so a client sending random model
names cannot grow the Prometheus registry without bound.
"""

from __future__ import annotations

import re

from bricksllm.services.proxy_record import Outcome
from bricksllm.telemetry.catalogue import MetricType
from bricksllm.telemetry.hub import Series, Telemetry

MAX_MODELS = 500
_MODEL = re.compile(r"[A-Za-z0-9_.:/@+\-]{1,100}")


class BoundedValues:
    """The values seen first, up to `limit`; any later new value is `other`."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()

    def tag(self, value: str) -> str:
        if value in self._seen:
            return value
        if not value:
            return "none"
        if len(self._seen) >= self._limit or not _MODEL.fullmatch(value):
            return "other"
        self._seen.add(value)
        return value


class MetricsObserver:
    """The series of one (provider, model, route, status, key) are looked up once and kept: a
    request then costs a dictionary lookup and one `Series.add` per figure."""

    def __init__(self, metrics: Telemetry, *, key_tags: bool = False, max_models: int = MAX_MODELS) -> None:
        self._metrics = metrics
        self._key_tags = key_tags
        self._models = BoundedValues(max_models)
        self._contexts: dict[tuple[str, str, str, int, str], dict[str, Series]] = {}

    def observe(self, outcome: Outcome) -> None:
        e = outcome.event
        key = (e.provider, e.model, outcome.route, e.status, e.key_id if self._key_tags else "")
        series = self._contexts.get(key)
        if series is None:
            if len(self._contexts) >= MAX_CONTEXTS:
                self._contexts.clear()
            series = self._contexts[key] = {}
        get = series.get
        (get("requests") or self._make(series, key, "requests")).add(1)
        (get("latency") or self._make(series, key, "latency")).add(e.latency_in_ms)
        (get("overhead") or self._make(series, key, "overhead")).add(outcome.overhead_ms)
        if outcome.upstream_ms is not None:
            (get("upstream_latency") or self._make(series, key, "upstream_latency")).add(outcome.upstream_ms)
        if outcome.ttfb_ms is not None:
            (get("ttfb") or self._make(series, key, "ttfb")).add(outcome.ttfb_ms)
        if outcome.reason:
            name = "rejected:" + outcome.reason
            (get(name) or self._make(series, key, name)).add(1)
        if e.prompt_token_count:
            (get("tokens:prompt") or self._make(series, key, "tokens:prompt")).add(e.prompt_token_count)
        if e.completion_token_count:
            name = "tokens:completion"
            (get(name) or self._make(series, key, name)).add(e.completion_token_count)
        if e.cost_micros:
            (get("cost_micros") or self._make(series, key, "cost_micros")).add(e.cost_micros)

    def _make(self, series: dict[str, Series], key: tuple[str, str, str, int, str], name: str) -> Series:
        provider, model, route, status, key_id = key
        metric, _, variant = name.partition(":")
        tags = {
            "provider": provider or "none",
            "model": self._models.tag(model),
            "route": route or "unmatched",
            "status": str(status),
        }
        if self._key_tags:
            tags["key_id"] = key_id or "none"
        if metric == "tokens":
            tags["type"] = variant
        elif metric == "rejected":
            tags["reason"] = variant
        made = series[name] = self._metrics.series("proxy." + metric, PROXY_SERIES[metric], tags)
        return made


# what the observer sends, as `proxy.<name>` (the catalogue test reads it)
PROXY_SERIES: dict[str, MetricType] = {
    "requests": "counter",
    "latency": "timing",
    "overhead": "timing",
    "upstream_latency": "timing",
    "ttfb": "timing",
    "rejected": "counter",
    "tokens": "counter",
    "cost_micros": "counter",
}
MAX_CONTEXTS = 10_000
