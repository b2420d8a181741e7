"""What is kept of one proxied request once it is over: its event, and an `Outcome` handed to
every observer (metrics, the request log line). Called exactly once per client request,
admitted or refused."""

from __future__ import annotations

import dataclasses
import itertools
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from bricksllm.domain.models import Event, Key, Usage
from bricksllm.domain.routes import RouteMark
from bricksllm.ports import Metrics
from bricksllm.providers.base import Provider, RequestView
from bricksllm.services.exchange import Inbound, Reply
from bricksllm.services.proxy_trace import Trace, correlation_id

# What an event keeps of request-derived text (a client controls it; events are kept for good).
MAX_EVENT_PATH, MAX_EVENT_TEXT = 1024, 256
# Refusals of callers without a valid key are recorded up to this many per second (burst: twice
# that); a flood of them is counted in a metric instead of filling the database.
ANONYMOUS_EVENTS_PER_SECOND = 50.0


class EventSink(Protocol):
    def record(self, event: Event) -> None:
        """Queue an event; never blocks, never does I/O (`EventWriter`)."""
        ...


OVERHEAD_HEADER = "x-bricksllm-overhead-ms"


@dataclass(slots=True)
class Timing:
    """When the stages of one request happened (`time.perf_counter()` seconds, 0.0: not yet),
    filled in by the proxy as they happen."""

    started: float
    sent: float = 0.0  # the request is about to be sent to the provider
    answered: float = 0.0  # the provider's status and headers arrived
    done: float = 0.0  # the provider's answer was read to the end (or broke off)
    replied: float = 0.0  # a streamed reply's headers were handed to the server
    first_byte: float = 0.0  # a streamed reply's first body chunk was handed to the server

    def upstream(self, now: float) -> float:
        """Seconds spent waiting on the provider so far (0 when it was never called)."""
        if not self.sent:
            return 0.0
        return (self.done or self.answered or now) - self.sent

    def overhead_ms(self, now: float) -> float:
        """The gateway's own time: total minus upstream; a stream's up to its reply's headers."""
        if self.replied and self.sent:
            return (self.replied - self.started - (self.answered - self.sent)) * 1000
        return max(0.0, (now - self.started - self.upstream(now)) * 1000)

    def overhead_header(self) -> tuple[str, str]:
        return OVERHEAD_HEADER, f"{self.overhead_ms(time.perf_counter()):.3f}"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One finished client request as observers see it: its event (stored or not: a flood of
    anonymous refusals is not) and what the event does not keep. Times in milliseconds."""

    event: Event
    stored: bool  # False when the event was not recorded (anonymous refusals over their rate)
    reason: str = ""  # why the gateway answered itself (`BricksError.reason`); "" when it forwarded
    route: str = ""  # the endpoint pattern, never the raw path; "" when no route matched
    upstream_ms: float | None = None  # None: the provider was not called
    ttfb_ms: float | None = None  # streamed replies: arrival to the first body byte relayed
    overhead_ms: float = 0.0  # the gateway's own time (the x-bricksllm-overhead-ms header)


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
        timing: Timing,
        key: Key | None,
        provider: Provider | None,
        view: RequestView | None,
        status: int,
        usage: Usage | None = None,
        micros: int = 0,
        *,
        reason: str = "",
        route: str = "",
        route_mark: RouteMark | None = None,
        trace: Trace | None = None,
    ) -> None:
        now = time.perf_counter()
        stored = key is not None or self._anonymous.take(time.monotonic())
        if not stored and not self._observers:
            self._metrics.incr("events.anonymous_not_recorded")
            return
        usage = usage or Usage()
        trace = trace or Trace("")
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
            latency_in_ms=int((now - timing.started) * 1000),
            custom_id=custom_id[:MAX_EVENT_TEXT],
            action=view.action if view else "",
            pii_entities=view.findings if view else (),
            correlation_id=trace.correlation_id,
            request_body=request_body,
            response_body=response_body,
        )
        if route_mark is not None:  # a call through a route (services.routes)
            event = dataclasses.replace(
                event,
                route_id=route_mark.route_id,
                route_step=route_mark.step,
                attempts=route_mark.attempts,
                cached=route_mark.cached,
            )
        if stored:
            self._events.record(event)
        else:
            self._metrics.incr("events.anonymous_not_recorded")
        if self._observers:
            upstream = timing.upstream(now) * 1000 if timing.sent else None
            ttfb = (timing.first_byte - timing.started) * 1000 if timing.first_byte else None
            outcome = Outcome(event, stored, reason, route, upstream, ttfb, timing.overhead_ms(now))
            for observer in self._observers:
                observer.observe(outcome)


def _text(body: bytes | bytearray) -> str:
    """A captured body as text (JSON, SSE and form fields are text; other bytes are replaced)."""
    return bytes(body).decode("utf-8", "replace")


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


Traced = Callable[[Inbound, Timing, Trace], Awaitable[Reply]]


async def traced(inbound: Inbound, capture_limit: int, handle: Traced) -> Reply:
    """Run `handle` with the request's Timing and Trace, and give its reply the overhead and
    correlation-id headers (a stream's overhead runs up to its reply's headers)."""
    timing = Timing(time.perf_counter())
    trace = Trace(correlation_id(inbound.headers), capture_limit)
    reply = await handle(inbound, timing, trace)
    if reply.stream is not None:
        timing.replied = time.perf_counter()
    reply.headers.extend((timing.overhead_header(), trace.header()))
    return reply
