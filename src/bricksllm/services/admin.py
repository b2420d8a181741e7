"""The admin use cases: keys, provider settings, custom providers, events and reporting.

`AdminService` is the only thing the admin HTTP app talks to. It takes domain values in and
gives domain values back, enforces the rules that need the stores (a key's settings exist, a
provider is known, a secret is unique) and the merged-object rules of `admin_rules`, and calls
`on_change` after every successful configuration write so the proxy's in-memory snapshot is
refreshed at once. Secrets enter here (the key secret is hashed immediately) and never leave.
"""

from __future__ import annotations

import dataclasses
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypedDict

from bricksllm.domain.budgets import with_limits
from bricksllm.domain.durations import parse_ttl
from bricksllm.domain.limits import Window, window
from bricksllm.domain.models import (
    CustomProvider,
    Event,
    Key,
    Limit,
    ModelPrice,
    PathConfig,
    ProviderSetting,
    RouteConfig,
    hash_secret,
)
from bricksllm.errors import Conflict, Invalid, NotFound
from bricksllm.ports import ConfigStore, Counters, EventQuery, EventStore, Report, ReportQuery
from bricksllm.providers.registry import ProviderRegistry
from bricksllm.services.admin_rules import (
    custom_provider_problems,
    key_problems,
    raise_if,
    setting_problems,
)
from bricksllm.services.config_admin import ConfigAdmin

MAX_EVENTS_PAGE = 1000
MAX_REPORT_BUCKETS = 10_000


class KeyFields(TypedDict, total=False):
    """The operator-settable attributes of a `Key`, in domain units (micro-dollars)."""

    name: str
    tags: tuple[str, ...]
    setting_id: str
    setting_ids: tuple[str, ...]
    revoked: bool
    revoked_reason: str
    cost_limit_micros: int
    cost_limit_over_time_micros: int
    cost_limit_unit: str
    rate_limit_over_time: int
    rate_limit_unit: str
    ttl: str
    allowed_paths: tuple[PathConfig, ...]
    policy_id: str
    should_log_request: bool
    should_log_response: bool
    rate_limits: tuple[Limit, ...]  # each list replaces the key's limits of its kind (domain.budgets)
    cost_limits: tuple[Limit, ...]
    token_limits: tuple[Limit, ...]
    model_limits: dict[str, tuple[Limit, ...]]


@dataclasses.dataclass(frozen=True, slots=True)
class KeyUsage:
    """A key's spend: all time (the live counter) and in the current window of its
    `cost_limit_unit` (from recorded events, so it lags the counter by the event flush interval)."""

    key_id: str
    spend_micros: int
    window: Window | None = None
    window_spend_micros: int = 0


_LIMIT_LISTS = {"requests": "rate_limits", "cost": "cost_limits", "tokens": "token_limits"}


def _ttl_seconds(ttl: str) -> int:
    if not ttl:
        return 0
    try:
        return parse_ttl(ttl)
    except ValueError as exc:
        raise Invalid(f"ttl: {exc}", fields=["ttl"]) from exc


class AdminService(ConfigAdmin):
    def __init__(
        self,
        config: ConfigStore,
        events: EventStore,
        counters: Counters,
        registry: ProviderRegistry,
        on_change: Callable[[], Awaitable[None]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(config, on_change, clock)
        self._events = events
        self._counters = counters
        self._registry = registry

    def _now(self) -> int:
        return int(self._clock())

    # ---------------------------------------------------------------- keys

    async def create_key(self, secret: str, fields: KeyFields) -> Key:
        if not secret:
            raise Invalid("key: must not be empty", fields=["key"])
        now = self._now()
        values: dict[str, Any] = dict(fields)
        lists = {m: values.pop(f) for m, f in _LIMIT_LISTS.items() if f in values}
        if not values.get("revoked"):
            values["revoked_reason"] = ""
        key = Key(
            key_id=str(uuid.uuid4()), key_hash=hash_secret(secret), created_at=now, updated_at=now, **values
        )
        for metric, limits in lists.items():
            key = with_limits(key, metric, limits)
        key = dataclasses.replace(key, ttl_seconds=_ttl_seconds(key.ttl))
        await self._check_key(key)
        try:
            await self._config.create_key(key)
        except Conflict as exc:
            raise Invalid("key: a key with this secret already exists", fields=["key"]) from exc
        await self._on_change()
        return key

    async def update_key(self, key_id: str, changes: KeyFields) -> Key:
        current = await self._config.get_key(key_id)
        if current is None:
            raise NotFound(f"key {key_id} not found")
        values: dict[str, Any] = dict(changes)
        lists = {m: values.pop(f) for m, f in _LIMIT_LISTS.items() if f in values}
        key = dataclasses.replace(current, updated_at=max(self._now(), current.updated_at), **values)
        for metric, limits in lists.items():
            key = with_limits(key, metric, limits)
        if not key.revoked:
            key = dataclasses.replace(key, revoked_reason="")
        if "ttl" in changes:
            key = dataclasses.replace(key, ttl_seconds=_ttl_seconds(key.ttl))
        await self._check_key(key)
        await self._config.update_key(key)
        await self._on_change()
        return key

    async def delete_key(self, key_id: str) -> None:
        if not await self._config.delete_key(key_id):
            raise NotFound(f"key {key_id} not found")
        await self._on_change()

    async def get_key(self, key_id: str) -> Key:
        key = await self._config.get_key(key_id)
        if key is None:
            raise NotFound(f"key {key_id} not found")
        return key

    async def list_keys(
        self, *, tags: Sequence[str] = (), key_ids: Sequence[str] = (), provider: str = ""
    ) -> list[Key]:
        """All keys, narrowed by every filter given: all `tags`, any of `key_ids`, a setting of `provider`."""
        keys = await self._config.list_keys()
        if tags:
            wanted = set(tags)
            keys = [k for k in keys if wanted.issubset(k.tags)]
        if key_ids:
            ids = set(key_ids)
            keys = [k for k in keys if k.key_id in ids]
        if provider:
            of_provider = {s.id for s in await self._config.list_settings() if s.provider == provider}
            keys = [k for k in keys if of_provider.intersection(k.all_setting_ids)]
        return keys

    async def _check_key(self, key: Key) -> None:
        raise_if(key_problems(key))
        known = {s.id for s in await self._config.list_settings()}
        if key.setting_id and key.setting_id not in known:
            raise Invalid(
                f"settingId: provider setting {key.setting_id} does not exist", fields=["settingId"]
            )
        if key.policy_id and await self._config.get_policy(key.policy_id) is None:
            raise Invalid(f"policyId: policy {key.policy_id} does not exist", fields=["policyId"])
        missing = [s for s in key.setting_ids if s not in known]
        if missing:
            raise Invalid(
                f"settingIds: provider settings {', '.join(missing)} do not exist", fields=["settingIds"]
            )

    # ---------------------------------------------------------------- provider settings

    async def create_setting(
        self,
        provider: str,
        setting: Mapping[str, str],
        *,
        name: str = "",
        allowed_models: Sequence[str] = (),
        prices: Mapping[str, ModelPrice] | None = None,
    ) -> ProviderSetting:
        now = self._now()
        values = {k: v for k, v in setting.items() if v != ""}
        created = ProviderSetting(
            id=str(uuid.uuid4()),
            provider=provider,
            created_at=now,
            updated_at=now,
            name=name,
            setting=values,
            allowed_models=tuple(allowed_models),
            prices=dict(prices or {}),
        )
        await self._check_setting(created)
        await self._config.create_setting(created)
        await self._on_change()
        return created

    async def update_setting(
        self,
        setting_id: str,
        *,
        setting: Mapping[str, str] | None = None,
        name: str | None = None,
        allowed_models: Sequence[str] | None = None,
        prices: Mapping[str, ModelPrice] | None = None,
    ) -> ProviderSetting:
        """`setting` is merged key by key (an empty value removes the key); the rest replace."""
        current = await self._config.get_setting(setting_id)
        if current is None:
            raise NotFound(f"provider setting {setting_id} not found")
        merged = dict(current.setting)
        for k, v in (setting or {}).items():
            if v == "":
                merged.pop(k, None)
            else:
                merged[k] = v
        updated = dataclasses.replace(
            current,
            updated_at=max(self._now(), current.updated_at),
            setting=merged,
            name=current.name if name is None else name,
            allowed_models=current.allowed_models if allowed_models is None else tuple(allowed_models),
            prices=current.prices if prices is None else dict(prices),
        )
        await self._check_setting(updated)
        await self._config.update_setting(updated)
        await self._on_change()
        return updated

    async def list_settings(self, ids: Sequence[str] = ()) -> list[ProviderSetting]:
        if not ids:
            return await self._config.list_settings()
        found: list[ProviderSetting] = []
        for setting_id in dict.fromkeys(ids):
            setting = await self._config.get_setting(setting_id)
            if setting is None:
                raise NotFound(f"provider setting {setting_id} not found")
            found.append(setting)
        return found

    async def _check_setting(self, setting: ProviderSetting) -> None:
        if not setting.provider:
            raise Invalid("provider: is required", fields=["provider"])
        required = self._registry.required_setting(setting.provider)
        if required is None:
            custom = {p.provider: p for p in await self._config.list_custom_providers()}
            if setting.provider not in custom:
                supported = ", ".join([*self._registry.builtin_names, *sorted(custom)])
                raise Invalid(
                    f"provider: {setting.provider} is not supported (one of {supported})", fields=["provider"]
                )
            param = custom[setting.provider].authentication_param
            required = (param,) if param else ()
        raise_if(setting_problems(setting.provider, setting.setting, required))

    # ---------------------------------------------------------------- custom providers

    async def create_custom_provider(
        self, provider: str, route_configs: Sequence[RouteConfig], authentication_param: str = ""
    ) -> CustomProvider:
        now = self._now()
        created = CustomProvider(
            id=str(uuid.uuid4()),
            provider=provider.lower(),
            created_at=now,
            updated_at=now,
            route_configs=tuple(route_configs),
            authentication_param=authentication_param,
        )
        taken = [p.provider.lower() for p in await self._config.list_custom_providers()]
        raise_if(custom_provider_problems(created, taken, self._registry.builtin_names))
        try:
            await self._config.create_custom_provider(created)
        except Conflict as exc:
            raise Invalid(
                f"provider: a custom provider named {created.provider} already exists", fields=["provider"]
            ) from exc
        await self._on_change()
        return created

    async def update_custom_provider(
        self,
        provider_id: str,
        *,
        route_configs: Sequence[Mapping[str, Any]] | None = None,
        authentication_param: str | None = None,
    ) -> CustomProvider:
        """Each mapping in `route_configs` holds `path` and the fields to set: configs are merged
        by path (given fields replace, unknown paths are appended, order is kept)."""
        current = await self._config.get_custom_provider(provider_id)
        if current is None:
            raise NotFound(f"custom provider {provider_id} not found")
        configs = list(current.route_configs)
        for patch in route_configs or ():
            fields = dict(patch)
            path = fields.get("path", "")
            index = next((i for i, rc in enumerate(configs) if rc.path == path), None)
            if index is None:
                configs.append(dataclasses.replace(RouteConfig(path="", target_url=""), **fields))
            else:
                configs[index] = dataclasses.replace(configs[index], **fields)
        updated = dataclasses.replace(
            current,
            updated_at=max(self._now(), current.updated_at),
            route_configs=tuple(configs),
            authentication_param=(
                current.authentication_param if authentication_param is None else authentication_param
            ),
        )
        others = [
            p.provider.lower() for p in await self._config.list_custom_providers() if p.id != provider_id
        ]
        raise_if(custom_provider_problems(updated, others, self._registry.builtin_names))
        await self._config.update_custom_provider(updated)
        await self._on_change()
        return updated

    async def list_custom_providers(self) -> list[CustomProvider]:
        return await self._config.list_custom_providers()

    # ---------------------------------------------------------------- events and reporting

    async def list_events(self, query: EventQuery) -> list[Event]:
        problems = []
        if not 1 <= query.limit <= MAX_EVENTS_PAGE:
            problems.append(("limit", f"must be between 1 and {MAX_EVENTS_PAGE}"))
        if query.offset < 0:
            problems.append(("offset", "must not be negative"))
        if query.start is not None and query.end is not None and query.start > query.end:
            problems.append(("start", "must not be after end"))
        raise_if(problems)
        return await self._events.query_events(query)

    async def count_events(self, query: EventQuery) -> int:
        """How many events match `query` (limit and offset ignored): for pagination."""
        return await self._events.count_events(query)

    async def report(self, query: ReportQuery) -> Report:
        problems = []
        if query.increment <= 0:
            problems.append(("increment", "must be positive"))
        if query.start >= query.end:
            problems.append(("start", "must be before end"))
        if not problems and math.ceil((query.end - query.start) / query.increment) > MAX_REPORT_BUCKETS:
            problems.append(
                ("increment", f"gives more than {MAX_REPORT_BUCKETS} buckets between start and end")
            )
        raise_if(problems)
        return await self._events.report(query)

    async def key_spend(self, key_id: str) -> int:
        """A key's all-time spend in micro-dollars."""
        await self.get_key(key_id)
        return await self._counters.spend(key_id)

    async def key_usages(self, key_ids: Sequence[str] = ()) -> list[KeyUsage]:
        """Spend of every key (or of `key_ids`, each of which must exist), in `list_keys` order."""
        keys = await self._config.list_keys()
        if key_ids:
            by_id = {k.key_id: k for k in keys}
            missing = [k for k in key_ids if k not in by_id]
            if missing:
                raise NotFound(f"keys {', '.join(missing)} not found")
            keys = [by_id[k] for k in dict.fromkeys(key_ids)]
        now = self._clock()
        usages = []
        for key in keys:
            spend = await self._counters.spend(key.key_id)
            if not key.cost_limit_unit:
                usages.append(KeyUsage(key.key_id, spend))
                continue
            current = window(key.cost_limit_unit, now)
            _, window_spend = await self._events.key_usage(key.key_id, current.start)
            usages.append(KeyUsage(key.key_id, spend, current, window_spend))
        return usages
