"""Limits around one proxied call: admit before forwarding, settle the spend after.

The admission rule is the domain's (`domain.limits.plan` / `decide`); the counters are a port
(in-process or Redis). Whether a counter-store outage refuses the call (fail-closed, the
default) or lets it through uncounted (fail-open) is decided here, and counted either way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from bricksllm.domain.limits import AdmissionPlan, Quota, plan
from bricksllm.domain.models import Key
from bricksllm.errors import LimitExceeded, Unavailable
from bricksllm.ports import Counters, Metrics

log = logging.getLogger(__name__)
_UNIT = {"s": "second", "m": "minute", "h": "hour", "d": "day", "mo": "month"}


@dataclass(frozen=True, slots=True)
class Admitted:
    """A call let through, with what it must be settled against."""

    plan: AdmissionPlan
    rate_remaining: int = -1  # -1: the key has no rate limit (or it was not counted)

    def rate_headers(self) -> list[tuple[str, str]]:
        rate = self.plan.rate
        if rate is None:
            return []
        remaining = str(max(self.rate_remaining, 0))
        return [
            ("x-ratelimit-limit-requests", str(rate.limit)),
            ("x-ratelimit-remaining-requests", remaining),
        ]


class Limits:
    def __init__(
        self, counters: Counters, metrics: Metrics, *, fail_open: bool, clock: Callable[[], float]
    ) -> None:
        self._counters = counters
        self._metrics = metrics
        self._fail_open = fail_open
        self._clock = clock

    async def admit(self, key: Key) -> Admitted:
        """Raises LimitExceeded (429) when a limit is reached, Unavailable (503) when the
        counters cannot be reached in fail-closed mode."""
        now = self._clock()
        p = plan(key, now)
        if p.empty:
            return Admitted(p)
        try:
            admission = await self._counters.admit(key.key_id, p)
        except Unavailable:
            self._metrics.incr("counters.unavailable")
            if self._fail_open:
                return Admitted(p)
            raise Unavailable("[BricksLLM] limits cannot be checked right now; try again shortly") from None
        if admission.denied_by is not None:
            self._metrics.incr("proxy.denied", tags={"kind": admission.denied_by.kind})
            raise limit_error(admission.denied_by, now, Admitted(p, admission.rate_remaining))
        return Admitted(p, admission.rate_remaining)

    async def settle(self, key: Key, admitted: Admitted, micros: int) -> None:
        """Add a finished call's cost to the key's spend (never raises: the call is over)."""
        if micros <= 0:
            return
        try:
            await self._counters.settle(key.key_id, micros, admitted.plan.spend_window)
        except Exception:
            self._metrics.incr("counters.settle_error")
            log.warning(
                "could not add %d micro-dollars of spend to key %s", micros, key.key_id, exc_info=True
            )


class LimitRefusal(LimitExceeded):
    """A limit refusal that also carries the rate headers of the admission attempt."""

    def __init__(self, message: str, *, code: str, retry_after: int, admitted: Admitted) -> None:
        super().__init__(message, code=code, retry_after=retry_after)
        self.admitted = admitted


def limit_error(quota: Quota, now: float, admitted: Admitted) -> LimitRefusal:
    """A refusal that names the limit that was reached (never the key)."""
    per = f" per {_UNIT[quota.window.unit]}" if quota.window else ""
    if quota.kind == "rate":
        message, code = (
            f"[BricksLLM] too many requests: rate limit of {quota.limit}{per} reached",
            "rate_limit_exceeded",
        )
    else:
        name = "costLimitInUsd" if quota.kind == "spend" else "costLimitInUsdOverTime"
        message, code = (
            f"[BricksLLM] spend limit of ${quota.limit / 1e6:g}{per} reached ({name})",
            "cost_limit_exceeded",
        )
    return LimitRefusal(message, code=code, retry_after=quota.retry_after(now), admitted=admitted)
