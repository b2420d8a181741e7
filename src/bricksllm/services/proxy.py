"""The proxy pipeline: one call, owned here from the client's request to its recorded event.

    path -> key -> provider and endpoint -> allowedPaths -> provider setting -> body -> model
    -> transforms (PII) -> prepare (e.g. ask for stream usage) -> admit limits -> forward
    -> relay and meter the answer -> price -> settle spend -> record the event

Every stage yields a frozen value (the key, a `Target`, a `RequestView`, `Admitted`); a refused
request is recorded from whichever of them exist. Every check runs before anything is
forwarded, and a body that cannot be parsed is refused, never waved through. The HTTP server
only translates (`services.exchange`); the upstream is a port (`ports.Upstream`). The only I/O
before forwarding is the counters' admission (in-process, or one Redis round trip).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from bricksllm.domain.durations import parse_duration
from bricksllm.domain.models import Key, ProviderSetting, Usage, hash_secret
from bricksllm.domain.routes import RouteMark
from bricksllm.domain.text import PathRefused, canonical_path
from bricksllm.errors import (
    BricksError,
    Forbidden,
    Invalid,
    LimitExceeded,
    NotFound,
    PolicyBlocked,
    Unauthorized,
    UpstreamError,
)
from bricksllm.ports import Headers, Metrics, Upstream, UpstreamRequest, UpstreamResponse
from bricksllm.providers.base import (
    Body,
    Kind,
    Match,
    Meter,
    Metered,
    Pricing,
    Provider,
    RequestView,
    openai_error_body,
)
from bricksllm.providers.meters import PassMeter
from bricksllm.providers.registry import ProviderRegistry
from bricksllm.services.config_cache import ConfigIndex
from bricksllm.services.exchange import Inbound, Reply
from bricksllm.services.limits import Admitted, LimitRefusal, Limits
from bricksllm.services.multipart import form_field
from bricksllm.services.proxy_headers import client_key, reply_headers, upstream_headers
from bricksllm.services.proxy_record import EventSink, Observer, Recorder, Timing, traced
from bricksllm.services.proxy_trace import Trace

MAX_REQUEST_TIMEOUT = 86_400.0
ALL_TIME_RETRY_AFTER = 3600  # seconds, on a 429 of an all-time budget
BUFFERED_ANSWER = 1024 * 1024  # answers of known length up to this are read whole, then sent
DRAIN_SECONDS = 1.0  # after a stream's end event, how long to wait for the upstream to finish it
SSE = "text/event-stream"


class ConfigSource(Protocol):
    """The in-memory configuration snapshot (`ConfigCache`), replaced whole on every change."""

    @property
    def current(self) -> ConfigIndex: ...


class AnswerScreen(Protocol):
    """Screens a non-streamed JSON answer before the client gets it (a PII policy's response
    rules): returns the bytes to send and the view with the verdict; raises to refuse it."""

    async def answer(
        self, key: Key, target: Target, view: RequestView, body: bytes
    ) -> tuple[bytes, RequestView]: ...


class RequestTransform(Protocol):
    """A pure rewrite of an admitted request before it is forwarded (PII redaction comes here).
    Raise `errors.Forbidden` to block it."""

    async def __call__(self, key: Key, target: Target, view: RequestView) -> RequestView: ...


@dataclass(frozen=True, slots=True)
class Target:
    provider: Provider
    match: Match
    setting: ProviderSetting

    @property
    def kind(self) -> Kind:
        return self.match.endpoint.kind

    @property
    def pricing(self) -> Pricing:
        return Pricing(self.provider.prices, self.setting.prices)


@dataclass(frozen=True, slots=True)
class Call:
    """An admitted call, as the answer's stages see it."""

    key: Key
    target: Target
    view: RequestView
    admitted: Admitted
    method: str
    path: str
    custom_id: str
    created_at: int
    timing: Timing
    trace: Trace
    route_mark: RouteMark | None = None  # a route call (services.routes): kept on its event


class ProxyService:
    def __init__(
        self,
        config: ConfigSource,
        limits: Limits,
        events: EventSink,
        registry: ProviderRegistry,
        upstream: Upstream,
        metrics: Metrics,
        *,
        default_timeout: float = 600.0,
        max_body: int = 64 * 1024 * 1024,
        transforms: Sequence[RequestTransform] = (),
        answer_screen: AnswerScreen | None = None,
        clock: Callable[[], float] = time.time,
        observers: Sequence[Observer] = (),
        capture_limit: int = 64 * 1024,
    ) -> None:
        self._config = config
        self._limits = limits
        self._registry = registry
        self._upstream = upstream
        self._metrics = metrics
        self._default_timeout = default_timeout
        self._max_body = max_body
        self._transforms = transforms
        self._answer_screen = answer_screen
        self._clock = clock
        self._recorder = Recorder(events, metrics, tuple(observers), capture_limit)

    async def handle(self, inbound: Inbound) -> Reply:
        return await traced(inbound, self._recorder.capture_limit, self._handle)

    async def _handle(self, inbound: Inbound, timing: Timing, trace: Trace) -> Reply:
        created_at = int(self._clock())
        custom_id = inbound.headers.get("X-CUSTOM-EVENT-ID", "")
        path = inbound.path
        key: Key | None = None
        provider: Provider | None = None
        match: Match | None = None
        target: Target | None = None
        view: RequestView | None = None
        admitted: Admitted | None = None
        try:
            path = self._path(inbound.path)
            key = self._authenticate(inbound.headers, created_at)
            provider, match = self._resolve(inbound.method, path)
            target = self._target(key, provider, match, inbound.method, path)
            timeout = self._timeout(inbound.headers)
            view = await self._read(target, inbound)
            for transform in self._transforms:
                view = await transform(key, target, view)
            view = target.kind.prepare(view)
            admitted = await self._limits.admit(key, target, view, seconds=timeout)
        except BricksError as exc:
            if isinstance(exc, LimitRefusal):
                admitted = exc.admitted
            if isinstance(exc, PolicyBlocked) and view is not None:
                view = dataclasses.replace(view, action="blocked", findings=exc.findings)
            # a built-in's error shape, and its route for metrics, even before the route is resolved
            # (custom providers reveal nothing to strangers)
            provider = provider or self._registry.owner(path)
            if match is None and provider is not None:
                match = (self._registry.resolve(inbound.method, path, {}) or (provider, None))[1]
            self._recorder.record(
                inbound.method, path, custom_id, created_at, timing, key, provider, view, exc.status,
                reason=exc.reason, route=match.endpoint.pattern if match else "", trace=trace,
            )  # fmt: skip
            return self._error_reply(provider, exc, admitted)
        trace.capturing(key.should_log_response)
        call = Call(key, target, view, admitted, inbound.method, path, custom_id, created_at, timing, trace)
        return await self._forward(call, inbound, seconds=timeout)

    # --- before forwarding -------------------------------------------------------------------

    @staticmethod
    def _path(raw: str) -> str:
        try:
            path = canonical_path(raw)
        except PathRefused as exc:
            raise Invalid(f"[BricksLLM] invalid request path: {exc}") from None
        if not ProviderRegistry.serves(path):
            raise NotFound("[BricksLLM] route not supported")
        return path

    def _authenticate(self, headers: Headers, now: int) -> Key:
        raw = client_key(headers)
        if not raw:
            raise Unauthorized("[BricksLLM] api key not found in header")
        key = self._config.current.keys_by_hash.get(hash_secret(raw))
        if key is None:
            raise Unauthorized("[BricksLLM] key is not found")
        if key.revoked:
            raise Unauthorized("[BricksLLM] key has been revoked", reason="revoked")
        expires = key.expires_at()
        if expires is not None and now >= expires:
            raise Unauthorized("[BricksLLM] key has expired", reason="expired")
        return key

    def _resolve(self, method: str, path: str) -> tuple[Provider, Match]:
        found = self._registry.resolve(method, path, self._config.current.custom_providers)
        if found is None:
            raise NotFound("[BricksLLM] route not supported")
        return found

    def _target(self, key: Key, provider: Provider, match: Match, method: str, path: str) -> Target:
        index = self._config.current
        endpoint = match.endpoint
        names = (endpoint.pattern, path, *endpoint.aliases)
        if key.allowed_paths and not any(p.method == method and p.path in names for p in key.allowed_paths):
            raise Forbidden("[BricksLLM] path is not allowed", reason="path_not_allowed")
        for setting_id in key.all_setting_ids:
            setting = index.settings.get(setting_id)
            if setting is not None and setting.provider == provider.name:
                return Target(provider, match, setting)
        raise Forbidden(f"[BricksLLM] key has no {provider.name} provider setting", reason="no_setting")

    def _timeout(self, headers: Headers) -> float:
        raw = headers.get("x-request-timeout")
        if not raw:
            return self._default_timeout
        try:
            value = parse_duration(raw)
        except ValueError:
            value = 0.0
        if not 0 < value <= MAX_REQUEST_TIMEOUT:
            raise Invalid("[BricksLLM] invalid timeout in x-request-timeout (e.g. 30s, 2m; at most 1d)")
        return value

    async def _read(self, target: Target, inbound: Inbound) -> RequestView:
        kind = target.kind
        content_type = inbound.headers.get("Content-Type", "")
        model, stream, parsed, body = "", False, None, b""
        if kind.body is not Body.STREAMED:
            body = await inbound.body.read(self._max_body)
            if kind.body is Body.JSON or (body and content_type.startswith("application/json")):
                parsed = _json_object(body)
                model, stream = kind.describe(parsed)
            elif kind.body is Body.MULTIPART:
                model = form_field(body, content_type, "model")
        model = model or target.provider.default_model(target.match)
        view = RequestView(body, parsed, model, stream, content_type, inbound.query)
        setting = target.setting
        if kind.billed and setting.allowed_models and not view.model:
            raise Invalid("[BricksLLM] model is required by this key's provider setting")
        if not setting.allows_model(view.model):
            raise Forbidden("[BricksLLM] model is not allowed", reason="model_not_allowed")
        return view

    # --- forwarding and the answer -------------------------------------------------------------

    async def _forward(self, call: Call, inbound: Inbound, *, seconds: float) -> Reply:
        target = call.target
        streamed = target.kind.body is Body.STREAMED
        body: bytes | AsyncIterable[bytes] = inbound.body.chunks() if streamed else call.view.body
        request = UpstreamRequest(
            call.method,
            target.provider.upstream_url(target.setting, target.match, inbound.query),
            upstream_headers(inbound.headers, target.provider, target.setting, keep_length=streamed),
            body,
            seconds,
        )
        call.timing.sent = time.perf_counter()
        try:
            response = await self._upstream.send(request)
        except UpstreamError as exc:
            await self._finish(call, exc.status, Metered(), billable=False, reason=exc.reason)
            return self._error_reply(target.provider, exc, call.admitted)
        return await self._answer(call, response)

    async def _answer(self, call: Call, response: UpstreamResponse) -> Reply:
        kind = call.target.kind
        status = response.status
        call.timing.answered = time.perf_counter()
        content_type = response.headers.get("Content-Type", "").partition(";")[0].strip().lower()
        billable = kind.billed and 200 <= status < 300
        meter: Meter = kind.meter(call.view, content_type) if billable else PassMeter()
        headers = reply_headers(response.headers, call.admitted)
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) <= BUFFERED_ANSWER:
            try:
                body = await response.read(int(length))
            except UpstreamError as exc:
                await self._finish(call, exc.status, Metered(), billable=False, reason=exc.reason)
                return self._error_reply(call.target.provider, exc, call.admitted)
            finally:
                call.timing.done = time.perf_counter()
                await response.aclose()
            sent = meter.feed(body)
            rest, metered = meter.finish()
            answer = sent + rest
            if self._answer_screen is not None and billable and content_type == "application/json":
                try:
                    answer, view = await self._answer_screen.answer(call.key, call.target, call.view, answer)
                except BricksError as exc:  # the answer is refused, but it was generated: billed
                    if isinstance(exc, PolicyBlocked):
                        call = dataclasses.replace(call, view=dataclasses.replace(
                            call.view, action="blocked", findings=exc.findings))  # fmt: skip
                    await self._finish(call, exc.status, metered, billable=True, reason=exc.reason)
                    return self._error_reply(call.target.provider, exc, call.admitted)
                call = dataclasses.replace(call, view=view)
            call.trace.relay(answer)
            await self._finish(call, status, metered, billable=billable)
            return Reply(status, headers, answer)
        if length.isdigit() and content_type != SSE:
            headers.append(("Content-Length", length))
        return Reply(status, headers, stream=self._relay(call, response, meter, billable))

    async def _relay(
        self, call: Call, response: UpstreamResponse, meter: Meter, billable: bool
    ) -> AsyncGenerator[bytes, None]:
        """The answer as it arrives. Once the meter says it is complete (`[DONE]`,
        `message_stop`, a custom end word) the call is settled *before* that last event goes out:
        a client that sends its next request as soon as it reads the end is judged on this one's
        cost. If the client goes away the server closes this generator (GeneratorExit) or cancels
        it: the upstream call is closed and what was generated is still billed (status 499). If
        the upstream breaks, an error event ends the stream."""
        status, reason = response.status, ""
        settled = False
        chunks = response.chunks()
        try:
            sent = b""
            async for chunk in chunks:
                call.timing.first_byte = call.timing.first_byte or time.perf_counter()
                sent = meter.feed(chunk)
                if meter.done:
                    break
                if sent:
                    call.trace.relay(sent)
                    yield sent
                sent = b""
            call.timing.done = time.perf_counter()
            rest, metered = meter.finish()
            if metered.failure:
                status, reason = 502, "upstream_error"
                rest += call.target.provider.stream_error(metered.failure)
            settled = True
            call.trace.relay(sent + rest)
            await self._finish(call, status, metered, billable=billable, reason=reason)
            if sent or rest:
                yield sent + rest
            if meter.done and not metered.failure:  # read to the end, so the connection is reused
                with contextlib.suppress(TimeoutError, UpstreamError):
                    async with asyncio.timeout(DRAIN_SECONDS):
                        async for _ in chunks:
                            pass
        except (GeneratorExit, asyncio.CancelledError):
            status, reason = 499, "client_closed"
            raise
        except UpstreamError as exc:
            status, reason = exc.status, exc.reason
            if not settled:
                yield call.target.provider.stream_error("[BricksLLM] the provider stream was interrupted")
        finally:
            await response.aclose()
            if not settled:
                call.timing.done = call.timing.done or time.perf_counter()
                await self._finish(call, status, meter.finish()[1], billable=billable, reason=reason)

    async def _finish(
        self, call: Call, status: int, metered: Metered, *, billable: bool, reason: str = ""
    ) -> None:
        """Price what was used, settle the spend (before the client sees the end of the answer,
        so its next request is judged on it) and queue the event."""
        micros = 0
        usage = metered.usage
        if billable:
            kind = call.target.kind
            if usage is None and metered.parsed and kind.estimates:
                usage = await asyncio.to_thread(kind.estimate, call.view, metered)
                metered = dataclasses.replace(metered, usage=usage)
            micros, known = kind.cost(call.target.pricing, call.view, metered)
            if not known:
                self._metrics.incr("pricing.unknown_model")
            if not metered.parsed:
                self._metrics.incr("pricing.unreadable_answer")
        tokens = usage.prompt_tokens + usage.completion_tokens if usage is not None and billable else 0
        await self._limits.settle(call.admitted, micros, tokens)  # at every end: frees the reservation
        self._recorder.record(
            call.method, call.path, call.custom_id, call.created_at, call.timing,
            call.key, call.target.provider, call.view, status, usage or Usage(), micros,
            reason=reason, route=call.target.match.endpoint.pattern, route_mark=call.route_mark,
            trace=call.trace,
        )  # fmt: skip

    # --- the stages `services.routes` shares --------------------------------------------------

    authenticate = _authenticate
    answer = _answer
    finish = _finish

    @property
    def recorder(self) -> Recorder:
        return self._recorder

    # --- replies and events ----------------------------------------------------------------------

    @staticmethod
    def _error_reply(provider: Provider | None, exc: BricksError, admitted: Admitted | None) -> Reply:
        render = provider.error_body if provider is not None else openai_error_body
        headers = [("Content-Type", "application/json")]
        if isinstance(exc, LimitExceeded):
            # An all-time budget never resets: "not soon" (only the operator raising it helps),
            # and the OpenAI SDKs are told not to retry.
            headers.append(("Retry-After", str(exc.retry_after or ALL_TIME_RETRY_AFTER)))
            if not exc.retry_after:
                headers.append(("x-should-retry", "false"))
        if admitted is not None:
            headers += admitted.rate_headers()
        return Reply(exc.status, headers, render(exc.status, exc.message, exc.code))

    error_reply = _error_reply


def _json_object(body: bytes) -> Mapping[str, Any]:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise Invalid("[BricksLLM] request body is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise Invalid("[BricksLLM] request body must be a JSON object")
    return parsed
