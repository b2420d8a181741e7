"""Serving a route: `POST /api/routes{path}` with an OpenAI-format body (chat completions or
embeddings, streamed or not), tried step by step until one answers.

    route -> key (and the route's keyIds) -> body -> steps' targets -> transforms (PII)
    -> admit limits (once) -> cache -> for each step not cooling down: attempts with retries
    -> the answering step relayed, metered, priced and settled once by the proxy's own stages

A step's attempt fails over on a transport failure, a timeout or 429/500/502/503/504 (waiting
`retryInterval`, constant or doubling, or an upstream `Retry-After` up to ROUTE_RETRY_AFTER_MAX;
one longer than that moves to the next step at once). Any other answer is the answer: a 4xx is
the client's fault and returned as is. A stream commits once its first byte is in hand, so it
fails over only before anything reached the client. When every step fails the client gets the
last upstream error (or 502/504) in OpenAI's shape. One event per client request, with the
route, the step that answered and the attempts made; the key is charged only for the answer.

The SDKs build URLs as `base_url + "/chat/completions"`: a route is also served at its path
followed by `/chat/completions` or `/embeddings`, which also names the operation.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from bricksllm.domain.models import Key
from bricksllm.domain.routes import (
    CHAT,
    PREFIX,
    RETRYABLE,
    Route,
    RouteMark,
    RouteStep,
    cache_key,
    operation_of,
    retry_after,
    retry_delay,
    rewrite,
    split_path,
)
from bricksllm.domain.text import PathRefused, canonical_path
from bricksllm.errors import (
    BricksError,
    Forbidden,
    Invalid,
    NotFound,
    PolicyBlocked,
    Unavailable,
    UpstreamError,
)
from bricksllm.ports import Breaker, Metrics, ResponseCache, Upstream, UpstreamRequest, UpstreamResponse
from bricksllm.providers.base import Metered, RequestView, openai_error_body
from bricksllm.providers.registry import BUILTIN_PREFIX, ProviderRegistry
from bricksllm.services.exchange import Inbound, Reply
from bricksllm.services.limits import Admitted, LimitRefusal, Limits
from bricksllm.services.proxy import Call, ConfigSource, ProxyService, RequestTransform, Target, _json_object
from bricksllm.services.proxy_headers import upstream_headers
from bricksllm.services.route_answers import Buffered, CachedAnswer, Primed, replay, tee

log = logging.getLogger(__name__)
AZURE_API_VERSION = "2024-10-21"  # when the Azure setting names no apiVersion
ERROR_BODY_LIMIT = 64 * 1024  # of a failed attempt's answer, kept as the last error
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


class RouteService:
    def __init__(
        self,
        proxy: ProxyService,
        config: ConfigSource,
        limits: Limits,
        registry: ProviderRegistry,
        upstream: Upstream,
        breaker: Breaker,
        cache: ResponseCache,
        metrics: Metrics,
        *,
        default_timeout: float = 600.0,
        max_body: int = 64 * 1024 * 1024,
        transforms: Sequence[RequestTransform] = (),
        retry_after_max: float = 30.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.proxy = proxy
        self._config = config
        self._limits = limits
        self._registry = registry
        self._upstream = upstream
        self._breaker = breaker
        self._cache = cache
        self.metrics = metrics
        self._default_timeout = default_timeout
        self._max_body = max_body
        self._transforms = transforms
        self.retry_after_max = retry_after_max
        self._clock = clock
        self.sleep = sleep

    async def handle(self, inbound: Inbound) -> Reply:
        started = time.perf_counter()
        created_at = int(self._clock())
        custom_id = inbound.headers.get("X-CUSTOM-EVENT-ID", "")
        path = inbound.path
        route: Route | None = None
        key: Key | None = None
        first: Target | None = None
        view: RequestView | None = None
        admitted: Admitted | None = None
        try:
            path = self._path(inbound.path)
            route, operation = self._route(path)
            if inbound.method != "POST":
                raise Invalid("[BricksLLM] a route is called with POST")
            key = self.proxy.authenticate(inbound.headers, created_at)
            if key.key_id not in route.key_ids:
                raise Forbidden("[BricksLLM] this key may not call this route")
            body = await inbound.body.read(self._max_body)
            parsed = _json_object(body)
            operation = operation or operation_of(parsed)
            plan = self._plan(key, route, operation)
            first = next((p.target for p in plan if p.target is not None), None)
            if first is None:
                raise Forbidden("[BricksLLM] the key has no provider setting for any step of this route")
            view = RequestView(body, parsed, str(parsed.get("model", "")), parsed.get("stream") is True)
            for transform in self._transforms:
                view = await transform(key, first, view)
            client = parsed if view.body is body else _json_object(view.body)
            admitted = await self._limits.admit(key)
        except BricksError as exc:
            if isinstance(exc, LimitRefusal):
                admitted = exc.admitted
            if isinstance(exc, PolicyBlocked) and view is not None:
                view = dataclasses.replace(view, action="blocked", findings=exc.findings)
            mark = RouteMark(route.id) if route is not None else None
            self.proxy.recorder.record(
                inbound.method, path, custom_id, created_at, started, key,
                first.provider if first else None, view, exc.status, route=mark,
            )  # fmt: skip
            return self.proxy.error_reply(None, exc, admitted)
        run = Run(
            self, inbound, route, key, plan, client, view, admitted, path, custom_id, created_at, started
        )
        return await run.serve(operation)

    @staticmethod
    def _path(raw: str) -> str:
        try:
            return canonical_path(raw)
        except PathRefused as exc:
            raise Invalid(f"[BricksLLM] invalid request path: {exc}") from None

    def _route(self, path: str) -> tuple[Route, str]:
        found = split_path(path.removeprefix(PREFIX), self._config.current.routes_by_path)
        if found is None:
            raise NotFound("[BricksLLM] route not found")
        return found

    def _plan(self, key: Key, route: Route, operation: str) -> list[Planned]:
        index = self._config.current
        plan = []
        for i, step in enumerate(route.steps):
            if step.setting_id:
                setting = index.settings.get(step.setting_id)
            else:
                found = (index.settings.get(s) for s in key.all_setting_ids)
                setting = next((s for s in found if s is not None and s.provider == step.provider), None)
            target = None
            if setting is not None and setting.provider == step.provider and setting.allows_model(step.model):
                if step.provider == "azure":
                    suffix = "chat/completions" if operation == CHAT else "embeddings"
                    relative = f"/azure/openai/deployments/{step.model}/{suffix}"
                else:
                    relative = f"/{step.provider}/v1/" + (
                        "chat/completions" if operation == CHAT else "embeddings"
                    )
                resolved = self._registry.resolve("POST", BUILTIN_PREFIX + relative, {})
                if resolved is not None:
                    target = Target(resolved[0], resolved[1], setting)
            plan.append(Planned(i, step, target))
        return plan

    # --- what `Run` needs ------------------------------------------------------------------------

    async def allowed(self, upstream: str) -> bool:
        try:
            return await self._breaker.allow(upstream)
        except Unavailable:  # fail open: a breaker outage must not stop calls
            self.metrics.incr("routes.breaker_unavailable")
            return True

    async def outcome(self, upstream: str, ok: bool) -> None:
        try:
            await self._breaker.record(upstream, ok)
        except Unavailable:
            self.metrics.incr("routes.breaker_unavailable")

    async def cached(self, key: str) -> CachedAnswer | None:
        try:
            value = await self._cache.get(key)
        except Unavailable:
            self.metrics.incr("routes.cache_unavailable")
            return None
        return CachedAnswer.decode(value) if value is not None else None

    async def store(self, key: str, answer: CachedAnswer, ttl: float) -> None:
        try:
            await self._cache.put(key, answer.encode(), ttl)
        except Unavailable:
            self.metrics.incr("routes.cache_unavailable")

    async def attempt(self, request: UpstreamRequest, stream: bool) -> UpstreamResponse | Failure:
        """One upstream request: the answer to relay, or why it failed (nothing reached the client)."""
        try:
            response = await self._upstream.send(request)
        except UpstreamError as exc:
            return Failure(exc.status, message=exc.message)
        if response.status in RETRYABLE:
            try:
                body = await response.read(ERROR_BODY_LIMIT)
            except UpstreamError:
                body = b""
            finally:
                await response.aclose()
            wait = retry_after(response.headers.get("Retry-After", ""), self._clock())
            return Failure(response.status, body, retry_after=wait)
        if not 200 <= response.status < 300:
            return response  # the client's fault (or a redirect): answered as is, no failover
        try:
            if stream:
                chunks = response.chunks()
                first = b""
                while not first:
                    first = await anext(chunks)
                return Primed(response, first, chunks)
            body = await response.read(self._max_body)
            await response.aclose()
            return Buffered(response.status, response.headers, body)
        except (UpstreamError, StopAsyncIteration) as exc:
            await response.aclose()
            status = exc.status if isinstance(exc, UpstreamError) else 502
            return Failure(
                status, message="[BricksLLM] the provider's answer broke off before its first byte"
            )

    def request(
        self, inbound: Inbound, target: Target, view: RequestView, step: RouteStep
    ) -> UpstreamRequest:
        return UpstreamRequest(
            "POST",
            target.provider.upstream_url(target.setting, target.match, view.query),
            upstream_headers(inbound.headers, target.provider, target.setting, keep_length=False),
            view.body,
            step.timeout_seconds or self._default_timeout,
        )

    @staticmethod
    def step_view(
        client: Mapping[str, Any], step: RouteStep, target: Target, base: RequestView
    ) -> RequestView:
        body = rewrite(client, step)
        query = ""
        if step.provider == "azure":
            query = "api-version=" + (target.setting.setting.get("apiVersion", "") or AZURE_API_VERSION)
        view = RequestView(
            orjson.dumps(body), body, step.model, body.get("stream") is True, "application/json", query,
            base.action, base.findings,
        )  # fmt: skip
        return target.kind.prepare(view)


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
        started: float,
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
        self.started = started
        self.attempts = 0

    def call(self, planned: Planned, view: RequestView | None = None, *, cached: bool = False) -> Call:
        """The proxy's `Call` of a step (its view built unless given), marked for the event."""
        assert planned.target is not None
        view = view or self.s.step_view(self.client, planned.step, planned.target, self.view)
        mark = RouteMark(self.route.id, planned.index, self.attempts, cached)
        return Call(
            self.key, planned.target, view, self.admitted, "POST", self.path, self.custom_id,
            self.created_at, self.started, mark,
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
                outcome = await self.s.attempt(request, view.stream)
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
        step = call.route.step if call.route is not None else 0

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
        return Reply(status, headers, body)


def _openai_error(body: bytes) -> bool:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(parsed, dict) and isinstance(parsed.get("error"), dict)


class ProxyFront:
    """What the proxy port serves: routes under /api/routes, every other path by the proxy."""

    def __init__(self, proxy: ProxyService, routes: RouteService) -> None:
        self._proxy = proxy
        self._routes = routes

    async def handle(self, inbound: Inbound) -> Reply:
        if inbound.path.startswith(PREFIX + "/"):
            return await self._routes.handle(inbound)
        return await self._proxy.handle(inbound)
