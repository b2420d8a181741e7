"""A key's limits as lists, and the single-window shorthand fields as a view of the same data.

The admin API takes `rateLimits`, `costLimits` and `tokenLimits` lists; the reference's fields
(`costLimitInUsd`, `costLimitInUsdOverTime` + `Unit`, `rateLimitOverTime` + `Unit`) stay in
their columns and are the first entries of those lists: writing a list fills them from its first
all-time and first windowed spend limit (its first request limit), and reading a list starts with
them. So either way of writing a key's limits reads back the same through both.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

from bricksllm.domain.limits import COST_UNITS, RATE_UNITS, TOKEN_UNITS, TOTAL, key_limits
from bricksllm.domain.models import Key, Limit

UNITS = {"requests": RATE_UNITS, "cost": COST_UNITS | {TOTAL}, "tokens": TOKEN_UNITS | {TOTAL}}
LIST_FIELDS = {"requests": "rateLimits", "cost": "costLimits", "tokens": "tokenLimits"}


def limits_of(key: Key, metric: str) -> list[Limit]:
    """The key's own limits of one metric, shorthand first."""
    return [limit for limit in key_limits(key) if limit.metric == metric]


def with_limits(key: Key, metric: str, limits: Sequence[Limit]) -> Key:
    """`key` with its `metric` limits replaced by `limits` (shorthand fields filled first)."""
    rest = list(limits)
    changes: dict[str, object] = {}
    if metric == "cost":
        total = next((x for x in rest if x.unit == TOTAL), None)
        windowed = next((x for x in rest if x.unit != TOTAL), None)
        changes["cost_limit_micros"] = total.amount if total else 0
        changes["cost_limit_over_time_micros"] = windowed.amount if windowed else 0
        changes["cost_limit_unit"] = windowed.unit if windowed else ""
        rest = [x for x in rest if x is not total and x is not windowed]
    elif metric == "requests":
        first = rest[0] if rest else None
        changes["rate_limit_over_time"] = first.amount if first else 0
        changes["rate_limit_unit"] = first.unit if first else ""
        rest = rest[1:]
    others = tuple(x for x in key.more_limits if x.metric != metric)
    return dataclasses.replace(key, **changes, more_limits=others + tuple(rest))  # type: ignore[arg-type]


def limit_problems(field: str, limits: Iterable[Limit]) -> list[tuple[str, str]]:
    problems = []
    for i, limit in enumerate(limits):
        units = sorted(UNITS.get(limit.metric, ()))
        if limit.unit not in units:
            problems.append((f"{field}[{i}].unit", f"must be one of {', '.join(units)}"))
        if limit.amount <= 0:
            problems.append((f"{field}[{i}]", "must be positive"))
    return problems


def budget_problems(limits: Iterable[Limit]) -> list[tuple[str, str]]:
    out = []
    for metric, name in LIST_FIELDS.items():
        out += limit_problems(name, [x for x in limits if x.metric == metric])
    return out


def model_limit_problems(model_limits: Mapping[str, Sequence[Limit]]) -> list[tuple[str, str]]:
    out = []
    for model, limits in model_limits.items():
        if not model.strip():
            out.append(("modelLimits", "model names must not be empty"))
        for metric, name in LIST_FIELDS.items():
            out += limit_problems(f"modelLimits.{model}.{name}", [x for x in limits if x.metric == metric])
    return out
