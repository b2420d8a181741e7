"""Validation rules of the admin use cases that span several fields or a whole object.

Per-field shape rules (types, non-empty strings, non-negative numbers) are checked by the HTTP
schemas before a service is called; the rules here are the ones that must hold on the *merged*
object after a partial update, so they are written once and applied to creates and updates
alike. Each function returns a list of (field, message) pairs, empty when the object is valid;
`raise_if` turns a non-empty list into one `Invalid` naming every field. Field names are the
public JSON names, because they are what an operator sees and must fix.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from bricksllm.domain.budgets import budget_problems, model_limit_problems
from bricksllm.domain.limits import COST_UNITS, RATE_UNITS
from bricksllm.domain.models import CustomProvider, Key, RouteConfig
from bricksllm.domain.text import has_control_chars
from bricksllm.errors import Invalid

Problems = list[tuple[str, str]]

# Setting entries that are URLs (everything else may end up in a header sent to the provider).
URL_SETTING_KEYS = frozenset({"url"})

# The only `setting` entries ever returned by the admin API; every other value is a credential.
PUBLIC_SETTING_KEYS = ("url", "resourceName", "apiVersion", "awsRegion")

_WHITESPACE = re.compile(r"\s")


def raise_if(problems: Problems) -> None:
    if problems:
        detail = "; ".join(f"{field}: {message}" for field, message in problems)
        raise Invalid(detail, fields=list(dict.fromkeys(field for field, _ in problems)))


def url_problem(value: str) -> str:
    """Why `value` is not an acceptable upstream URL ("" when it is): http(s) with a host, no
    whitespace, and no credentials in it (they would be shown by every GET; use `apikey`)."""
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        return "must be an http(s) URL"
    if (
        parts.scheme not in {"http", "https"}
        or not parts.hostname
        or _WHITESPACE.search(value)
        or not port_ok
    ):
        return "must be an http(s) URL"
    if parts.username is not None or parts.password is not None:
        return "must not contain credentials (user:password@): put the credential in the setting instead"
    return ""


def _pair(amount_field: str, unit_field: str, amount: float, unit: str, units: Iterable[str]) -> Problems:
    allowed = sorted(units)
    if unit and unit not in allowed:
        return [(unit_field, f"must be one of {', '.join(allowed)}")]
    if unit and amount <= 0:
        return [(amount_field, f"must be positive when {unit_field} is set (set both to clear the limit)")]
    if amount > 0 and not unit:
        return [(unit_field, f"is required when {amount_field} is set")]
    return []


def key_problems(key: Key) -> Problems:
    """The rules a stored key must satisfy, whether just created or merged from a patch."""
    problems: Problems = []
    if not key.name.strip():
        problems.append(("name", "must not be empty"))
    if any(not t.strip() for t in key.tags):
        problems.append(("tags", "entries must not be empty"))
    if not key.setting_id and not key.setting_ids:
        problems.append(("settingId", "settingId or settingIds is required"))
    if any(not s for s in key.setting_ids):
        problems.append(("settingIds", "entries must not be empty"))
    for name, value in (
        ("costLimitInUsd", key.cost_limit_micros),
        ("costLimitInUsdOverTime", key.cost_limit_over_time_micros),
        ("rateLimitOverTime", key.rate_limit_over_time),
    ):
        if value < 0:
            problems.append((name, "must not be negative"))
    problems += _pair(
        "costLimitInUsdOverTime",
        "costLimitInUsdUnit",
        key.cost_limit_over_time_micros,
        key.cost_limit_unit,
        COST_UNITS,
    )
    problems += _pair(
        "rateLimitOverTime", "rateLimitUnit", key.rate_limit_over_time, key.rate_limit_unit, RATE_UNITS
    )
    problems += budget_problems(key.more_limits) + model_limit_problems(key.model_limits)
    for i, p in enumerate(key.allowed_paths):
        if not p.path.startswith("/"):
            problems.append((f"allowedPaths[{i}].path", "must start with /"))
        if not p.method.strip():
            problems.append((f"allowedPaths[{i}].method", "must not be empty"))
    return problems


def setting_problems(provider: str, setting: Mapping[str, str], required: Iterable[str]) -> Problems:
    """`setting` after merging; `required` the keys the provider cannot work without (`a|b`:
    one of them)."""
    problems: Problems = []
    for names in required:
        choices = names.split("|")
        if not any(setting.get(name) for name in choices):
            also = f" (or {', '.join(choices[1:])})" if len(choices) > 1 else ""
            problems.append((f"setting.{choices[0]}", f"is required for provider {provider}{also}"))
    for name, value in setting.items():
        if has_control_chars(name) or has_control_chars(value):
            problems.append((f"setting.{name}", "must not contain control characters (CR, LF, NUL, ...)"))
        elif name not in URL_SETTING_KEYS and not value.isascii():
            problems.append((f"setting.{name}", "must be ASCII: it is sent to the provider in a header"))
    url = setting.get("url", "")
    if url and (problem := url_problem(url)):
        problems.append(("setting.url", problem))
    return problems


def route_config_problems(configs: Iterable[RouteConfig]) -> Problems:
    problems: Problems = []
    seen: set[str] = set()
    configs = list(configs)
    if not configs:
        return [("route_configs", "at least one route config is required")]
    for i, rc in enumerate(configs):
        at = f"route_configs[{i}]"
        if not rc.path:
            problems.append((f"{at}.path", "is required"))
        elif not rc.path.startswith("/") or _WHITESPACE.search(rc.path):
            problems.append((f"{at}.path", "must start with / and contain no whitespace"))
        elif rc.path in seen:
            problems.append((f"{at}.path", f"duplicates the path {rc.path}"))
        seen.add(rc.path)
        if not rc.target_url:
            problems.append((f"{at}.target_url", "is required"))
        elif problem := url_problem(rc.target_url):
            problems.append((f"{at}.target_url", problem))
        for name in ("model_location", "request_prompt_location", "response_completion_location"):
            if not getattr(rc, name):
                problems.append((f"{at}.{name}", "is required"))
        if rc.stream_location:
            for name in ("stream_end_word", "stream_response_completion_location"):
                if not getattr(rc, name):
                    problems.append((f"{at}.{name}", "is required when stream_location is set"))
        if rc.stream_max_empty_messages < 0:
            problems.append((f"{at}.stream_max_empty_messages", "must not be negative"))
    return problems


def custom_provider_problems(
    provider: CustomProvider, taken: Iterable[str], builtin: Iterable[str]
) -> Problems:
    """`taken`: names of the other custom providers (lower-case); `builtin`: built-in names."""
    problems: Problems = []
    name = provider.provider
    if not name:
        problems.append(("provider", "is required"))
    elif _WHITESPACE.search(name):
        problems.append(("provider", "must not contain whitespace"))
    elif name in set(builtin):
        problems.append(("provider", f"{name} is a built-in provider name"))
    elif name in set(taken):
        problems.append(("provider", f"a custom provider named {name} already exists"))
    if _WHITESPACE.search(provider.authentication_param):
        problems.append(("authentication_param", "must not contain whitespace"))
    return problems + route_config_problems(provider.route_configs)
