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
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
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
    operation_of,
    retry_after,
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
    UpstreamTimeout,
)
from bricksllm.ports import Breaker, Metrics, ResponseCache, Upstream, UpstreamRequest, UpstreamResponse
from bricksllm.providers.base import RequestView
from bricksllm.providers.registry import BUILTIN_PREFIX, ProviderRegistry
from bricksllm.services.exchange import Inbound, Reply
from bricksllm.services.limits import Admitted, LimitRefusal, Limits
from bricksllm.services.proxy import ConfigSource, ProxyService, RequestTransform, Target, _json_object
from bricksllm.services.proxy_headers import upstream_headers
from bricksllm.services.proxy_record import Timing, traced
from bricksllm.services.proxy_trace import Trace
from bricksllm.services.route_answers import Buffered, CachedAnswer, Primed
from bricksllm.services.route_run import Failure, Planned, Run

AZURE_API_VERSION = "2024-10-21"  # when the Azure setting names no apiVersion
ERROR_BODY_LIMIT = 64 * 1024  # of a failed attempt's answer, kept as the last error


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
        return await traced(inbound, self.proxy.recorder.capture_limit, self._handle)

    async def _handle(self, inbound: Inbound, timing: Timing, trace: Trace) -> Reply:
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
            usable = next((p for p in plan if p.target is not None), None)
            first = usable.target if usable is not None else None
            if usable is None or first is None:
                raise Forbidden("[BricksLLM] the key has no provider setting for any step of this route")
            view = RequestView(body, parsed, str(parsed.get("model", "")), parsed.get("stream") is True)
            for transform in self._transforms:
                view = await transform(key, first, view)
            client = parsed if view.body is body else _json_object(view.body)
            # reserved at the first usable step's model and price (a failover settles at its own)
            admitted = await self._limits.admit(key, first, self.step_view(client, usable.step, first, view))
        except BricksError as exc:
            if isinstance(exc, LimitRefusal):
                admitted = exc.admitted
            if isinstance(exc, PolicyBlocked) and view is not None:
                view = dataclasses.replace(view, action="blocked", findings=exc.findings)
            mark = RouteMark(route.id) if route is not None else None
            self.proxy.recorder.record(
                inbound.method, path, custom_id, created_at, timing, key,
                first.provider if first else None, view, exc.status,
                reason=exc.reason, route=PREFIX + route.path if route else PREFIX,
                route_mark=mark, trace=trace,
            )  # fmt: skip
            return self.proxy.error_reply(None, exc, admitted)
        run = Run(
            self,
            inbound,
            route,
            key,
            plan,
            client,
            view,
            admitted,
            path,
            custom_id,
            created_at,
            timing,
            trace.capturing(key.should_log_response),
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

    async def attempt(
        self, request: UpstreamRequest, stream: bool, seconds: float
    ) -> UpstreamResponse | Failure:
        """One upstream request: the answer to relay, or why it failed (nothing reached the
        client). `seconds` bounds the attempt up to the answer in hand: the whole answer, or a
        stream's first byte (the rest of a stream has the request's own, longer, timeout)."""
        response: UpstreamResponse | None = None
        try:
            async with asyncio.timeout(seconds):
                response = await self._upstream.send(request)
                if response.status in RETRYABLE:
                    return await self._failure(response)
                if not 200 <= response.status < 300:
                    return response  # the client's fault (or a redirect): answered as is, no failover
                if stream:
                    chunks = response.chunks()
                    first = b""
                    while not first:
                        first = await anext(chunks)
                    return Primed(response, first, chunks)
                body = await response.read(self._max_body)
                await response.aclose()
                return Buffered(response.status, response.headers, body)
        except TimeoutError:
            exc: UpstreamError = UpstreamTimeout("[BricksLLM] the provider did not answer in time")
        except UpstreamError as error:
            exc = error
        except StopAsyncIteration:
            exc = UpstreamError("[BricksLLM] the provider's answer ended before its first byte")
        if response is not None:
            await response.aclose()
        return Failure(exc.status, message=exc.message)

    async def _failure(self, response: UpstreamResponse) -> Failure:
        try:
            body = await response.read(ERROR_BODY_LIMIT)
        except UpstreamError:
            body = b""
        finally:
            await response.aclose()
        wait = retry_after(response.headers.get("Retry-After", ""), self._clock())
        return Failure(response.status, body, retry_after=wait)

    def timeout(self, step: RouteStep) -> float:
        return step.timeout_seconds or self._default_timeout

    def request(
        self, inbound: Inbound, target: Target, view: RequestView, step: RouteStep
    ) -> UpstreamRequest:
        """A step's upstream request; a stream's whole exchange is bounded by PROXY_TIMEOUT."""
        seconds = self.timeout(step)
        return UpstreamRequest(
            "POST",
            target.provider.upstream_url(target.setting, target.match, view.query),
            upstream_headers(inbound.headers, target.provider, target.setting, keep_length=False),
            view.body,
            max(seconds, self._default_timeout) if view.stream else seconds,
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


class ProxyFront:
    """What the proxy port serves: routes under /api/routes, every other path by the proxy."""

    def __init__(self, proxy: ProxyService, routes: RouteService) -> None:
        self._proxy = proxy
        self._routes = routes

    async def handle(self, inbound: Inbound) -> Reply:
        if inbound.path.startswith(PREFIX + "/"):
            return await self._routes.handle(inbound)
        return await self._proxy.handle(inbound)
