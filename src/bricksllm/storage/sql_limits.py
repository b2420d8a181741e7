"""How a key's further limits and a tag's budget are stored: JSON, compact and versionless.

`keys.limits` is `{"more": [[metric, amount, unit], ...], "models": {model: [[...], ...]}}`; the
single-window shorthand limits stay in their own columns (the reference's), so the two views of
a key's limits are one set of data. `tag_budgets.limits` is a list of the same triples.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bricksllm.domain.models import Key, Limit


def limits_json(limits: Iterable[Limit]) -> list[list[Any]]:
    return [[limit.metric, limit.amount, limit.unit] for limit in limits]


def limits_from_json(data: Iterable[Any]) -> tuple[Limit, ...]:
    return tuple(Limit(str(metric), int(amount), str(unit)) for metric, amount, unit in data)


def key_limits_json(key: Key) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if key.more_limits:
        out["more"] = limits_json(key.more_limits)
    if key.model_limits:
        out["models"] = {model: limits_json(limits) for model, limits in key.model_limits.items()}
    return out


def key_limits_fields(data: Mapping[str, Any] | None) -> dict[str, Any]:
    data = data or {}
    return {
        "more_limits": limits_from_json(data.get("more", ())),
        "model_limits": {m: limits_from_json(ls) for m, ls in (data.get("models") or {}).items()},
    }


def budgets_from_rows(rows: Iterable[Any]) -> dict[str, tuple[Limit, ...]]:
    return {row._mapping["tag"]: limits_from_json(row._mapping["limits"]) for row in rows}
