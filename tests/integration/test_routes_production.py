"""Routes in production mode: two gateway instances on the real PostgreSQL and Redis share the
routes, the cache (a hit on one for a request first seen by the other) and the circuit breaker,
and a deleted route is refused by both within a second."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from bricksllm.settings import PostgresSettings, RedisSettings, Settings
from tests.integration.conftest import GatewayFactory, Running
from tests.integration.mock_azure import UPSTREAM_KEY, MockAzure
from tests.integration.mock_scripted import ScriptedOpenAI

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
CHAT = {"model": "x", "messages": [{"role": "user", "content": "hello"}]}
SECRET = "route-key"


@pytest.fixture
async def pair(
    start_gateway: GatewayFactory,
    tmp_path: Path,
    pg_settings: PostgresSettings,
    redis_settings: RedisSettings,
) -> tuple[Running, Running]:
    settings = Settings(data_dir=tmp_path / "data", postgres=pg_settings, redis=redis_settings)
    first = await start_gateway(settings, route_breaker_failures=1, route_breaker_cooldown=60.0)
    second = await start_gateway(settings, route_breaker_failures=1, route_breaker_cooldown=60.0)
    return first, second


async def call(gw: Running, path: str, body: Any = CHAT) -> tuple[int, str, bytes]:
    url = f"{gw.proxy_url}/api/routes{path}/chat/completions"
    async with gw.http.post(url, json=body, headers={"Authorization": f"Bearer {SECRET}"}) as resp:
        return resp.status, resp.headers.get("x-cache", ""), await resp.read()


async def wait_for_status(gw: Running, path: str, status: int, within: float) -> float:
    start = time.perf_counter()
    while (await call(gw, path))[0] != status:
        assert time.perf_counter() - start < within, f"{path} did not answer {status} in time"
        await asyncio.sleep(0.005)
    return time.perf_counter() - start


async def make_route(
    gw: Running, upstream: str, steps: list[dict[str, Any]], **extra: Any
) -> tuple[str, str]:
    setting_id = await gw.create_setting(upstream)
    key = await gw.create_key(setting_id, secret=SECRET)
    body = {"name": "r", "path": "/shared", "keyIds": [key["keyId"]], "steps": steps, **extra}
    status, route = await gw.admin("POST", "/api/routes", body)
    assert status == 200, route
    return route["id"], key["keyId"]


async def test_the_cache_is_shared_and_a_delete_reaches_both(
    pair: tuple[Running, Running], scripted: ScriptedOpenAI
) -> None:
    first, second = pair
    route_id, _ = await make_route(
        first, scripted.url, [{"provider": "openai", "model": "gpt-4o-mini"}], cacheConfig={"enabled": True}
    )
    await wait_for_status(second, "/shared", 200, within=5.0)  # the second instance knows the route
    scripted.requests.clear()
    body = {**CHAT, "temperature": 0.7}
    status, cache, answer = await call(first, "/shared", body)
    assert (status, cache) == (200, "miss")
    status, cache, cached = await call(second, "/shared", body)
    assert (status, cache) == (200, "hit") and cached == answer
    assert len(scripted.requests) == 1
    assert (await first.admin("DELETE", f"/api/routes/{route_id}"))[0] == 200
    deleted_after = await wait_for_status(second, "/shared", 404, within=1.0)
    assert (await call(first, "/shared"))[0] == 404
    print(f"\nroute delete propagated in {deleted_after * 1000:.0f} ms")


async def test_the_circuit_breaker_is_shared(
    pair: tuple[Running, Running], scripted: ScriptedOpenAI, mock_azure: MockAzure
) -> None:
    first, second = pair
    status, azure = await first.admin(
        "PUT",
        "/api/provider-settings",
        {"provider": "azure", "setting": {"apikey": UPSTREAM_KEY, "url": mock_azure.url}},
    )
    assert status == 200
    steps = [
        {"provider": "openai", "model": "gpt-4o-mini"},
        {"provider": "azure", "model": "prod-4o", "settingId": azure["id"]},
    ]
    _, key_id = await make_route(first, scripted.url, steps)
    scripted.script = ["503"]  # one failure opens the breaker (ROUTE_BREAKER_FAILURES=1)
    assert (await call(first, "/shared"))[0] == 200
    await wait_for_status(second, "/shared", 200, within=5.0)  # skips OpenAI: answered by Azure
    assert len(scripted.requests) == 1 and len(mock_azure.requests) == 2
    for gw in pair:
        await gw.flush_events()
    _, events = await second.admin("GET", f"/api/events?keyIds={key_id}")
    assert sorted((e["route_step"], e["attempts"]) for e in events) == [(1, 1), (1, 2)]
