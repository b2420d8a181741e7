"""Contract of `ports.ConfigStore` for routes (and the route fields of `ports.EventStore`'s events),
run against SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses

import pytest

from bricksllm.domain.models import Event
from bricksllm.domain.routes import Route, RouteStep
from bricksllm.errors import Conflict, NotFound
from bricksllm.ports import EventQuery
from bricksllm.storage.sql import SqlStores


def full_route(route_id: str = "route-1", path: str = "/chat/prod") -> Route:
    return Route(
        id=route_id,
        name="Production chat",
        path=path,
        created_at=1_700_000_000,
        updated_at=1_700_000_050,
        key_ids=("key-1", "key-2"),
        steps=(
            RouteStep(
                provider="openai", model="gpt-4o-mini", setting_id="set-1", retries=2,
                retry_interval="500ms", retry_interval_seconds=0.5, timeout="10s", timeout_seconds=10.0,
                params={"temperature": 0.2, "tools": [{"type": "function", "function": {"name": "f"}}]},
            ),
            RouteStep(provider="azure", model="prod-4o"),
        ),
        retry_strategy="exponential",
        cache_enabled=True,
        cache_ttl="2h",
        cache_ttl_seconds=7200,
    )  # fmt: skip


async def test_route_round_trips_with_every_field(stores: SqlStores) -> None:
    route = full_route()
    await stores.config.create_route(route)
    assert await stores.config.get_route(route.id) == route
    assert await stores.config.list_routes() == [route]


async def test_route_with_defaults_round_trips(stores: SqlStores) -> None:
    route = Route(id="r", name="n", path="/p", created_at=1, updated_at=1, steps=(RouteStep("openai", "m"),))
    await stores.config.create_route(route)
    assert await stores.config.get_route("r") == route


async def test_unknown_route_is_none_and_not_deletable(stores: SqlStores) -> None:
    assert await stores.config.get_route("nope") is None
    assert await stores.config.delete_route("nope") is False


async def test_a_taken_path_is_a_conflict_and_changes_nothing(stores: SqlStores) -> None:
    await stores.config.create_route(full_route())
    version = await stores.config.version()
    with pytest.raises(Conflict):
        await stores.config.create_route(full_route("route-2"))
    other = full_route("route-2", "/other")
    await stores.config.create_route(other)
    with pytest.raises(Conflict):
        await stores.config.update_route(dataclasses.replace(other, path="/chat/prod"))
    assert await stores.config.version() == version + 1
    assert [r.id for r in await stores.config.list_routes()] == ["route-1", "route-2"]
    assert (await stores.config.get_route("route-2")) == other


async def test_update_and_delete_route(stores: SqlStores) -> None:
    route = full_route()
    await stores.config.create_route(route)
    changed = dataclasses.replace(
        route,
        name="renamed",
        steps=(RouteStep("vllm", "llama"),),
        cache_enabled=False,
        updated_at=1_800_000_000,
    )
    await stores.config.update_route(changed)
    assert await stores.config.get_route(route.id) == changed
    with pytest.raises(NotFound):
        await stores.config.update_route(dataclasses.replace(route, id="ghost", path="/ghost"))
    version = await stores.config.version()
    assert await stores.config.delete_route(route.id) is True
    assert await stores.config.version() == version + 1
    assert await stores.config.get_route(route.id) is None


async def test_routes_are_in_the_snapshot(stores: SqlStores) -> None:
    route = full_route()
    await stores.config.create_route(route)
    snap = await stores.config.snapshot()
    assert list(snap.routes) == [route]
    assert snap.version == await stores.config.version()


async def test_route_fields_of_events_round_trip(stores: SqlStores) -> None:
    base = Event(
        id="e1", created_at=1_700_000_000, key_id="k1", provider="azure", model="prod-4o", status=200,
        path="/api/routes/chat/prod", method="POST", cost_micros=42,
    )  # fmt: skip
    routed = dataclasses.replace(base, id="e2", route_id="route-1", route_step=1, attempts=3)
    hit = dataclasses.replace(base, id="e3", route_id="route-1", route_step=0, cached=True, cost_micros=0)
    await stores.events.insert_events([base, routed, hit])
    found = {e.id: e for e in await stores.events.query_events(EventQuery())}
    assert found == {"e1": base, "e2": routed, "e3": hit}
