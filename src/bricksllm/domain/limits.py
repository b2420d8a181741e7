"""Limit windows and admission plans.

Windows are calendar-aligned in UTC, as in the reference: a limit "per minute" counts the
requests of 12:03:00-12:03:59, not of the last sixty seconds. Units: s, m, h, d for rates;
m, h, d, mo for spend. Everything here is pure: `now` is a unix timestamp passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from bricksllm.domain.models import Key

RATE_UNITS = frozenset({"s", "m", "h", "d"})
COST_UNITS = frozenset({"m", "h", "d", "mo"})
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# Counters outlive their window by this much: requests that straddle the boundary and clock drift
# between instances and Redis must not find a window's counter already gone.
COUNTER_GRACE_SECONDS = 10


@dataclass(frozen=True, slots=True)
class Window:
    unit: str
    start: int  # unix seconds, inclusive
    end: int  # unix seconds, exclusive

    @property
    def expires_at(self) -> int:
        """When a counter of this window may be forgotten."""
        return self.end + COUNTER_GRACE_SECONDS


def window(unit: str, now: float) -> Window:
    """The calendar window of `unit` that contains `now`."""
    t = int(now)
    if unit == "mo":
        d = datetime.fromtimestamp(t, UTC)
        month_start = datetime(d.year, d.month, 1, tzinfo=UTC)
        month_end = datetime(d.year + (d.month == 12), d.month % 12 + 1, 1, tzinfo=UTC)
        return Window(unit, int(month_start.timestamp()), int(month_end.timestamp()))
    size = _UNIT_SECONDS[unit]
    return Window(unit, t - t % size, t - t % size + size)


@dataclass(frozen=True, slots=True)
class Quota:
    """One limit to hold at admission. `window` None means all time."""

    kind: str  # "rate" | "spend" | "spend_window"
    limit: int  # requests, or micro-dollars
    window: Window | None = None

    def counter_id(self, key_id: str) -> str:
        if self.window is None:
            return f"{key_id}:{self.kind}"
        return f"{key_id}:{self.kind}:{self.window.unit}:{self.window.start}"

    def retry_after(self, now: float) -> int:
        return max(1, int(self.window.end - now)) if self.window else 0


@dataclass(frozen=True, slots=True)
class AdmissionPlan:
    """What a key's request must satisfy: spend quotas are checked, the rate quota is consumed."""

    spend: tuple[Quota, ...] = ()
    rate: Quota | None = None
    spend_window: Window | None = None  # where a settled cost is added besides the all-time total

    @property
    def empty(self) -> bool:
        return not self.spend and self.rate is None


@dataclass(frozen=True, slots=True)
class Admission:
    allowed: bool
    denied_by: Quota | None = None
    rate_remaining: int = -1  # -1 when the key has no rate limit


def plan(key: Key, now: float) -> AdmissionPlan:
    spend: list[Quota] = []
    spend_window = None
    if key.cost_limit_micros > 0:
        spend.append(Quota("spend", key.cost_limit_micros))
    if key.cost_limit_unit and key.cost_limit_over_time_micros > 0:
        spend_window = window(key.cost_limit_unit, now)
        spend.append(Quota("spend_window", key.cost_limit_over_time_micros, spend_window))
    elif key.cost_limit_unit:
        spend_window = window(key.cost_limit_unit, now)
    rate = None
    if key.rate_limit_unit and key.rate_limit_over_time > 0:
        rate = Quota("rate", key.rate_limit_over_time, window(key.rate_limit_unit, now))
    return AdmissionPlan(tuple(spend), rate, spend_window)


def decide(plan: AdmissionPlan, spent: list[int], used: int) -> Admission:
    """Pure admission rule shared by every counter backend (the Redis Lua script mirrors it).

    `spent[i]` is the current value of `plan.spend[i]`; `used` the current rate count. A request
    is admitted while every spend is below its limit and the rate count is below its limit.
    """
    for quota, value in zip(plan.spend, spent, strict=True):
        if value >= quota.limit:
            return Admission(False, quota)
    if plan.rate is not None:
        if used >= plan.rate.limit:
            return Admission(False, plan.rate, 0)
        return Admission(True, None, plan.rate.limit - used - 1)
    return Admission(True)
