"""The shapes everyone agrees on: keys, provider settings, custom providers, events, usage.

Frozen dataclasses with slots: cheap to read on the hot path and safe to share between the
in-memory configuration snapshot and request handlers. Money is integer micro-dollars
(1 USD = 1_000_000); admin/JSON layers convert to and from USD floats at the edge.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

MICROS_PER_USD = 1_000_000


def usd_to_micros(usd: float) -> int:
    return round(usd * MICROS_PER_USD)


def micros_to_usd(micros: int) -> float:
    return micros / MICROS_PER_USD


def hash_secret(secret: str) -> str:
    """How a key secret is stored and looked up: SHA-256, hex (the clear secret is never kept)."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class PathConfig:
    path: str
    method: str


@dataclass(frozen=True, slots=True)
class Limit:
    """One limit: `amount` requests, micro-dollars or tokens (`metric`) per calendar window `unit`
    (s, m, h, d, mo), or in total (`unit` "total")."""

    metric: str  # "requests" | "cost" | "tokens"
    amount: int
    unit: str


@dataclass(frozen=True, slots=True)
class Key:
    """An API key handed out by the operator. `key_hash` is the SHA-256 hex of the secret."""

    key_id: str
    name: str
    key_hash: str
    created_at: int
    updated_at: int
    tags: tuple[str, ...] = ()
    setting_id: str = ""
    setting_ids: tuple[str, ...] = ()
    revoked: bool = False
    revoked_reason: str = ""
    cost_limit_micros: int = 0  # all-time spend limit; 0 = none
    cost_limit_over_time_micros: int = 0  # windowed spend limit; 0 = none
    cost_limit_unit: str = ""  # m, h, d, mo
    rate_limit_over_time: int = 0  # requests per window; 0 = none
    rate_limit_unit: str = ""  # s, m, h, d
    ttl: str = ""  # as given, e.g. "2d"; "" = never expires
    ttl_seconds: int = 0
    allowed_paths: tuple[PathConfig, ...] = ()
    policy_id: str = ""  # a PII policy screening every request of the key; "" = none
    should_log_request: bool = False  # store each request's body with its event (capped)
    should_log_response: bool = False  # store each answer's body (streams: the text relayed)
    # Limits beyond the single-window shorthand fields above (see `domain.limits.key_limits`):
    more_limits: tuple[Limit, ...] = ()
    model_limits: dict[str, tuple[Limit, ...]] = field(default_factory=dict)  # model -> its limits

    @property
    def all_setting_ids(self) -> tuple[str, ...]:
        head = (self.setting_id,) if self.setting_id else ()
        return head + tuple(s for s in self.setting_ids if s != self.setting_id)

    def expires_at(self) -> int | None:
        return self.created_at + self.ttl_seconds if self.ttl_seconds else None


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per one million tokens. A token count times this is a cost in micro-dollars."""

    input: float = 0.0
    output: float = 0.0
    cached_input: float | None = None  # None: cached input tokens are billed as input
    cache_write: float | None = None  # None: tokens written to a prompt cache are billed as input


@dataclass(frozen=True, slots=True)
class ProviderSetting:
    """Credentials and options for one upstream. `setting` holds secrets: never serialise it out."""

    id: str
    provider: str
    created_at: int
    updated_at: int
    name: str = ""
    setting: dict[str, str] = field(default_factory=dict)
    allowed_models: tuple[str, ...] = ()
    # Per-setting price override, per model (USD per 1M tokens). Wins over the built-in table.
    prices: dict[str, ModelPrice] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return self.setting.get("url", "")

    def allows_model(self, model: str) -> bool:
        return not self.allowed_models or not model or model in self.allowed_models


@dataclass(frozen=True, slots=True)
class RouteConfig:
    path: str
    target_url: str
    model_location: str = ""
    request_prompt_location: str = ""
    response_completion_location: str = ""
    stream_location: str = ""
    stream_end_word: str = ""
    stream_response_completion_location: str = ""
    stream_max_empty_messages: int = 0


@dataclass(frozen=True, slots=True)
class CustomProvider:
    id: str
    provider: str
    created_at: int
    updated_at: int
    route_configs: tuple[RouteConfig, ...] = ()
    authentication_param: str = ""


# No single call reports more tokens than this; a larger (or negative) count from an upstream is
# clamped when read, so it can neither overflow a 64-bit counter nor become a credit.
MAX_TOKENS = 10**12


def token_count(value: object) -> int:
    """A token count read from an upstream answer, clamped to [0, MAX_TOKENS]; 0 when it is not
    a whole number. (A JSON parser may give a float for an integer beyond 64 bits.)"""
    if type(value) is int:  # the common case, and never a bool
        return value if 0 <= value <= MAX_TOKENS else max(0, min(value, MAX_TOKENS))
    if isinstance(value, float) and value.is_integer():
        return int(max(0.0, min(value, float(MAX_TOKENS))))
    return 0


@dataclass(frozen=True, slots=True)
class PolicyRecord:
    """A PII policy as the operator stored it; `domain.pii.parse_policy(document)` reads the rules."""

    id: str
    name: str
    created_at: int
    updated_at: int
    tags: tuple[str, ...] = ()
    document: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0  # part of prompt_tokens billed at the cached price
    cache_write_tokens: int = 0  # part of prompt_tokens written to a prompt cache (Anthropic)
    reasoning_tokens: int = 0  # part of completion_tokens (informational)


@dataclass(frozen=True, slots=True)
class Event:
    """One proxied request (admitted or rejected), as recorded for reporting."""

    id: str
    created_at: int
    key_id: str
    provider: str
    model: str
    status: int
    path: str
    method: str
    tags: tuple[str, ...] = ()
    cost_micros: int = 0
    prompt_token_count: int = 0
    completion_token_count: int = 0
    latency_in_ms: int = 0
    custom_id: str = ""
    action: str = ""  # what a PII policy decided: allowed, warned, redacted, blocked ("" = no policy)
    pii_entities: tuple[str, ...] = ()  # the entity types it found (never the values)
    route_id: str = ""  # a route call (domain.routes): its route, the step that answered (-1: none),
    route_step: int = -1  # the upstream requests made, and whether the cache answered
    attempts: int = 0
    cached: bool = False
    correlation_id: str = ""  # x-bricksllm-request-id: the same in the reply, the log line and here
    request_body: str = ""  # captured for keys with should_log_request (capped); else ""
    response_body: str = ""  # captured for keys with should_log_response (capped); else ""
