"""What is kept of one proxied request once it is over: its event, and an `Outcome` handed to
every observer (metrics, the request log line). Called exactly once per client request,
admitted or refused."""

from __future__ import annotations

import itertools
import secrets
import time
from dataclasses import dataclass
from typing import Protocol

from bricksllm.domain.models import Event, Key, Usage
from bricksllm.ports import Metrics
from bricksllm.providers.base import Provider, RequestView
from bricksllm.services.proxy_trace import Trace, reason

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
    reason: str = ""  # why it was refused or failed (`proxy_trace.reason`); "" when answered
    route: str = ""  # the endpoint pattern, e.g. /api/providers/openai/v1/chat/completions
    upstream_ms: float | None = None  # from sending upstream to the end of its answer; None: not sent
    ttfb_ms: float | None = None  # streams: from sending upstream to the answer's first byte
    overhead_ms: float | None = None  # the gateway's own time: total latency minus upstream_ms


class Observer(Protocol):
    def observe(self, outcome: Outcome) -> None:
        """Called once per client request on the event loop; must not block or raise."""
        ...


class Recorder:
    def __init__(
        self,
        events: EventSink,
        metrics: Metrics,
        observers: tuple[Observer, ...] = (),
        capture_limit: int = 64 * 1024,
    ) -> None:
        self._events = events
        self._metrics = metrics
        self._observers = observers
        self.capture_limit = capture_limit  # bytes of a body kept for keys that capture them
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
        trace: Trace | None = None,
    ) -> None:
        stored = key is not None or self._anonymous.take(time.monotonic())
        if not stored and not self._observers:
            self._metrics.incr("events.anonymous_not_recorded")
            return
        usage = usage or Usage()
        trace = trace or Trace("")
        ended = time.perf_counter()
        request_body = response_body = ""
        if key is not None and key.should_log_request and view is not None and view.action != "blocked":
            request_body = _text(view.body[: self.capture_limit])
        if trace.relayed:
            response_body = _text(trace.relayed)
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
            latency_in_ms=int((ended - started) * 1000),
            custom_id=custom_id[:MAX_EVENT_TEXT],
            action=view.action if view else "",
            pii_entities=view.findings if view else (),
            correlation_id=trace.correlation_id,
            request_body=request_body,
            response_body=response_body,
        )
        if stored:
            self._events.record(event)
        else:
            self._metrics.incr("events.anonymous_not_recorded")
        if self._observers:
            outcome = _outcome(event, stored, trace, started, ended, view is not None and view.stream)
            for observer in self._observers:
                observer.observe(outcome)


def _text(body: bytes | bytearray) -> str:
    """A captured body as text (JSON, SSE and form fields are text; other bytes are replaced)."""
    return bytes(body).decode("utf-8", "replace")


def _outcome(event: Event, stored: bool, trace: Trace, started: float, ended: float, stream: bool) -> Outcome:
    total_ms = (ended - started) * 1000
    upstream_ms = ttfb_ms = None
    if trace.forwarded_at:
        upstream_ms = (ended - trace.forwarded_at) * 1000
        if stream and trace.answered_at:
            ttfb_ms = (trace.answered_at - trace.forwarded_at) * 1000
    return Outcome(
        event,
        stored,
        reason=reason(trace.error) if trace.error is not None else "",
        route=trace.route,
        upstream_ms=upstream_ms,
        ttfb_ms=ttfb_ms,
        overhead_ms=total_ms - upstream_ms if upstream_ms is not None else total_ms,
    )


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
