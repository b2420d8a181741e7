"""Limits around one proxied call: reserve before forwarding, settle after.

The rule is the domain's (`domain.limits.plan` / `decide`); the counters are a port (in-process
or Redis). At admission the call's cost and tokens are estimated (`services.spend_estimate`:
bounded by the body's size, counted exactly only when that bound is refused) and reserved
atomically with the check; at every end of the call (answer, stream end, error,
client gone, timeout) `settle` replaces the reservation by what was used. A reservation lives
for the call's timeout plus a grace (`LIMITS_RESERVATION_GRACE`), so a process that dies cannot
hold a budget for ever.

Whether a counter-store outage refuses the call (fail-closed, the default) or lets it through
(fail-open) is decided here, and counted either way; a fail-open admission is settled like any
other, counting its request then. Settlements that cannot reach the counters wait in a bounded
backlog (`services.settle_backlog`) until they can. Keys with no limits never wait for the
counters: their spend (kept for reporting) goes through that backlog.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bricksllm.domain.limits import Admission, AdmissionPlan, Quota, Reservation, plan
from bricksllm.domain.models import Key, Limit
from bricksllm.errors import LimitExceeded, Unavailable
from bricksllm.ports import Counters, Metrics
from bricksllm.providers.base import RequestView
from bricksllm.services.limit_headers import quota_headers, tightest_headers
from bricksllm.services.settle_backlog import SettleBacklog
from bricksllm.services.spend_estimate import Estimator

if TYPE_CHECKING:
    from bricksllm.services.proxy import Target

log = logging.getLogger(__name__)
_UNIT = {"s": "second", "m": "minute", "h": "hour", "d": "day", "mo": "month"}
Budgets = Callable[[], Mapping[str, Sequence[Limit]]]  # tag -> its budget's limits


def _no_budgets() -> Mapping[str, Sequence[Limit]]:
    return {}


@dataclass(frozen=True, slots=True)
class Admitted:
    """A call let through, with what it must be settled against."""

    reservation: Reservation
    headers: tuple[tuple[str, str], ...] = field(default=())  # x-ratelimit-* for the answer
    deferred: bool = False  # no limits: settle off the hot path

    def rate_headers(self) -> list[tuple[str, str]]:
        return list(self.headers)


class Limits:
    def __init__(
        self,
        counters: Counters,
        metrics: Metrics,
        *,
        fail_open: bool,
        clock: Callable[[], float],
        estimator: Estimator | None = None,
        lease: float = 660.0,
        grace: float = 60.0,
        backlog: int = 100_000,
        budgets: Budgets = _no_budgets,
        defer_unlimited: bool = False,
    ) -> None:
        self._counters = counters
        self._metrics = metrics
        self._fail_open = fail_open
        self._clock = clock
        self._estimator = estimator or Estimator()
        self._lease = lease
        self._grace = grace
        self._budgets = budgets
        self._defer_unlimited = defer_unlimited  # remote counters: keep them off unlimited keys' path
        self.backlog = SettleBacklog(counters, metrics, capacity=backlog)
        self._ids = itertools.count()  # reservation ids: this process's random prefix + a count
        self._id_prefix = os.urandom(8).hex()
        self.fail_open_admissions = 0  # admitted uncounted while the counters were unreachable

    async def admit(
        self, key: Key, target: Target, view: RequestView, *, seconds: float | None = None
    ) -> Admitted:
        """Raises LimitExceeded (429) when a limit would be passed, Unavailable (503) when the
        counters cannot be reached in fail-closed mode."""
        now = self._clock()
        p = plan(key, now, view.model, self._budgets())
        lease = int(now + (seconds + self._grace if seconds is not None else self._lease)) + 1
        if p.empty:
            return Admitted(Reservation(self._new_id(), p, 0, 0, lease), deferred=True)
        cost, tokens = self._estimator.estimate(target.kind, target.pricing, view)
        reservation = Reservation(self._new_id(), p, cost, tokens, lease)
        admission = await self._admit_counted(reservation)
        if admission is not None and self._bound_refused(admission, view):  # judge the exact count
            await self._estimator.load(view)
            cost, tokens = self._estimator.estimate(target.kind, target.pricing, view, exact=True)
            reservation = Reservation(reservation.id, p, cost, tokens, lease)
            admission = await self._admit_counted(reservation)
        if admission is None:  # the counters are unreachable and the gateway fails open
            return Admitted(Reservation(reservation.id, p, cost, tokens, lease, counted=False))
        left = admission.left(p, cost, tokens)
        if admission.denied_by is not None:
            self._metrics.incr("proxy.denied", tags={"kind": admission.denied_by.metric})
            raise limit_error(admission, p, reservation, now)
        return Admitted(reservation, tuple(tightest_headers(p.quotas, left, now)))

    def _bound_refused(self, admission: Admission, view: RequestView) -> bool:
        """A spend or token limit refused the estimate made from the body's size, and counting
        the body's tokens could lower it."""
        denied = admission.denied_by
        return denied is not None and denied.metric != "requests" and self._estimator.refinable(view)

    async def _admit_counted(self, reservation: Reservation) -> Admission | None:
        """The counters' admission; None when they are unreachable and the gateway fails open."""
        try:
            return await self._counters.admit(reservation)
        except Unavailable:
            self._metrics.incr("counters.unavailable")
            if self._fail_open:
                self.fail_open_admissions += 1
                self._metrics.incr("limits.fail_open_admissions")
                return None
            raise Unavailable("[BricksLLM] limits cannot be checked right now; try again shortly") from None

    def _new_id(self) -> str:
        return f"{self._id_prefix}{next(self._ids):x}"

    async def settle(self, admitted: Admitted, micros: int, tokens: int) -> None:
        """Replace the call's reservation by what it used (never raises: the call is over).
        Settlements that cannot reach the counters are kept and applied when they can."""
        reservation = admitted.reservation
        if (
            micros <= 0
            and tokens <= 0
            and not (reservation.cost or reservation.tokens)
            and reservation.counted
        ):
            return  # nothing was reserved nor used (an unpriced call): nothing to settle
        if admitted.deferred and (micros <= 0 or self._defer_unlimited):
            if micros > 0:
                self.backlog.add(reservation, micros, tokens)
            return
        try:
            await self._counters.settle(reservation, micros, tokens)
        except Unavailable:
            self._metrics.incr("counters.settle_deferred")
            self.backlog.add(reservation, micros, tokens)
        except Exception:
            self._metrics.incr("counters.settle_error")
            log.warning("could not settle a call of key %s", _key_of(reservation), exc_info=True)

    async def close(self) -> None:
        await self.backlog.close()


def _key_of(reservation: Reservation) -> str:
    return next((q.owner for q in reservation.plan.quotas if ":" not in q.owner), "")


class LimitRefusal(LimitExceeded):
    """A limit refusal that also carries the x-ratelimit-* headers of the limit that refused."""

    def __init__(self, message: str, *, code: str, retry_after: int, admitted: Admitted) -> None:
        super().__init__(message, code=code, retry_after=retry_after)
        self.admitted = admitted  # not admitted: carries the refusal's headers


def _usd(micros: int) -> str:
    return f"${micros / 1e6:.6f}".rstrip("0").rstrip(".")


def limit_error(admission: Admission, p: AdmissionPlan, reservation: Reservation, now: float) -> LimitRefusal:
    """A refusal that names the limit that was reached (never the key). A spend refusal says
    how much is spent, reserved by calls in flight, and left."""
    quota = admission.denied_by
    assert quota is not None
    i = p.quotas.index(quota)
    counted, reserved = admission.counted[i], admission.reserved[i]
    left = quota.limit - counted - reserved
    per = f" per {_UNIT[quota.window.unit]}" if quota.window else ""
    retry_after = quota.retry_after(now)
    if quota.window is None and counted < quota.limit and reserved:
        retry_after = 1  # calls in flight hold the rest; they end (or their reservations expire)
    if quota.metric == "requests":
        message = f"[BricksLLM] too many requests: rate limit of {quota.limit}{per} reached ({quota.source})"
        code = "rate_limit_exceeded"
    elif quota.metric == "tokens":
        message = (
            f"[BricksLLM] token limit of {quota.limit}{per} reached ({quota.source}): {counted} used, "
            f"{reserved} reserved by calls in flight, {max(left, 0)} left; "
            f"this call may use {reservation.tokens}"
        )
        code = "token_limit_exceeded"
    else:
        message = (
            f"[BricksLLM] spend limit of {_usd(quota.limit)}{per} reached ({quota.source}): "
            f"spent {_usd(counted)}, reserved {_usd(reserved)} by calls in flight, "
            f"{_usd(max(left, 0))} left; "
            f"this call may cost up to {_usd(reservation.cost)}"
        )
        code = "cost_limit_exceeded"
    headers = quota_headers(quota, left, now)
    others = tightest_headers(p.quotas, admission.left(p, 0, 0), now)
    named = {name for name, _ in headers}
    headers += [(n, v) for n, v in others if n not in named]
    return LimitRefusal(
        message, code=code, retry_after=retry_after, admitted=Admitted(reservation, tuple(headers))
    )


__all__ = ["Admitted", "LimitRefusal", "Limits", "Quota", "limit_error"]
