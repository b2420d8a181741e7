"""The admin API's limit lists: `rateLimits`, `costLimits`, `tokenLimits`, `modelLimits`.

`[{"limit": 60, "unit": "m"}]`, `[{"usd": 5, "unit": "d"}, {"usd": 500, "unit": "total"}]`,
`[{"limit": 100000, "unit": "d"}]`, and per model `{"gpt-4o": {"costLimits": [...], ...}}`.
Request models are strict like every admin body; conversion to domain `Limit`s (micro-dollars)
happens here, and the shorthand/list bookkeeping in `domain.budgets`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from bricksllm.domain.budgets import limits_of
from bricksllm.domain.models import Key, Limit, micros_to_usd, usd_to_micros

MAX_USD = 1e9
MAX_COUNT = 2**53
Amount = Annotated[int, Field(ge=1, le=MAX_COUNT)]


class _In(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, alias_generator=to_camel)


class _Out(BaseModel):
    model_config = ConfigDict(serialize_by_alias=True, populate_by_name=True, alias_generator=to_camel)


class RateLimitIn(_In):
    limit: Amount = Field(description="requests per unit")
    unit: Literal["s", "m", "h", "d"]


class CostLimitIn(_In):
    usd: Annotated[float, Field(gt=0, le=MAX_USD)] = Field(description="USD per unit")
    unit: Literal["m", "h", "d", "mo", "total"] = Field(description='"total": all time')


class TokenLimitIn(_In):
    limit: Amount = Field(description="input + output tokens per unit")
    unit: Literal["m", "h", "d", "mo", "total"] = Field(description='"total": all time')


class LimitsIn(_In):
    rate_limits: list[RateLimitIn] = []
    cost_limits: list[CostLimitIn] = []
    token_limits: list[TokenLimitIn] = []

    def to_domain(self) -> tuple[Limit, ...]:
        return (
            *rate_limits(self.rate_limits),
            *cost_limits(self.cost_limits),
            *token_limits(self.token_limits),
        )


def rate_limits(items: list[RateLimitIn]) -> tuple[Limit, ...]:
    return tuple(Limit("requests", x.limit, x.unit) for x in items)


def cost_limits(items: list[CostLimitIn]) -> tuple[Limit, ...]:
    return tuple(Limit("cost", usd_to_micros(x.usd), x.unit) for x in items)


def token_limits(items: list[TokenLimitIn]) -> tuple[Limit, ...]:
    return tuple(Limit("tokens", x.limit, x.unit) for x in items)


def model_limits(items: dict[str, LimitsIn]) -> dict[str, tuple[Limit, ...]]:
    return {model: limits.to_domain() for model, limits in items.items()}


class CountLimitOut(_Out):
    limit: int
    unit: str


class CostLimitOut(_Out):
    usd: float
    unit: str


class LimitsOut(_Out):
    rate_limits: list[CountLimitOut]
    cost_limits: list[CostLimitOut]
    token_limits: list[CountLimitOut]

    @classmethod
    def of(cls, limits: tuple[Limit, ...] | list[Limit]) -> LimitsOut:
        def count(metric: str) -> list[CountLimitOut]:
            return [CountLimitOut(limit=x.amount, unit=x.unit) for x in limits if x.metric == metric]

        return cls(
            rate_limits=count("requests"),
            cost_limits=[
                CostLimitOut(usd=micros_to_usd(x.amount), unit=x.unit) for x in limits if x.metric == "cost"
            ],
            token_limits=count("tokens"),
        )


def key_limits_out(key: Key) -> dict[str, Any]:
    """The KeyOut fields of a key's limits (shorthand included, as the lists' first entries)."""
    own = [*limits_of(key, "requests"), *limits_of(key, "cost"), *limits_of(key, "tokens")]
    lists = LimitsOut.of(own)
    return {
        "rate_limits": lists.rate_limits,
        "cost_limits": lists.cost_limits,
        "token_limits": lists.token_limits,
        "model_limits": {model: LimitsOut.of(limits) for model, limits in key.model_limits.items()},
    }
