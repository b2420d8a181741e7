"""The proxy pipeline, free of HTTP-server types:

    authenticate -> route -> allowedPaths -> parse body -> allowedModels -> policies -> admit
    (forwarding happens in the HTTP layer) -> usage -> price -> settle spend -> record event

Every check runs before anything is forwarded, and a body that cannot be parsed is refused
rather than waved through. Everything on this path reads the in-memory configuration snapshot;
the only I/O is the counters' admission (in-process, or one Redis round trip).
"""

from __future__ import annotations

import itertools
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from bricksllm.domain.limits import AdmissionPlan, Quota, plan
from bricksllm.domain.models import Event, Key, ProviderSetting, Usage, hash_secret
from bricksllm.domain.pricing import PriceTable
from bricksllm.domain.text import PathRefused, canonical_path
from bricksllm.errors import Forbidden, Invalid, LimitExceeded, NotFound, Unauthorized, Unavailable
from bricksllm.ports import Counters, Metrics, RequestPolicy
from bricksllm.providers.base import Operation, Provider
from bricksllm.services import billing
from bricksllm.services.config_cache import ConfigCache
from bricksllm.services.events import EventWriter

log = logging.getLogger(__name__)

JSON_KINDS = frozenset({"chat", "completions", "embeddings", "moderations", "responses", "images", "speech"})
MULTIPART_KINDS = frozenset({"images_multipart", "transcription"})
MODEL_KINDS = JSON_KINDS - {"moderations"} | MULTIPART_KINDS
BILLED_KINDS = MODEL_KINDS  # the calls that carry a model are the ones that cost something


def client_key(headers: Mapping[str, str]) -> str:
    """The caller's gateway key: `Authorization: Bearer`, then `api-key`, then `x-api-key`."""
    auth = headers.get("Authorization", "")
    if auth[:7].lower() == "bearer " and auth[7:].strip():
        return auth[7:].strip()
    return headers.get("api-key", "").strip() or headers.get("x-api-key", "").strip()


@dataclass(slots=True)
class Call:
    """The state of one proxied request, filled in as it goes through the pipeline."""

    method: str
    path: str
    custom_id: str
    started: float = field(default_factory=time.perf_counter)
    created_at: int = 0
    provider: Provider | None = None
    key: Key | None = None
    setting: ProviderSetting | None = None
    op: Operation | None = None
    parsed: dict[str, Any] | None = None
    model: str = ""
    client_wants_usage: bool = False
    plan: AdmissionPlan | None = None
    rate_remaining: int = -1


class ProxyService:
    def __init__(
        self,
        config: ConfigCache,
        counters: Counters,
        events: EventWriter,
        providers: Sequence[Provider],
        prices: PriceTable,
        metrics: Metrics,
        *,
        policies: Sequence[RequestPolicy] = (),
        fail_open: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._counters = counters
        self._events = events
        self._providers = {p.prefix: p for p in providers}
        self._prices = prices
        self._metrics = metrics
        self._policies = policies
        self._fail_open = fail_open
        self._clock = clock
        # Event ids: a random per-process prefix and a counter (uuid4 cost ~5 % of a request).
        self._event_prefix = secrets.token_hex(8)
        self._event_seq = itertools.count(1)

    # --- before forwarding -------------------------------------------------------------

    def authenticate(self, call: Call, headers: Mapping[str, str]) -> None:
        """Resolve provider, route, key and provider setting; check allowedPaths. Raises on refusal."""
        call.created_at = int(self._clock())
        try:
            call.path = canonical_path(call.path)
        except PathRefused as exc:
            raise Invalid(f"[BricksLLM] invalid request path: {exc}") from None
        parts = call.path.split("/", 4)
        provider = self._providers.get("/".join(parts[:4])) if len(parts) > 3 else None
        if provider is None:
            raise NotFound("[BricksLLM] route not supported")
        call.provider = provider
        raw = client_key(headers)
        if not raw:
            raise Unauthorized("[BricksLLM] api key not found in header")
        index = self._config.current
        key = index.keys_by_hash.get(hash_secret(raw))
        if key is None:
            raise Unauthorized("[BricksLLM] key is not found")
        call.key = key
        if key.revoked:
            raise Unauthorized("[BricksLLM] key has been revoked")
        expires = key.expires_at()
        if expires is not None and call.created_at >= expires:
            raise Unauthorized("[BricksLLM] key has expired")
        op = provider.match(call.method, call.path)
        if op is None:
            raise NotFound("[BricksLLM] route not supported")
        call.op = op
        if key.allowed_paths and not any(
            p.method == call.method and p.path in (op.pattern, call.path) for p in key.allowed_paths
        ):
            raise Forbidden("[BricksLLM] path is not allowed")
        for sid in key.all_setting_ids:
            setting = index.settings.get(sid)
            if setting is not None and setting.provider == provider.name:
                call.setting = setting
                return
        raise Unauthorized(f"[BricksLLM] key has no {provider.name} provider setting")

    async def admit(self, call: Call, body: bytes, content_type: str) -> bytes:
        """Parse what is needed, check model and policies, then take the limits. Returns the body
        to forward (the client's bytes unless something had to change)."""
        assert call.op is not None and call.key is not None and call.setting is not None
        op, key = call.op, call.key
        forward = body
        if op.kind in JSON_KINDS or (body and content_type.startswith("application/json")):
            parsed = _parse_json(body)
            call.parsed = parsed
            model = parsed.get("model", "")
            call.model = model if isinstance(model, str) else ""
            opts = parsed.get("stream_options")
            call.client_wants_usage = isinstance(opts, dict) and opts.get("include_usage") is True
            assert call.provider is not None
            if call.provider.prepare_body(op, parsed):
                forward = orjson.dumps(parsed)
        elif op.kind in MULTIPART_KINDS:
            call.model = billing.multipart_field(body, content_type, "model")
        if op.kind in MODEL_KINDS and call.setting.allowed_models and not call.model:
            raise Invalid("[BricksLLM] model is required by this key's provider setting")
        if not call.setting.allows_model(call.model):
            raise Forbidden("[BricksLLM] model is not allowed")
        for policy in self._policies:
            forward = await policy.inspect(key, call.model, forward, call.parsed)
        now = self._clock()
        call.plan = plan(key, now)
        if call.plan.empty:
            return forward
        try:
            admission = await self._counters.admit(key.key_id, call.plan)
        except Unavailable:
            self._metrics.incr("counters.unavailable")
            if self._fail_open:
                return forward
            raise Unavailable("[BricksLLM] limits cannot be checked right now; try again shortly") from None
        call.rate_remaining = admission.rate_remaining
        quota = admission.denied_by
        if quota is not None:
            self._metrics.incr(f"proxy.denied.{quota.kind}")
            raise _limit_error(quota, now)
        return forward

    # --- after the upstream answered -----------------------------------------------------

    def price(self, call: Call, usage: Usage | None, response: dict[str, Any] | None) -> int:
        micros, known = billing.cost_micros(self._prices, call, usage, response)
        if not known:
            self._metrics.incr("pricing.unknown_model")
        return micros

    async def finish(self, call: Call, status: int, usage: Usage | None, micros: int) -> None:
        """Settle the spend (before the client sees the answer, so its next request is judged on
        it) and queue the event."""
        key = call.key
        if key is not None and micros > 0:
            window = call.plan.spend_window if call.plan else None
            try:
                await self._counters.settle(key.key_id, micros, window)
            except Exception:
                self._metrics.incr("counters.settle_error")
                log.warning(
                    "could not add %d micro-dollars of spend to key %s", micros, key.key_id, exc_info=True
                )
        self._record(call, status, usage or Usage(), micros)

    def reject(self, call: Call, status: int) -> None:
        self._record(call, status, Usage(), 0)

    def _record(self, call: Call, status: int, usage: Usage, micros: int) -> None:
        key = call.key
        self._events.record(
            Event(
                id=f"{self._event_prefix}-{next(self._event_seq):x}",
                created_at=call.created_at or int(self._clock()),
                key_id=key.key_id if key else "",
                tags=key.tags if key else (),
                provider=call.provider.name if call.provider else "",
                model=call.model,
                status=status,
                path=call.path,
                method=call.method,
                cost_micros=micros,
                prompt_token_count=usage.prompt_tokens,
                completion_token_count=usage.completion_tokens,
                latency_in_ms=int((time.perf_counter() - call.started) * 1000),
                custom_id=call.custom_id,
            )
        )


_UNIT = {"s": "second", "m": "minute", "h": "hour", "d": "day", "mo": "month"}


def _limit_error(quota: Quota, now: float) -> LimitExceeded:
    """A refusal that names the limit that was reached (never the key)."""
    per = f" per {_UNIT[quota.window.unit]}" if quota.window else ""
    if quota.kind == "rate":
        msg, code = (
            f"[BricksLLM] too many requests: rate limit of {quota.limit}{per} reached",
            "rate_limit_exceeded",
        )
    else:
        field = "costLimitInUsd" if quota.kind == "spend" else "costLimitInUsdOverTime"
        msg, code = (
            f"[BricksLLM] spend limit of ${quota.limit / 1e6:g}{per} reached ({field})",
            "cost_limit_exceeded",
        )
    return LimitExceeded(msg, code=code, retry_after=quota.retry_after(now), limit=quota.limit)


def _parse_json(body: bytes) -> dict[str, Any]:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise Invalid("[BricksLLM] request body is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise Invalid("[BricksLLM] request body must be a JSON object")
    return parsed
