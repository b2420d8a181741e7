"""Limit windows, admission plans and the admission rule.

Windows are calendar-aligned in UTC, as in the reference: a limit "per minute" counts the
requests of 12:03:00-12:03:59, not of the last sixty seconds. Units: s, m, h, d for requests;
m, h, d, mo (or "total", all time) for spend and tokens. Everything here is pure: `now` is a unix
timestamp passed in.

A key's limits come from its single-window shorthand fields (the reference's `costLimitInUsd`,
`costLimitInUsdOverTime`/`Unit`, `rateLimitOverTime`/`Unit`) plus its further limits, its
per-model limits for the requested model, and the budgets of its tags. Each becomes a `Quota` on
a counter. Spend and tokens are *reserved* at admission: a call is admitted only if, for every
quota, what is counted plus what is reserved by calls in flight plus this call's estimate stays
within the limit; at the end the reservation is replaced by the actual amount.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bricksllm.domain.models import Key, Limit

RATE_UNITS = frozenset({"s", "m", "h", "d"})
COST_UNITS = frozenset({"m", "h", "d", "mo"})
TOKEN_UNITS = COST_UNITS
TOTAL = "total"
METRICS = ("requests", "cost", "tokens")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# Counters outlive their window by this much: requests that straddle the boundary and clock drift
# between instances and Redis must not find a window's counter already gone.
COUNTER_GRACE_SECONDS = 10
_COUNTER_NAME = {"requests": "rate", "cost": "spend", "tokens": "tokens"}


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
    """One limit to hold at admission, on one counter. `window` None means all time; `limit` 0
    means the counter is only kept (a key's all-time spend, for reporting), never checked."""

    metric: str  # "requests" | "cost" | "tokens"
    limit: int  # requests, micro-dollars or tokens
    owner: str  # whose counter: a key id, "<key id>:model:<model>" or "tag:<tag>"
    window: Window | None = None
    source: str = ""  # how the operator set it, for messages: "costLimits", "tag budget team-a", ...

    counter_id: str = field(init=False, compare=False, repr=False)  # computed once, read often

    def __post_init__(self) -> None:
        name = _COUNTER_NAME[self.metric]
        if self.metric == "cost" and self.window is not None:
            name = "spend_window"
        if self.window is None:
            counter_id = f"{self.owner}:{name}"
        else:
            counter_id = f"{self.owner}:{name}:{self.window.unit}:{self.window.start}"
        object.__setattr__(self, "counter_id", counter_id)

    @property
    def expires_at(self) -> int | None:
        return self.window.expires_at if self.window is not None else None

    @property
    def reserves(self) -> bool:
        """Spend and token quotas reserve an estimate while the call is in flight."""
        return self.metric != "requests" and self.limit > 0

    def retry_after(self, now: float) -> int:
        return max(1, int(self.window.end - now)) if self.window else 0


@dataclass(frozen=True, slots=True)
class AdmissionPlan:
    """Every quota a request must satisfy (checked in order; the first that refuses is named)."""

    quotas: tuple[Quota, ...] = ()

    @property
    def empty(self) -> bool:
        """No quota that can refuse: such a key's calls never wait for the counters."""
        return all(q.limit <= 0 for q in self.quotas)


@dataclass(frozen=True, slots=True)
class Admission:
    allowed: bool
    denied_by: Quota | None = None
    counted: tuple[int, ...] = ()  # per quota, before this call: what its counter holds
    reserved: tuple[int, ...] = ()  # ... and what calls in flight reserved on it

    def left(self, plan: AdmissionPlan, cost: int, tokens: int) -> list[int]:
        """Per quota, what is left for further calls (after this one, if it was admitted)."""
        mine = self.allowed
        return [
            q.limit - c - r - (amount(q, cost, tokens) if mine else 0)
            for q, c, r in zip(plan.quotas, self.counted, self.reserved, strict=True)
        ]


def amount(quota: Quota, cost: int, tokens: int) -> int:
    """What one call counts or reserves against `quota`."""
    return 1 if quota.metric == "requests" else cost if quota.metric == "cost" else tokens


def _sourced_limits(key: Key) -> list[tuple[Limit, str]]:
    out: list[tuple[Limit, str]] = []
    if key.cost_limit_micros > 0:
        out.append((Limit("cost", key.cost_limit_micros, TOTAL), "costLimitInUsd"))
    if key.cost_limit_unit and key.cost_limit_over_time_micros > 0:
        limit = Limit("cost", key.cost_limit_over_time_micros, key.cost_limit_unit)
        out.append((limit, "costLimitInUsdOverTime"))
    if key.rate_limit_unit and key.rate_limit_over_time > 0:
        out.append((Limit("requests", key.rate_limit_over_time, key.rate_limit_unit), "rateLimitOverTime"))
    return out + [(limit, _source(limit)) for limit in key.more_limits]


def key_limits(key: Key) -> tuple[Limit, ...]:
    """The key's own limits: its shorthand fields first, then the rest."""
    return tuple(limit for limit, _ in _sourced_limits(key))


def _quota(limit: Limit, owner: str, source: str, now: float) -> Quota:
    w = None if limit.unit == TOTAL else window(limit.unit, now)
    return Quota(limit.metric, limit.amount, owner, w, source)


def plan(
    key: Key, now: float, model: str = "", budgets: Mapping[str, Sequence[Limit]] | None = None
) -> AdmissionPlan:
    """The quotas of a call of `key` to `model`: the key's, the model's on that key, then the
    budgets of the key's tags. The key's all-time spend is always kept (limit 0 if it has none)."""
    quotas = [_quota(limit, key.key_id, source, now) for limit, source in _sourced_limits(key)]
    if not any(q.metric == "cost" and q.window is None for q in quotas):
        quotas.append(Quota("cost", 0, key.key_id))
    for limit in key.model_limits.get(model, ()) if model else ():
        quotas.append(_quota(limit, f"{key.key_id}:model:{model}", f"modelLimits[{model}]", now))
    for tag in key.tags if budgets else ():
        for limit in budgets.get(tag, ()):  # type: ignore[union-attr]
            quotas.append(_quota(limit, f"tag:{tag}", f"budget of tag {tag}", now))
    return AdmissionPlan(tuple(quotas))


def _source(limit: Limit) -> str:
    return {"requests": "rateLimits", "cost": "costLimits", "tokens": "tokenLimits"}[limit.metric]


def decide(
    plan: AdmissionPlan, counted: Sequence[int], reserved: Sequence[int], cost: int, tokens: int
) -> Admission:
    """Pure admission rule shared by every counter backend (the Redis Lua script mirrors it).

    `counted[i]` is what `plan.quotas[i]` has counted, `reserved[i]` what calls in flight reserved
    on it. A call is admitted when, for every quota with a limit, counted + reserved + this call's
    amount <= limit (one request; the estimated cost; the estimated tokens)."""
    for quota, c, r in zip(plan.quotas, counted, reserved, strict=True):
        if quota.limit > 0 and c + r + amount(quota, cost, tokens) > quota.limit:
            return Admission(False, quota, tuple(counted), tuple(reserved))
    return Admission(True, None, tuple(counted), tuple(reserved))


@dataclass(frozen=True, slots=True)
class Reservation:
    """An admission's claim on its plan's counters, until it is settled or `lease_until`
    (unix seconds) passes: a process that dies mid-call cannot hold a key's budget for ever.
    `counted` False: admitted while the counters were unreachable (fail-open), so settling it
    also counts its request."""

    id: str
    plan: AdmissionPlan
    cost: int  # micro-dollars reserved on each spend quota
    tokens: int  # tokens reserved on each token quota
    lease_until: int
    counted: bool = True
