"""Every metric the gateway emits, in one place: name, type, tags and meaning.

The statsd sink, the Prometheus registry, the README's metric table and a test that scans the
source for `metrics.incr("...")` calls all read this list, so a metric cannot exist in one place
and not in another. Names are given without the `bricksllm.` prefix.

Types: `counter` (statsd `c`, Prometheus counter `_total`), `timing` in milliseconds (statsd
`ms`, Prometheus histogram in seconds, `_seconds`), `histogram` of plain numbers (DogStatsD `h`,
plain statsd `ms`, Prometheus histogram), `gauge` (statsd `g`, Prometheus gauge).

Tags never carry a key secret, a provider credential, a prompt or a completion; `key_id` is only
added to the `keyed` metrics when STATS_KEY_TAGS=true (one series per key: mind the cardinality).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PREFIX = "bricksllm."
MetricType = Literal["counter", "timing", "histogram", "gauge"]

# Prometheus histogram buckets (seconds for timings): from sub-millisecond gateway overhead to
# multi-minute generations.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
SIZE_BUCKETS = (1.0, 5.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0)

PROXY_TAGS = ("provider", "model", "route", "status")


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    type: MetricType
    tags: tuple[str, ...]
    meaning: str
    keyed: bool = False  # gets a key_id tag when STATS_KEY_TAGS=true
    buckets: tuple[float, ...] = LATENCY_BUCKETS

    @property
    def statsd_name(self) -> str:
        return PREFIX + self.name

    @property
    def prometheus_name(self) -> str:
        """As written in the scrape (prometheus-client adds `_total` to counters itself)."""
        base = PREFIX.replace(".", "_") + self.name.replace(".", "_")
        return {"counter": base + "_total", "timing": base + "_seconds"}.get(self.type, base)


def _m(name: str, type: MetricType, tags: tuple[str, ...], meaning: str, **kw: object) -> Metric:
    return Metric(name, type, tags, meaning, **kw)  # type: ignore[arg-type]


CATALOGUE: tuple[Metric, ...] = (
    # --- every proxied request (one Outcome each) ---
    _m("proxy.requests", "counter", PROXY_TAGS,
       "Client requests answered by the proxy, admitted or refused; `route` is the endpoint "
       "pattern (never the raw path), `status` the HTTP status the client got.", keyed=True),
    _m("proxy.latency", "timing", PROXY_TAGS,
       "Time from the request's arrival to the end of its answer (streams: the last event)."),
    _m("proxy.upstream_latency", "timing", PROXY_TAGS,
       "Time the provider took: from sending it the request until its answer was read to the end."),
    _m("proxy.ttfb", "timing", ("provider", "model", "route"),
       "Streamed answers: time from the request's arrival to the first byte of the answer body "
       "relayed to the client."),
    _m("proxy.overhead", "timing", ("provider", "route"),
       "The gateway's own time: total minus upstream (streams: up to the answer's headers). The "
       "same figure as the `x-bricksllm-overhead-ms` response header.", buckets=OVERHEAD_BUCKETS),
    _m("proxy.rejected", "counter", ("provider", "route", "reason"),
       "Requests the gateway answered itself instead of forwarding (or after the provider failed), "
       "by `reason`: unauthorized, revoked, expired, path_not_allowed, model_not_allowed, "
       "no_setting, rate_limited, cost_limited, pii_blocked, invalid_request, request_too_large, "
       "request_timeout, not_found, unavailable, upstream_error, upstream_timeout, client_closed. "
       "Requests the proxy server refuses before reading them whole (malformed, headers or body "
       "too large, too slow, over the connection cap) count here and in `proxy.requests` with "
       "provider `none` and route `unmatched`.", keyed=True),
    _m("proxy.tokens", "counter", ("provider", "model", "type"),
       "Tokens used by billed calls; `type` is prompt or completion.", keyed=True),
    _m("proxy.cost_micros", "counter", ("provider", "model"),
       "Cost of billed calls in micro-dollars (1 USD = 1,000,000).", keyed=True),
    # --- limits and pricing ---
    _m("proxy.denied", "counter", ("kind",),
       "Limit refusals by the kind of quota that was reached: requests, cost or tokens."),
    _m("pricing.unknown_model", "counter", (),
       "Billed answers for a model with no price (costed 0): add it to the setting's prices."),
    _m("pricing.unreadable_answer", "counter", (), "Billed answers whose usage could not be read."),
    # --- counters (rate/spend store: in-process or Redis) ---
    _m("counters.unavailable", "counter", (),
       "Admissions for which the counter store could not be reached (refused with 503, or let "
       "through uncounted under REDIS_FAILURE_MODE=open)."),
    _m("counters.settle_error", "counter", (), "Spend that could not be added to the counters."),
    _m("counters.settle_deferred", "counter", (),
       "Settlements kept in memory because the counters could not be reached (applied once they can)."),
    _m("limits.settle_dropped", "counter", (),
       "Deferred settlements dropped because the backlog was full (LIMITS_SETTLE_BACKLOG); events keep "
       "them."),
    _m("limits.settle_error", "counter", (), "Deferred settlements that failed again when applied."),
    _m("limits.fail_open_admissions", "counter", (),
       "Calls admitted uncounted while the counters were unreachable (REDIS_FAILURE_MODE=open)."),
    # --- the event writer and storage ---
    _m("events.written", "counter", (), "Events written to the database."),
    _m("events.write_error", "counter", (),
       "Batch writes that failed because the database was unavailable (the batch is retried)."),
    _m("events.dropped", "counter", (), "Oldest events dropped because the buffer was full."),
    _m("events.rejected", "counter", (), "Events the database refused (bad data); dropped alone."),
    _m("events.anonymous_not_recorded", "counter", (),
       "Refusals of callers without a valid key beyond the recorded rate (counted, not stored)."),
    _m("events.queue_depth", "gauge", (), "Events waiting to be written, sampled at each write."),
    _m("events.batch_size", "histogram", (), "Events per batch write.", buckets=SIZE_BUCKETS),
    _m("config.refresh_error", "counter", (),
       "Failed reloads of keys and settings from the database (the last snapshot is kept)."),
    _m("pii.engine_failures", "counter", ("engine", "mode"),
       "Calls to the optional PII engine that failed or timed out; `mode` is the policy's open or "
       "closed failure mode."),
    # --- routes (retries, failover, cache) ---
    _m("routes.step_skipped", "counter", (),
       "Route steps skipped because their upstream's circuit breaker is open."),
    _m("routes.all_steps_failed", "counter", (),
       "Route calls whose every step failed (the client got the last error)."),
    _m("routes.breaker_unavailable", "counter", (),
       "Circuit-breaker reads or writes that could not reach Redis (the step is tried)."),
    _m("routes.cache_unavailable", "counter", (),
       "Response-cache reads or writes that could not reach Redis (the call goes upstream)."),
    # --- the admin API ---
    _m("admin.requests", "counter", ("route", "method", "status"),
       "Admin API requests by route pattern (e.g. /api/key-management/keys/{keyId}), method and status."),
    _m("admin.latency", "timing", ("route", "method", "status"), "Admin API request duration."),
)  # fmt: skip

BY_NAME: dict[str, Metric] = {m.name: m for m in CATALOGUE}


def markdown_table() -> str:
    """The README's metric table (a test keeps the README in step with it)."""
    rows = ["| statsd name | Prometheus name | type | tags | meaning |", "| --- | --- | --- | --- | --- |"]
    for m in CATALOGUE:
        tags = ", ".join(f"`{t}`" for t in m.tags) + (" (+`key_id`)" if m.keyed else "")
        rows.append(f"| `{m.statsd_name}` | `{m.prometheus_name}` | {m.type} | {tags or '—'} | {m.meaning} |")
    return "\n".join(rows)
