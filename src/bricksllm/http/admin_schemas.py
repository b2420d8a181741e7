"""Pydantic models of the admin API's request and response bodies, with the reference's JSON names.

Keys, provider settings and reporting are camelCase; custom providers and events snake_case.
Request models are strict (no "2" for 2, no "true" for true), forbid unknown fields and check
each field's own shape; rules across fields or stores belong to `services.admin`. A JSON `null`
for an optional field means "not given". Response models are built from domain objects with
`from_domain` and are the only way data leaves the admin API, which is how secrets stay in:
`KeyOut` has no `key` field and `SettingOut` exposes only `PUBLIC_SETTING_KEYS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from bricksllm.domain.durations import parse_ttl
from bricksllm.domain.models import (
    Event,
    Key,
    ModelPrice,
    PathConfig,
    ProviderSetting,
    micros_to_usd,
    usd_to_micros,
)
from bricksllm.errors import Invalid
from bricksllm.http.admin_limits import (
    CostLimitIn,
    CostLimitOut,
    CountLimitOut,
    LimitsIn,
    LimitsOut,
    RateLimitIn,
    TokenLimitIn,
    cost_limits,
    key_limits_out,
    model_limits,
    rate_limits,
    token_limits,
)
from bricksllm.services.admin import KeyFields
from bricksllm.services.admin_rules import PUBLIC_SETTING_KEYS

MAX_USD = 1e9  # keeps every amount inside a 64-bit count of micro-dollars
MAX_COUNT = 2**53


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or blank")
    return value


def _starts_with_slash(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError("must start with /")
    return value


def _valid_ttl(value: str) -> str:
    if value:
        parse_ttl(value)  # its ValueError names the accepted units
    return value


NonEmpty = Annotated[str, Field(min_length=1), AfterValidator(_not_blank)]
Usd = Annotated[float, Field(ge=0, le=MAX_USD)]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
Timestamp = Annotated[int, Field(ge=0, le=MAX_COUNT, description="unix seconds")]
Ttl = Annotated[
    str,
    Field(description='time to live, a number and a unit s, m, h or d (e.g. "2d", "1h30m"); "" = never'),
    AfterValidator(_valid_ttl),
]


class Request(BaseModel):
    """Base of every request body: strict types, no unknown fields, `null` = absent."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _drop_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data


class CamelRequest(Request):
    model_config = ConfigDict(alias_generator=to_camel)


class Response(BaseModel):
    model_config = ConfigDict(serialize_by_alias=True, populate_by_name=True)


class CamelResponse(Response):
    model_config = ConfigDict(alias_generator=to_camel)


# ------------------------------------------------------------------ keys


class PathConfigIn(CamelRequest):
    path: Annotated[str, Field(min_length=1), AfterValidator(_starts_with_slash)]
    method: Annotated[NonEmpty, AfterValidator(str.upper)]


class PathConfigOut(CamelResponse):
    path: str
    method: str


def _as_is(value: Any) -> Any:
    return value


# request attribute -> (Key attribute, conversion to domain units)
_KEY_FIELDS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "name": ("name", _as_is),
    "tags": ("tags", tuple),
    "setting_id": ("setting_id", _as_is),
    "setting_ids": ("setting_ids", tuple),
    "revoked": ("revoked", _as_is),
    "revoked_reason": ("revoked_reason", _as_is),
    "cost_limit_in_usd": ("cost_limit_micros", usd_to_micros),
    "cost_limit_in_usd_over_time": ("cost_limit_over_time_micros", usd_to_micros),
    "cost_limit_in_usd_unit": ("cost_limit_unit", _as_is),
    "rate_limit_over_time": ("rate_limit_over_time", _as_is),
    "rate_limit_unit": ("rate_limit_unit", _as_is),
    "ttl": ("ttl", _as_is),
    "allowed_paths": ("allowed_paths", lambda ps: tuple(PathConfig(p.path, p.method) for p in ps)),
    "policy_id": ("policy_id", _as_is),
    "should_log_request": ("should_log_request", _as_is),
    "should_log_response": ("should_log_response", _as_is),
    "rate_limits": ("rate_limits", rate_limits),  # applied over the shorthand by services.admin
    "cost_limits": ("cost_limits", cost_limits),
    "token_limits": ("token_limits", token_limits),
    "model_limits": ("model_limits", model_limits),
}
_LISTS = {"rate_limits", "cost_limits", "token_limits", "model_limits"}  # only when given
_SHORTHAND = {
    "cost_limits": ("cost_limit_in_usd", "cost_limit_in_usd_over_time", "cost_limit_in_usd_unit"),
    "rate_limits": ("rate_limit_over_time", "rate_limit_unit"),
}


class KeyPatch(CamelRequest):
    """PATCH body: only the fields present change; the merged key is validated as a whole."""

    name: str = ""  # the merged key must still have a name (services.admin_rules)
    tags: list[NonEmpty] = []
    setting_id: str = ""
    setting_ids: list[NonEmpty] = []
    revoked: bool = False
    revoked_reason: str = ""
    cost_limit_in_usd: Usd = Field(0, description="all-time spend limit in USD; 0 = none")
    cost_limit_in_usd_over_time: Usd = Field(0, description="spend limit per costLimitInUsdUnit; 0 = none")
    cost_limit_in_usd_unit: Literal["", "m", "h", "d", "mo"] = ""
    rate_limit_over_time: Count = Field(0, description="requests per rateLimitUnit; 0 = none")
    rate_limit_unit: Literal["", "s", "m", "h", "d"] = ""
    ttl: Ttl = ""
    allowed_paths: list[PathConfigIn] = []
    policy_id: str = Field("", description='the PII policy screening this key\'s requests; "" = none')
    should_log_request: bool = Field(False, description="store each request's body with its event")
    should_log_response: bool = Field(False, description="store each answer's body with its event")
    rate_limits: list[RateLimitIn] = Field(
        [], description="several request limits; replaces rateLimitOverTime"
    )
    cost_limits: list[CostLimitIn] = Field([], description="several spend limits; replaces costLimitInUsd*")
    token_limits: list[TokenLimitIn] = Field([], description="input + output token limits")
    model_limits: dict[str, LimitsIn] = Field({}, description="limits on this key's calls to one model")

    def _check_lists(self) -> None:
        for lists, shorthand in _SHORTHAND.items():
            both = [to_camel(f) for f in shorthand if f in self.model_fields_set]
            if lists in self.model_fields_set and both:
                name = to_camel(lists)
                raise Invalid(f"{name}: give either it or {', '.join(both)}", fields=[name])

    def to_fields(self) -> KeyFields:
        """The fields present in the request, in domain names and units."""
        self._check_lists()
        out: dict[str, Any] = {}
        for attr in self.model_fields_set & _KEY_FIELDS.keys():
            name, convert = _KEY_FIELDS[attr]
            out[name] = convert(getattr(self, attr))
        return KeyFields(**out)  # type: ignore[typeddict-item]


class KeyCreate(KeyPatch):
    """Create body. `key` is the secret clients will present; it is stored only as a SHA-256 hash."""

    name: NonEmpty
    key: str = Field(min_length=1, repr=False, description="the secret; stored hashed, never returned")

    def to_fields(self) -> KeyFields:
        self._check_lists()
        out: dict[str, Any] = {}
        for attr, (name, convert) in _KEY_FIELDS.items():
            if attr not in _LISTS or attr in self.model_fields_set:
                out[name] = convert(getattr(self, attr))
        return KeyFields(**out)  # type: ignore[typeddict-item]


class KeyOut(CamelResponse):
    key_id: str
    name: str
    tags: list[str]
    setting_id: str
    setting_ids: list[str]
    revoked: bool
    revoked_reason: str
    cost_limit_in_usd: float
    cost_limit_in_usd_over_time: float
    cost_limit_in_usd_unit: str
    rate_limit_over_time: int
    rate_limit_unit: str
    ttl: str
    allowed_paths: list[PathConfigOut]
    policy_id: str
    should_log_request: bool = False
    should_log_response: bool = False
    created_at: int
    updated_at: int
    expires_at: int | None = Field(description="unix seconds when the ttl runs out; null = never")
    rate_limits: list[CountLimitOut] = []
    cost_limits: list[CostLimitOut] = []
    token_limits: list[CountLimitOut] = []
    model_limits: dict[str, LimitsOut] = {}

    @classmethod
    def from_domain(cls, key: Key) -> KeyOut:
        return cls(
            key_id=key.key_id,
            name=key.name,
            tags=list(key.tags),
            setting_id=key.setting_id,
            setting_ids=list(key.setting_ids),
            revoked=key.revoked,
            revoked_reason=key.revoked_reason,
            cost_limit_in_usd=micros_to_usd(key.cost_limit_micros),
            cost_limit_in_usd_over_time=micros_to_usd(key.cost_limit_over_time_micros),
            cost_limit_in_usd_unit=key.cost_limit_unit,
            rate_limit_over_time=key.rate_limit_over_time,
            rate_limit_unit=key.rate_limit_unit,
            ttl=key.ttl,
            allowed_paths=[PathConfigOut(path=p.path, method=p.method) for p in key.allowed_paths],
            policy_id=key.policy_id,
            should_log_request=key.should_log_request,
            should_log_response=key.should_log_response,
            created_at=key.created_at,
            updated_at=key.updated_at,
            expires_at=key.expires_at(),
            **key_limits_out(key),
        )


class Deleted(Response):
    """An empty object."""


# ------------------------------------------------------------------ provider settings


class PriceIn(CamelRequest):
    input: Usd = Field(description="USD per 1M input tokens")
    output: Usd = Field(description="USD per 1M output tokens")
    cached_input: Usd | None = Field(None, description="USD per 1M cached input tokens; default: input")
    cache_write: Usd | None = Field(
        None, description="USD per 1M tokens written to a prompt cache; default: input"
    )

    def to_domain(self) -> ModelPrice:
        return ModelPrice(
            input=self.input, output=self.output, cached_input=self.cached_input, cache_write=self.cache_write
        )


class PriceOut(CamelResponse):
    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None


SettingMap = Annotated[
    dict[NonEmpty, str],
    Field(
        description="provider credentials and options (apikey, url, resourceName, apiVersion, ...). "
        "On PATCH merged key by key; an empty value removes the key. Credentials are never returned."
    ),
]


class SettingPatch(CamelRequest):
    setting: SettingMap = {}
    name: str = ""
    allowed_models: list[NonEmpty] = []
    prices: dict[NonEmpty, PriceIn] = Field({}, description="per-model price override, USD per 1M tokens")

    def domain_prices(self) -> dict[str, ModelPrice]:
        return {model: price.to_domain() for model, price in self.prices.items()}


class SettingCreate(SettingPatch):
    provider: Annotated[NonEmpty, AfterValidator(str.lower)] = Field(
        description="openai, anthropic, azure, vllm, deepinfra, bedrock or a custom provider's name"
    )
    setting: SettingMap


class SettingOut(CamelResponse):
    id: str
    provider: str
    name: str
    allowed_models: list[str]
    prices: dict[str, PriceOut]
    setting: dict[str, str] = Field(
        description=f"only the non-secret entries: {', '.join(PUBLIC_SETTING_KEYS)}"
    )
    setting_keys: list[str] = Field(description="names of every entry stored in setting (values hidden)")
    created_at: int
    updated_at: int

    @classmethod
    def from_domain(cls, s: ProviderSetting) -> SettingOut:
        return cls(
            id=s.id,
            provider=s.provider,
            name=s.name,
            allowed_models=list(s.allowed_models),
            prices={
                m: PriceOut(
                    input=p.input, output=p.output, cached_input=p.cached_input, cache_write=p.cache_write
                )
                for m, p in s.prices.items()
            },
            setting={k: s.setting[k] for k in PUBLIC_SETTING_KEYS if k in s.setting},
            setting_keys=sorted(s.setting),
            created_at=s.created_at,
            updated_at=s.updated_at,
        )


# ------------------------------------------------------------------ events and reporting


class EventOut(Response):
    """One proxied request, snake_case as in the reference."""

    id: str
    created_at: int
    tags: list[str]
    key_id: str
    cost_in_usd: float
    provider: str
    model: str
    status: int
    prompt_token_count: int
    completion_token_count: int
    latency_in_ms: int
    path: str
    method: str
    custom_id: str
    action: str = Field(description="a PII policy's verdict: allowed, warned, redacted, blocked; '' = none")
    pii_entities: list[str] = Field(description="the entity types the policy found (never the values)")
    route_id: str = Field("", description="the route called ('' = a provider path)")
    route_step: int = Field(-1, description="index of the route step that answered (-1 = none)")
    attempts: int = Field(0, description="upstream requests a route call made (0 = a cache hit)")
    cached: bool = Field(False, description="answered from the route's cache (cost 0)")
    correlation_id: str = Field("", description="the x-bricksllm-request-id of the request and its reply")
    request_body: str | None = Field(
        None, description="the captured request body (shouldLogRequest); only with includeBodies=true"
    )
    response_body: str | None = Field(
        None, description="the captured answer (shouldLogResponse); only with includeBodies=true"
    )

    @classmethod
    def from_domain(cls, e: Event, *, bodies: bool = False) -> EventOut:
        return cls(
            id=e.id,
            created_at=e.created_at,
            tags=list(e.tags),
            key_id=e.key_id,
            cost_in_usd=micros_to_usd(e.cost_micros),
            provider=e.provider,
            model=e.model,
            status=e.status,
            prompt_token_count=e.prompt_token_count,
            completion_token_count=e.completion_token_count,
            latency_in_ms=e.latency_in_ms,
            path=e.path,
            method=e.method,
            custom_id=e.custom_id,
            action=e.action,
            pii_entities=list(e.pii_entities),
            route_id=e.route_id,
            route_step=e.route_step,
            attempts=e.attempts,
            cached=e.cached,
            correlation_id=e.correlation_id,
            request_body=e.request_body if bodies else None,
            response_body=e.response_body if bodies else None,
        )


class HealthOut(Response):
    status: str


class Problem(Response):
    """RFC 9457 problem details; `fields` names the offending request fields when there are any."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    fields: list[str] | None = None
