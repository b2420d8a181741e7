"""One admitted route call (`services.routes`), from the cache to the answering step.

`Run` looks the request up in the cache, then tries the usable steps in order: an upstream the
breaker holds open is skipped; each attempt either yields an answer (relayed, metered, priced
and settled by the proxy's own stages, and stored in the cache when it is a 200) or a `Failure`,
retried after the step's interval (or the upstream's Retry-After, within the bound) and then
given up for the next step. When nothing answered, the last failure is the reply.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from bricksllm.domain.models import Key
from bricksllm.domain.routes import Route, RouteMark, RouteStep, cache_key, retry_delay, rewrite
from bricksllm.errors import BricksError, Unavailable
from bricksllm.ports import UpstreamResponse
from bricksllm.providers.base import Metered, RequestView, openai_error_body
from bricksllm.services.exchange import Inbound, Reply
from bricksllm.services.limits import Admitted
from bricksllm.services.proxy import Call, Target
from bricksllm.services.proxy_record import Timing
from bricksllm.services.proxy_trace import Trace
from bricksllm.services.route_answers import CachedAnswer, replay, tee

if TYPE_CHECKING:
    from bricksllm.services.routes import RouteService

DEFAULT_CACHE_TTL = 3600.0
MAX_CACHED_ANSWER = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed attempt: an upstream's retryable answer, or a transport failure (no body)."""

    status: int
    body: bytes = b""
    message: str = ""
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class Planned:
    """A step and where it goes for this key (None: the key has no setting for it)."""

    index: int
    step: RouteStep
    target: Target | None


class Run:
    """One admitted route call, from the cache to the answering step."""

    def __init__(
        self,
        service: RouteService,
        inbound: Inbound,
        route: Route,
        key: Key,
        plan: list[Planned],
        client: Mapping[str, Any],
        view: RequestView,
        admitted: Admitted,
        path: str,
        custom_id: str,
        created_at: int,
        timing: Timing,
        trace: Trace,
    ) -> None:
        self.s = service
        self.inbound = inbound
        self.route = route
        self.key = key
        self.plan = plan
        self.client = client
        self.view = view
        self.admitted = admitted
        self.path = path
        self.custom_id = custom_id
        self.created_at = created_at
        self.timing = timing
        self.trace = trace
        self.attempts = 0

    def call(self, planned: Planned, view: RequestView | None = None, *, cached: bool = False) -> Call:
        """The proxy's `Call` of a step (its view built unless given), marked for the event."""
        assert planned.target is not None
        view = view or self.s.step_view(self.client, planned.step, planned.target, self.view)
        mark = RouteMark(self.route.id, planned.index, self.attempts, cached)
        return Call(
            self.key, planned.target, view, self.admitted, "POST", self.path, self.custom_id,
            self.created_at, self.timing, self.trace, mark,
        )  # fmt: skip

    async def serve(self, operation: str) -> Reply:
        usable = [p for p in self.plan if p.target is not None]
        cache_id = ""
        if self.route.cache_enabled:
            first = usable[0]
            body = rewrite(self.client, first.step)
            scope = f"{self.route.updated_at}|{self.key.policy_id}"
            cache_id = cache_key(self.route.id, operation, scope, body)
            hit = await self.s.cached(cache_id)
            if hit is not None:
                return await self._hit(hit, usable)
        reply = await self._steps(usable, cache_id)
        if self.route.cache_enabled:
            reply = dataclasses.replace(reply, headers=[*reply.headers, ("x-cache", "miss")])
        return reply

    async def _hit(self, hit: CachedAnswer, usable: list[Planned]) -> Reply:
        planned = next((p for p in usable if p.index == hit.step), usable[0])
        call = self.call(planned, cached=True)
        await self.s.proxy.finish(call, 200, Metered(), billable=False)
        headers = [("Content-Type", hit.content_type), ("x-cache", "hit"), *self.admitted.rate_headers()]
        if hit.streamed:
            return Reply(200, headers, stream=replay(hit.body))
        return Reply(200, headers, hit.body)

    async def _steps(self, usable: list[Planned], cache_id: str) -> Reply:
        last: Failure | None = None
        tried = usable[0]
        strategy = self.route.retry_strategy
        for planned in usable:
            step, target = planned.step, planned.target
            assert target is not None
            upstream_id = f"{step.provider}|{target.setting.id}|{step.model}"
            if not await self.s.allowed(upstream_id):
                self.s.metrics.incr("routes.step_skipped")
                continue
            tried = planned
            view = self.s.step_view(self.client, step, target, self.view)
            request = self.s.request(self.inbound, target, view, step)
            for retry in range(step.retries + 1):
                self.attempts += 1
                outcome = await self.s.attempt(request, view.stream, self.s.timeout(step))
                if not isinstance(outcome, Failure):
                    await self.s.outcome(upstream_id, True)
                    return await self._answer(self.call(planned, view), outcome, cache_id)
                last = outcome
                await self.s.outcome(upstream_id, False)
                if retry == step.retries:
                    break
                wait = retry_delay(strategy, step.retry_interval_seconds, retry + 1)
                if outcome.retry_after is not None:
                    if outcome.retry_after > self.s.retry_after_max:
                        break  # the upstream will not be ready in time: the next step
                    wait = max(wait, outcome.retry_after)
                if wait > 0:
                    await self.s.sleep(wait)
        return await self._failed(tried, last)

    async def _answer(self, call: Call, response: UpstreamResponse, cache_id: str) -> Reply:
        reply = await self.s.proxy.answer(call, response)
        if not cache_id or reply.status != 200:
            return reply
        content_type = next((v for k, v in reply.headers if k.lower() == "content-type"), "")
        ttl = self.route.cache_ttl_seconds or DEFAULT_CACHE_TTL
        step = call.route_mark.step if call.route_mark is not None else 0

        async def store(body: bytes) -> None:
            await self.s.store(cache_id, CachedAnswer(step, content_type, body), ttl)

        if reply.stream is None:
            if len(reply.body) <= MAX_CACHED_ANSWER:
                await store(reply.body)
            return reply
        return dataclasses.replace(reply, stream=tee(reply.stream, MAX_CACHED_ANSWER, store))

    async def _failed(self, tried: Planned, last: Failure | None) -> Reply:
        """Every step failed (or was cooling down): the last upstream error, in OpenAI's shape."""
        call = self.call(tried)
        if last is None:
            exc: BricksError = Unavailable(
                "[BricksLLM] every upstream of this route is cooling down after failures"
            )
            status, body = exc.status, openai_error_body(exc.status, exc.message, "upstream_unavailable")
        else:
            status = last.status
            body = (
                last.body
                if _openai_error(last.body)
                else openai_error_body(
                    status, last.message or f"[BricksLLM] the provider answered {status}", "upstream_error"
                )
            )
        self.s.metrics.incr("routes.all_steps_failed")
        await self.s.proxy.finish(call, status, Metered(), billable=False)
        headers = [("Content-Type", "application/json"), *self.admitted.rate_headers()]
        if last is not None and last.retry_after is not None:  # the upstream's advice, passed on
            headers.append(("Retry-After", str(math.ceil(last.retry_after))))
        return Reply(status, headers, body)


def _openai_error(body: bytes) -> bool:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(parsed, dict) and isinstance(parsed.get("error"), dict)
