"""What is kept of one proxied request once it is over: its event, and an `Outcome` handed to
every observer (metrics, the request log line). Called exactly once per client request,
admitted or refused."""

from __future__ import annotations

import dataclasses
import itertools
import secrets
import time
from dataclasses import dataclass
from typing import Protocol

from bricksllm.domain.models import Event, Key, Usage
from bricksllm.domain.routes import RouteMark
from bricksllm.ports import Metrics
from bricksllm.providers.base import Provider, RequestView

# What an event keeps of request-derived text (a client controls it; events are kept for good).
MAX_EVENT_PATH, MAX_EVENT_TEXT = 1024, 256
# Refusals of callers without a valid key are recorded up to this many per second (burst: twice
# that); a flood of them is counted in a metric instead of filling the database.
ANONYMOUS_EVENTS_PER_SECOND = 50.0


class EventSink(Protocol):
    def record(self, event: Event) -> None:
        """Queue an event; never blocks, never does I/O (`EventWriter`)."""
        ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """One finished client request as observers see it: its event (stored or not: a flood of
    anonymous refusals is not) and what the event does not keep."""

    event: Event
    stored: bool  # False when the event was not recorded (anonymous refusals over their rate)


class Observer(Protocol):
    def observe(self, outcome: Outcome) -> None:
        """Called once per client request on the event loop; must not block or raise."""
        ...


class Recorder:
    def __init__(self, events: EventSink, metrics: Metrics, observers: tuple[Observer, ...] = ()) -> None:
        self._events = events
        self._metrics = metrics
        self._observers = observers
        # Event ids: a random per-process prefix and a counter (uuid4 cost ~5 % of a request).
        self._event_prefix = secrets.token_hex(8)
        self._event_seq = itertools.count(1)
        self._anonymous = TokenBucket(ANONYMOUS_EVENTS_PER_SECOND, 2 * ANONYMOUS_EVENTS_PER_SECOND)

    def record(
        self,
        method: str,
        path: str,
        custom_id: str,
        created_at: int,
        started: float,
        key: Key | None,
        provider: Provider | None,
        view: RequestView | None,
        status: int,
        usage: Usage | None = None,
        micros: int = 0,
        *,
        route: RouteMark | None = None,
    ) -> None:
        stored = key is not None or self._anonymous.take(time.monotonic())
        if not stored and not self._observers:
            self._metrics.incr("events.anonymous_not_recorded")
            return
        usage = usage or Usage()
        event = Event(
            id=f"{self._event_prefix}-{next(self._event_seq):x}",
            created_at=created_at,
            key_id=key.key_id if key else "",
            tags=key.tags if key else (),
            provider=provider.name if provider else "",
            model=view.model[:MAX_EVENT_TEXT] if view else "",
            status=status,
            path=path[:MAX_EVENT_PATH],
            method=method,
            cost_micros=micros,
            prompt_token_count=usage.prompt_tokens,
            completion_token_count=usage.completion_tokens,
            latency_in_ms=int((time.perf_counter() - started) * 1000),
            custom_id=custom_id[:MAX_EVENT_TEXT],
            action=view.action if view else "",
            pii_entities=view.findings if view else (),
        )
        if route is not None:
            event = dataclasses.replace(
                event,
                route_id=route.route_id,
                route_step=route.step,
                attempts=route.attempts,
                cached=route.cached,
            )
        if stored:
            self._events.record(event)
        else:
            self._metrics.incr("events.anonymous_not_recorded")
        if self._observers:
            outcome = Outcome(event, stored)
            for observer in self._observers:
                observer.observe(outcome)


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up."""

    def __init__(self, rate: float, burst: float) -> None:
        self._rate, self._burst = rate, burst
        self._tokens, self._at = burst, 0.0

    def take(self, now: float) -> bool:
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True
