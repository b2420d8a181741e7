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

from bricksllm.ports import Metrics
from bricksllm.services.proxy_record import Outcome

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
    def __init__(self, metrics: Metrics, *, key_tags: bool = False, max_models: int = MAX_MODELS) -> None:
        self._metrics = metrics
        self._key_tags = key_tags
        self._models = BoundedValues(max_models)

    def observe(self, outcome: Outcome) -> None:
        e = outcome.event
        m = self._metrics
        provider, model, route = e.provider or "none", self._models.tag(e.model), outcome.route or "unmatched"
        tags = {"provider": provider, "model": model, "route": route, "status": str(e.status)}
        keyed = {**tags, "key_id": e.key_id or "none"} if self._key_tags else tags
        m.incr("proxy.requests", tags=keyed)
        m.timing("proxy.latency", e.latency_in_ms, tags)
        m.timing("proxy.overhead", outcome.overhead_ms, tags)
        if outcome.upstream_ms is not None:
            m.timing("proxy.upstream_latency", outcome.upstream_ms, tags)
        if outcome.ttfb_ms is not None:
            m.timing("proxy.ttfb", outcome.ttfb_ms, tags)
        if outcome.reason:
            rejected = {"provider": provider, "route": route, "reason": outcome.reason}
            if self._key_tags:
                rejected["key_id"] = e.key_id or "none"
            m.incr("proxy.rejected", tags=rejected)
        if e.prompt_token_count or e.completion_token_count or e.cost_micros:
            usage = {"provider": provider, "model": model}
            if self._key_tags:
                usage["key_id"] = e.key_id or "none"
            if e.prompt_token_count:
                m.incr("proxy.tokens", e.prompt_token_count, {**usage, "type": "prompt"})
            if e.completion_token_count:
                m.incr("proxy.tokens", e.completion_token_count, {**usage, "type": "completion"})
            if e.cost_micros:
                m.incr("proxy.cost_micros", e.cost_micros, usage)
