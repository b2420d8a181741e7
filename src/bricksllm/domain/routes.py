"""Routes: an operator-defined path that tries an ordered list of steps (provider, model,
setting) with retries, fails over between them, and may answer identical requests from a cache.

Pure: the shapes (`Route`, `RouteStep`), the retry rules (which answers are worth another try,
how long to wait) and the cache key. The serving is `services.routes`; the storage is the
config store's; the admin use cases are `services.admin_routes`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import orjson

PREFIX = "/api/routes"
STRATEGIES = ("constant", "exponential")
# Upstream answers (and transport failures, as 502/504) worth another attempt or the next step.
RETRYABLE = frozenset({429, 500, 502, 503, 504})
MAX_CACHE_TTL = 30 * 86_400
MAX_RETRIES = 10
# The operations a route serves: the request path's suffix (as the OpenAI SDKs build it) or,
# for a route called at its own path, the body's shape decides.
CHAT, EMBEDDINGS = "chat", "embeddings"
SUFFIXES = {"/chat/completions": CHAT, "/embeddings": EMBEDDINGS}


@dataclass(frozen=True, slots=True)
class RouteStep:
    provider: str
    model: str
    setting_id: str = ""  # "" = the calling key's setting for `provider`
    retries: int = 0  # attempts after the first, on a retryable failure
    retry_interval: str = ""  # as given ("500ms", "2s"); "" = retry at once
    retry_interval_seconds: float = 0.0
    timeout: str = ""  # per attempt, as given; "" = the gateway's PROXY_TIMEOUT
    timeout_seconds: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)  # merged into the body (winning)


@dataclass(frozen=True, slots=True)
class Route:
    id: str
    name: str
    path: str  # starts with "/"; served at PREFIX + path
    created_at: int
    updated_at: int
    key_ids: tuple[str, ...] = ()
    steps: tuple[RouteStep, ...] = ()
    retry_strategy: str = "constant"
    cache_enabled: bool = False
    cache_ttl: str = ""  # as given; "" = the default of the cache
    cache_ttl_seconds: int = 0


@dataclass(frozen=True, slots=True)
class RouteMark:
    """What an event keeps of a route call."""

    route_id: str
    step: int = -1  # index of the step that answered (or was tried last); -1: none was tried
    attempts: int = 0  # upstream requests made (0 for a cache hit)
    cached: bool = False


def retry_delay(strategy: str, interval: float, retry: int) -> float:
    """Seconds to wait before retry number `retry` (1 = the first retry)."""
    if strategy == "exponential":
        return interval * 2 ** (retry - 1)
    return interval


def retry_after(value: str, now: float) -> float | None:
    """An upstream's `Retry-After` (seconds or an HTTP date) in seconds; None when absent or
    unreadable."""
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None


def split_path(path: str, routes: Mapping[str, Route]) -> tuple[Route, str] | None:
    """The route a request path (below PREFIX) calls, and the operation its suffix names ("" when
    the route is called at its own path). An exact match wins over a suffix."""
    route = routes.get(path)
    if route is not None:
        for suffix, operation in SUFFIXES.items():
            if path.endswith(suffix):
                return route, operation
        return route, ""
    for suffix, operation in SUFFIXES.items():
        if path.endswith(suffix) and (route := routes.get(path.removesuffix(suffix))) is not None:
            return route, operation
    return None


def operation_of(body: Mapping[str, Any]) -> str:
    """Chat completions or embeddings, from an OpenAI-format body."""
    return EMBEDDINGS if "input" in body and "messages" not in body else CHAT


def rewrite(body: Mapping[str, Any], step: RouteStep) -> dict[str, Any]:
    """The body a step sends: the step's model, then its params merged over the client's."""
    return {**body, "model": step.model, **step.params}


def cache_key(route_id: str, operation: str, scope: str, body: Mapping[str, Any]) -> str:
    """The exact cache key: the route, the operation, `scope` (what screens the answer, e.g. the
    key's PII policy) and the whole body with sorted keys, so every parameter counts and key
    order does not. Nothing per call (the key secret, headers) is in it."""
    payload = orjson.dumps([route_id, operation, scope, body], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(payload).hexdigest()
