"""`SqlConfigStore`: keys, provider settings, custom providers and policies in SQLite or PostgreSQL.

Every write runs in one transaction that also increments `config_version` (and, on PostgreSQL,
sends `pg_notify` with the new version), so a reader that sees version v sees every write up to
v, and other instances hear about changes at commit. Rows are converted to and from the frozen
domain dataclasses here; list fields are stored as JSON arrays, prices and route configs as
JSON objects.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bricksllm.domain.models import (
    CustomProvider,
    Key,
    Limit,
    ModelPrice,
    PathConfig,
    PolicyRecord,
    ProviderSetting,
    RouteConfig,
)
from bricksllm.domain.routes import Route, RouteStep
from bricksllm.errors import NotFound
from bricksllm.ports import ConfigSnapshot
from bricksllm.storage.sql_engine import translate_errors, write_transaction
from bricksllm.storage.sql_limits import budgets_from_rows, key_limits_fields, key_limits_json, limits_json
from bricksllm.storage.tables import (
    config_version,
    custom_providers,
    keys,
    policies,
    provider_settings,
    routes,
    tag_budgets,
)

if TYPE_CHECKING:
    from bricksllm.storage.sql_listen import ConfigListener

T = TypeVar("T")


def _build(cls: type[T], data: Mapping[str, Any]) -> T:
    """A dataclass from a stored JSON object, ignoring fields this version does not know."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in data.items() if k in names})


def key_row(key: Key) -> dict[str, Any]:
    row = {f.name: getattr(key, f.name) for f in dataclasses.fields(Key)}
    row["tags"] = list(key.tags)
    row["setting_ids"] = list(key.setting_ids)
    row["allowed_paths"] = [dataclasses.asdict(p) for p in key.allowed_paths]
    del row["more_limits"], row["model_limits"]
    row["limits"] = key_limits_json(key)
    return row


def key_from_row(row: sa.Row[Any]) -> Key:
    m = row._mapping
    return Key(
        **{k: m[k] for k in m if k not in {"tags", "setting_ids", "allowed_paths", "limits"}},
        **key_limits_fields(m.get("limits")),
        tags=tuple(m["tags"]),
        setting_ids=tuple(m["setting_ids"]),
        allowed_paths=tuple(_build(PathConfig, p) for p in m["allowed_paths"]),
    )


def setting_row(setting: ProviderSetting) -> dict[str, Any]:
    return {
        "id": setting.id,
        "provider": setting.provider,
        "name": setting.name,
        "setting": dict(setting.setting),
        "allowed_models": list(setting.allowed_models),
        "prices": {model: dataclasses.asdict(price) for model, price in setting.prices.items()},
        "created_at": setting.created_at,
        "updated_at": setting.updated_at,
    }


def setting_from_row(row: sa.Row[Any]) -> ProviderSetting:
    m = row._mapping
    return ProviderSetting(
        id=m["id"],
        provider=m["provider"],
        name=m["name"],
        setting=dict(m["setting"]),
        allowed_models=tuple(m["allowed_models"]),
        prices={model: _build(ModelPrice, price) for model, price in m["prices"].items()},
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def provider_row(provider: CustomProvider) -> dict[str, Any]:
    return {
        "id": provider.id,
        "provider": provider.provider.lower(),
        "route_configs": [dataclasses.asdict(r) for r in provider.route_configs],
        "authentication_param": provider.authentication_param,
        "created_at": provider.created_at,
        "updated_at": provider.updated_at,
    }


def provider_from_row(row: sa.Row[Any]) -> CustomProvider:
    m = row._mapping
    return CustomProvider(
        id=m["id"],
        provider=m["provider"],
        route_configs=tuple(_build(RouteConfig, r) for r in m["route_configs"]),
        authentication_param=m["authentication_param"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def policy_row(policy: PolicyRecord) -> dict[str, Any]:
    return {
        "id": policy.id,
        "name": policy.name,
        "tags": list(policy.tags),
        "document": dict(policy.document),
        "created_at": policy.created_at,
        "updated_at": policy.updated_at,
    }


def policy_from_row(row: sa.Row[Any]) -> PolicyRecord:
    m = row._mapping
    return PolicyRecord(
        id=m["id"],
        name=m["name"],
        tags=tuple(m["tags"]),
        document=dict(m["document"]),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def route_row(route: Route) -> dict[str, Any]:
    return {
        "id": route.id,
        "name": route.name,
        "path": route.path,
        "key_ids": list(route.key_ids),
        "steps": [dataclasses.asdict(step) for step in route.steps],
        "retry_strategy": route.retry_strategy,
        "cache_config": {
            "enabled": route.cache_enabled, "ttl": route.cache_ttl, "ttl_seconds": route.cache_ttl_seconds
        },
        "created_at": route.created_at,
        "updated_at": route.updated_at,
    }  # fmt: skip


def route_from_row(row: sa.Row[Any]) -> Route:
    m = row._mapping
    cache = m["cache_config"]
    return Route(
        id=m["id"],
        name=m["name"],
        path=m["path"],
        key_ids=tuple(m["key_ids"]),
        steps=tuple(_build(RouteStep, step) for step in m["steps"]),
        retry_strategy=m["retry_strategy"],
        cache_enabled=bool(cache.get("enabled", False)),
        cache_ttl=cache.get("ttl", ""),
        cache_ttl_seconds=int(cache.get("ttl_seconds", 0)),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


_KEYS = sa.select(keys).order_by(keys.c.created_at, keys.c.key_id)
_SETTINGS = sa.select(provider_settings).order_by(provider_settings.c.created_at, provider_settings.c.id)
_PROVIDERS = sa.select(custom_providers).order_by(custom_providers.c.created_at, custom_providers.c.id)
_POLICIES = sa.select(policies).order_by(policies.c.created_at, policies.c.id)
_ROUTES = sa.select(routes).order_by(routes.c.created_at, routes.c.id)
_BUDGETS = sa.select(tag_budgets).order_by(tag_budgets.c.tag)
_VERSION = sa.select(config_version.c.version).where(config_version.c.id == 1)


class SqlConfigStore:
    """Implements `ports.ConfigStore`. `channel`/`listen_args` are given on PostgreSQL only."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        channel: str | None = None,
        listen_args: Mapping[str, Any] | None = None,
    ) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        self._channel = channel if self._postgres else None
        self._listen_args = dict(listen_args or {})
        self._listeners: list[ConfigListener] = []

    # -- writes ---------------------------------------------------------------------------

    async def _bump(self, conn: AsyncConnection) -> None:
        version = await conn.scalar(
            sa.update(config_version)
            .where(config_version.c.id == 1)
            .values(version=config_version.c.version + 1)
            .returning(config_version.c.version)
        )
        if self._channel:
            await conn.execute(sa.select(sa.func.pg_notify(self._channel, str(version))))

    async def _insert(self, table: sa.Table, row: dict[str, Any], action: str, conflict: str) -> None:
        async with translate_errors(action, conflict=conflict), write_transaction(self._engine) as conn:
            await conn.execute(table.insert().values(**row))
            await self._bump(conn)

    async def _update(
        self, table: sa.Table, id_column: str, row: dict[str, Any], action: str, conflict: str
    ) -> None:
        async with translate_errors(action, conflict=conflict), write_transaction(self._engine) as conn:
            stmt = table.update().where(table.c[id_column] == row[id_column]).values(**row)
            if (await conn.execute(stmt)).rowcount == 0:
                raise NotFound(f"{action}: {row[id_column]} does not exist")
            await self._bump(conn)

    async def create_key(self, key: Key) -> None:
        await self._insert(keys, key_row(key), "creating a key", "a key with this secret already exists")

    async def update_key(self, key: Key) -> None:
        await self._update(
            keys, "key_id", key_row(key), "updating a key", "a key with this secret already exists"
        )

    async def delete_key(self, key_id: str) -> bool:
        async with translate_errors("deleting a key"), write_transaction(self._engine) as conn:
            deleted = (await conn.execute(sa.delete(keys).where(keys.c.key_id == key_id))).rowcount
            if deleted:
                await self._bump(conn)
        return bool(deleted)

    async def create_setting(self, setting: ProviderSetting) -> None:
        await self._insert(
            provider_settings,
            setting_row(setting),
            "creating a provider setting",
            "a provider setting with this id already exists",
        )

    async def update_setting(self, setting: ProviderSetting) -> None:
        await self._update(
            provider_settings,
            "id",
            setting_row(setting),
            "updating a provider setting",
            "a provider setting with this id already exists",
        )

    async def create_custom_provider(self, provider: CustomProvider) -> None:
        await self._insert(
            custom_providers,
            provider_row(provider),
            "creating a custom provider",
            f"a custom provider named {provider.provider.lower()!r} already exists",
        )

    async def update_custom_provider(self, provider: CustomProvider) -> None:
        await self._update(
            custom_providers,
            "id",
            provider_row(provider),
            "updating a custom provider",
            f"a custom provider named {provider.provider.lower()!r} already exists",
        )

    async def create_policy(self, policy: PolicyRecord) -> None:
        await self._insert(policies, policy_row(policy), "creating a policy", "a policy with this id exists")

    async def update_policy(self, policy: PolicyRecord) -> None:
        await self._update(
            policies, "id", policy_row(policy), "updating a policy", "a policy with this id exists"
        )

    async def delete_policy(self, policy_id: str) -> bool:
        async with translate_errors("deleting a policy"), write_transaction(self._engine) as conn:
            deleted = (await conn.execute(sa.delete(policies).where(policies.c.id == policy_id))).rowcount
            if deleted:
                await self._bump(conn)
        return bool(deleted)

    async def create_route(self, route: Route) -> None:
        await self._insert(routes, route_row(route), "creating a route", f"the path {route.path} has a route")

    async def update_route(self, route: Route) -> None:
        await self._update(
            routes, "id", route_row(route), "updating a route", f"the path {route.path} has a route"
        )

    async def delete_route(self, route_id: str) -> bool:
        async with translate_errors("deleting a route"), write_transaction(self._engine) as conn:
            deleted = (await conn.execute(sa.delete(routes).where(routes.c.id == route_id))).rowcount
            if deleted:
                await self._bump(conn)
        return bool(deleted)

    # -- reads ----------------------------------------------------------------------------

    async def _one(self, stmt: sa.Select[Any], action: str) -> sa.Row[Any] | None:
        async with translate_errors(action), self._engine.connect() as conn:
            return (await conn.execute(stmt)).first()

    async def _all(self, stmt: sa.Select[Any], action: str) -> list[sa.Row[Any]]:
        async with translate_errors(action), self._engine.connect() as conn:
            return list((await conn.execute(stmt)).all())

    async def get_key(self, key_id: str) -> Key | None:
        row = await self._one(sa.select(keys).where(keys.c.key_id == key_id), "reading a key")
        return key_from_row(row) if row else None

    async def list_keys(self) -> list[Key]:
        return [key_from_row(r) for r in await self._all(_KEYS, "listing keys")]

    async def get_setting(self, setting_id: str) -> ProviderSetting | None:
        stmt = sa.select(provider_settings).where(provider_settings.c.id == setting_id)
        row = await self._one(stmt, "reading a provider setting")
        return setting_from_row(row) if row else None

    async def list_settings(self) -> list[ProviderSetting]:
        return [setting_from_row(r) for r in await self._all(_SETTINGS, "listing provider settings")]

    async def get_custom_provider(self, provider_id: str) -> CustomProvider | None:
        stmt = sa.select(custom_providers).where(custom_providers.c.id == provider_id)
        row = await self._one(stmt, "reading a custom provider")
        return provider_from_row(row) if row else None

    async def list_custom_providers(self) -> list[CustomProvider]:
        return [provider_from_row(r) for r in await self._all(_PROVIDERS, "listing custom providers")]

    async def get_policy(self, policy_id: str) -> PolicyRecord | None:
        row = await self._one(sa.select(policies).where(policies.c.id == policy_id), "reading a policy")
        return policy_from_row(row) if row else None

    async def list_policies(self) -> list[PolicyRecord]:
        return [policy_from_row(r) for r in await self._all(_POLICIES, "listing policies")]

    async def get_route(self, route_id: str) -> Route | None:
        row = await self._one(sa.select(routes).where(routes.c.id == route_id), "reading a route")
        return route_from_row(row) if row else None

    async def list_routes(self) -> list[Route]:
        return [route_from_row(r) for r in await self._all(_ROUTES, "listing routes")]

    async def put_budget(self, tag: str, limits: tuple[Limit, ...], now: int) -> None:
        row = {"tag": tag, "limits": limits_json(limits), "created_at": now, "updated_at": now}
        async with translate_errors("writing a tag budget"), write_transaction(self._engine) as conn:
            stmt = tag_budgets.update().where(tag_budgets.c.tag == tag)
            updated = await conn.execute(stmt.values(limits=row["limits"], updated_at=now))
            if not updated.rowcount:
                await conn.execute(tag_budgets.insert().values(**row))
            await self._bump(conn)

    async def delete_budget(self, tag: str) -> bool:
        async with translate_errors("deleting a tag budget"), write_transaction(self._engine) as conn:
            deleted = (await conn.execute(sa.delete(tag_budgets).where(tag_budgets.c.tag == tag))).rowcount
            if deleted:
                await self._bump(conn)
        return bool(deleted)

    async def list_budgets(self) -> dict[str, tuple[Limit, ...]]:
        return budgets_from_rows(await self._all(_BUDGETS, "listing tag budgets"))

    async def version(self) -> int:
        async with translate_errors("reading the config version"), self._engine.connect() as conn:
            return int(await conn.scalar(_VERSION) or 0)

    async def snapshot(self) -> ConfigSnapshot:
        """Version and all objects from one database snapshot (REPEATABLE READ on PostgreSQL;
        a single read transaction on SQLite), so they are mutually consistent."""
        async with translate_errors("loading the configuration"), self._engine.connect() as conn:
            if self._postgres:
                await conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            async with conn.begin():
                version = int(await conn.scalar(_VERSION) or 0)
                key_rows = (await conn.execute(_KEYS)).all()
                setting_rows = (await conn.execute(_SETTINGS)).all()
                provider_rows = (await conn.execute(_PROVIDERS)).all()
                policy_rows = (await conn.execute(_POLICIES)).all()
                route_rows = (await conn.execute(_ROUTES)).all()
                budget_rows = (await conn.execute(_BUDGETS)).all()
        return ConfigSnapshot(
            version=version,
            keys=[key_from_row(r) for r in key_rows],
            settings=[setting_from_row(r) for r in setting_rows],
            custom_providers=[provider_from_row(r) for r in provider_rows],
            policies=[policy_from_row(r) for r in policy_rows],
            routes=[route_from_row(r) for r in route_rows],
            budgets=budgets_from_rows(budget_rows),
        )

    # -- change notification ---------------------------------------------------------------

    async def listen(self, on_change: Callable[[], None]) -> None:
        """PostgreSQL: LISTEN on a dedicated connection (reconnecting quietly) and call
        `on_change` on every committed config write, from any instance. SQLite has no
        notifications: a no-op, callers poll `version()` (cheap: one row)."""
        if not self._channel:
            return
        from bricksllm.storage.sql_listen import ConfigListener  # asyncpg: loaded on PostgreSQL only

        listener = ConfigListener(self._channel, self._listen_args, on_change)
        self._listeners.append(listener)
        await listener.start()

    async def close(self) -> None:
        listeners, self._listeners = self._listeners, []
        for listener in listeners:
            await listener.close()
