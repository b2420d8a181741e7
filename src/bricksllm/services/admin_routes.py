"""The admin use cases of routes: create, change, find, delete, with every rule checked on the
merged route (a PATCH is validated like a create).

Durations are parsed here (so a bad one is named `steps[1].retryInterval`), keys and settings
are checked against the store, and a step's provider must be one the routes service can call
with an OpenAI-format body: OpenAI, Azure, vLLM and DeepInfra. Anthropic steps are refused: the
gateway has no OpenAI-to-Anthropic translation.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from bricksllm.domain.durations import parse_duration
from bricksllm.domain.models import ProviderSetting
from bricksllm.domain.routes import MAX_CACHE_TTL, MAX_RETRIES, STRATEGIES, Route, RouteStep
from bricksllm.domain.text import PathRefused, canonical_path
from bricksllm.errors import Conflict, NotFound
from bricksllm.services.admin_rules import Problems, raise_if
from bricksllm.services.config_admin import ConfigAdmin

STEP_PROVIDERS = ("openai", "azure", "vllm", "deepinfra")
RESERVED_PARAMS = ("model", "stream")  # the step's model; streaming is the client's choice
MAX_TIMEOUT = 86_400.0


@dataclasses.dataclass(frozen=True, slots=True)
class StepInput:
    """A step as the admin API takes it (durations as text)."""

    provider: str
    model: str
    setting_id: str = ""
    retries: int = 0
    retry_interval: str = ""
    timeout: str = ""
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def _duration(text: str, field: str, problems: Problems, *, positive: bool, limit: float) -> float:
    if not text:
        return 0.0
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        problems.append((field, str(exc)))
        return 0.0
    if positive and seconds <= 0:
        problems.append((field, "must be positive"))
    elif seconds > limit:
        problems.append((field, f"must be at most {limit:g} seconds"))
    return seconds


def build_steps(steps: Sequence[StepInput], problems: Problems) -> tuple[RouteStep, ...]:
    built = []
    for i, s in enumerate(steps):
        at = f"steps[{i}]"
        if s.provider not in STEP_PROVIDERS:
            why = (
                "is not supported: the gateway has no translation from OpenAI's format to Anthropic's"
                if s.provider == "anthropic"
                else f"must be one of {', '.join(STEP_PROVIDERS)}"
            )
            problems.append((f"{at}.provider", why))
        if not s.model.strip():
            problems.append((f"{at}.model", "must not be empty"))
        if not 0 <= s.retries <= MAX_RETRIES:
            problems.append((f"{at}.retries", f"must be between 0 and {MAX_RETRIES}"))
        for name in RESERVED_PARAMS:
            if name in s.params:
                problems.append((f"{at}.params.{name}", "cannot be set by a step"))
        interval = _duration(s.retry_interval, f"{at}.retryInterval", problems, positive=False, limit=3600)
        timeout = _duration(s.timeout, f"{at}.timeout", problems, positive=True, limit=MAX_TIMEOUT)
        built.append(
            RouteStep(
                provider=s.provider, model=s.model, setting_id=s.setting_id, retries=s.retries,
                retry_interval=s.retry_interval, retry_interval_seconds=interval,
                timeout=s.timeout, timeout_seconds=timeout, params=dict(s.params),
            )
        )  # fmt: skip
    return tuple(built)


def route_problems(route: Route, key_ids: set[str], settings: Mapping[str, ProviderSetting]) -> Problems:
    """The rules a stored route satisfies (besides its steps' own, checked by `build_steps`)."""
    problems: Problems = []
    if not route.name.strip():
        problems.append(("name", "must not be empty"))
    path = route.path
    try:
        canonical = canonical_path(path) if path.startswith("/") else ""
    except PathRefused:
        canonical = ""
    if not path.startswith("/"):
        problems.append(("path", "must start with /"))
    elif canonical != path or path == "/" or path.endswith("/") or any(c.isspace() for c in path):
        problems.append(
            ("path", "must be a plain path such as /chat/prod (no //, ., .., %, space or trailing /)")
        )
    if not route.key_ids:
        problems.append(("keyIds", "at least one key is required"))
    for key_id in route.key_ids:
        if key_id not in key_ids:
            problems.append(("keyIds", f"key {key_id} does not exist"))
    if not route.steps:
        problems.append(("steps", "at least one step is required"))
    for i, step in enumerate(route.steps):
        if not step.setting_id:
            continue
        setting = settings.get(step.setting_id)
        if setting is None:
            problems.append((f"steps[{i}].settingId", f"provider setting {step.setting_id} does not exist"))
        elif setting.provider != step.provider:
            problems.append(
                (f"steps[{i}].settingId", f"is a {setting.provider} setting, not a {step.provider} one")
            )
        elif not setting.allows_model(step.model):
            problems.append((f"steps[{i}].model", f"is not among the allowed models of {step.setting_id}"))
    if route.retry_strategy not in STRATEGIES:
        problems.append(("retryStrategy", f"must be one of {', '.join(STRATEGIES)}"))
    return problems


def cache_ttl(text: str, problems: Problems) -> int:
    if not text:
        return 0
    seconds = _duration(text, "cacheConfig.ttl", problems, positive=True, limit=MAX_CACHE_TTL)
    if 0 < seconds < 1:
        problems.append(("cacheConfig.ttl", "must be at least 1s"))
    return int(seconds)


class RouteAdmin(ConfigAdmin):
    async def _check(self, route: Route, problems: Problems, kept: tuple[str, ...] = ()) -> None:
        """`kept`: key ids a patch leaves as they were (a key deleted since is not held against it)."""
        keys = {k.key_id for k in await self._config.list_keys()} | set(kept)
        settings = {s.id: s for s in await self._config.list_settings()}
        raise_if(problems + route_problems(route, keys, settings))
        taken = [r for r in await self._config.list_routes() if r.path == route.path and r.id != route.id]
        if taken:
            raise Conflict(f"path: route {taken[0].id} already serves {route.path}", fields=["path"])

    async def create(
        self,
        *,
        name: str,
        path: str,
        key_ids: Sequence[str],
        steps: Sequence[StepInput],
        retry_strategy: str,
        cache_enabled: bool,
        cache_ttl_text: str,
    ) -> Route:
        problems: Problems = []
        now = int(self._clock())
        route = Route(
            id=str(uuid.uuid4()), name=name, path=path, created_at=now, updated_at=now,
            key_ids=tuple(dict.fromkeys(key_ids)), steps=build_steps(steps, problems),
            retry_strategy=retry_strategy, cache_enabled=cache_enabled, cache_ttl=cache_ttl_text,
            cache_ttl_seconds=cache_ttl(cache_ttl_text, problems),
        )  # fmt: skip
        await self._check(route, problems)
        await self._config.create_route(route)
        await self._on_change()
        return route

    async def update(self, route_id: str, changes: Mapping[str, Any]) -> Route:
        """`changes`: the fields present in the request (`steps` as `StepInput`s, `cache_ttl_text`)."""
        current = await self.get(route_id)
        problems: Problems = []
        fields: dict[str, Any] = {
            k: v for k, v in changes.items() if k in ("name", "path", "retry_strategy", "cache_enabled")
        }
        if "key_ids" in changes:
            fields["key_ids"] = tuple(dict.fromkeys(changes["key_ids"]))
        if "steps" in changes:
            fields["steps"] = build_steps(changes["steps"], problems)
        if "cache_ttl_text" in changes:
            fields["cache_ttl"] = changes["cache_ttl_text"]
            fields["cache_ttl_seconds"] = cache_ttl(changes["cache_ttl_text"], problems)
        updated = dataclasses.replace(
            current, **fields, updated_at=max(int(self._clock()), current.updated_at)
        )
        await self._check(updated, problems, kept=() if "key_ids" in changes else current.key_ids)
        await self._config.update_route(updated)
        await self._on_change()
        return updated

    async def get(self, route_id: str) -> Route:
        route = await self._config.get_route(route_id)
        if route is None:
            raise NotFound(f"route {route_id} not found")
        return route

    async def list(self) -> list[Route]:
        return await self._config.list_routes()

    async def delete(self, route_id: str) -> None:
        if not await self._config.delete_route(route_id):
            raise NotFound(f"route {route_id} not found")
        await self._on_change()
