"""Builds the metrics of a gateway from its settings (called by the composition root only).

The adapters (and `prometheus_client`) are imported only when metrics are on: a gateway without
them starts without loading them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bricksllm.errors import BricksError
from bricksllm.settings import Settings

if TYPE_CHECKING:
    from bricksllm.telemetry.hub import Telemetry
    from bricksllm.telemetry.observer import MetricsObserver


def telemetry_from_settings(s: Settings) -> tuple[Telemetry, MetricsObserver] | None:
    """The metrics adapter and the proxy's observer feeding it; None when neither statsd nor
    /metrics is wanted: the gateway then keeps NullMetrics and no observer (metrics cost nothing)."""
    scraped = s.metrics_enabled or s.metrics_port is not None
    if not s.stats_enabled and not scraped:
        return None
    from bricksllm.telemetry.hub import Telemetry
    from bricksllm.telemetry.observer import MetricsObserver
    from bricksllm.telemetry.prometheus import PrometheusSink
    from bricksllm.telemetry.statsd import StatsdSink

    statsd = None
    if s.stats_enabled:
        try:
            statsd = StatsdSink(s.stats_address, datadog=s.stats_provider == "datadog")
        except OSError as exc:  # an unknown host name
            raise BricksError(f"STATS_ADDRESS={s.stats_address}: {exc}") from exc
    prometheus = PrometheusSink(key_tags=s.stats_key_tags) if scraped else None
    telemetry = Telemetry(statsd, prometheus, key_tags=s.stats_key_tags)
    return telemetry, MetricsObserver(telemetry, key_tags=s.stats_key_tags)
