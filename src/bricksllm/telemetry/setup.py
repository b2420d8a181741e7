"""Builds the metrics of a gateway from its settings (called by the composition root only)."""

from __future__ import annotations

from bricksllm.errors import BricksError
from bricksllm.settings import Settings
from bricksllm.telemetry.metrics import Telemetry
from bricksllm.telemetry.prometheus import PrometheusSink
from bricksllm.telemetry.statsd import StatsdSink


def telemetry_from_settings(s: Settings) -> Telemetry | None:
    """None when neither statsd nor /metrics is wanted: the gateway then keeps NullMetrics and
    no observer, so metrics cost nothing."""
    scraped = s.metrics_enabled or s.metrics_port is not None
    if not s.stats_enabled and not scraped:
        return None
    statsd = None
    if s.stats_enabled:
        try:
            statsd = StatsdSink(s.stats_address, datadog=s.stats_provider == "datadog")
        except OSError as exc:  # an unknown host name
            raise BricksError(f"STATS_ADDRESS={s.stats_address}: {exc}") from exc
    prometheus = PrometheusSink(key_tags=s.stats_key_tags) if scraped else None
    return Telemetry(statsd, prometheus, key_tags=s.stats_key_tags)
