"""What the gateway does when PostgreSQL or Redis goes away during traffic.

The outage is simulated with a loopback forwarder between the gateway and the real server, so the
servers other tests use are never stopped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import openai
import pytest

from bricksllm.settings import PostgresSettings, RedisSettings, Settings
from bricksllm.telemetry.metrics import InMemoryMetrics
from tests.integration.conftest import GatewayFactory, Running
from tests.integration.mock_openai import MockOpenAI
from tests.integration.tcp_forwarder import TcpForwarder

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}


@pytest.fixture
async def pg_forwarder(pg_settings: PostgresSettings) -> AsyncIterator[TcpForwarder]:
    fwd = TcpForwarder(pg_settings.hosts[0], pg_settings.port)
    await fwd.start()
    yield fwd
    await fwd.cut()


@pytest.fixture
async def redis_forwarder(redis_settings: RedisSettings) -> AsyncIterator[TcpForwarder]:
    fwd = TcpForwarder(redis_settings.hosts[0], redis_settings.port)
    await fwd.start()
    yield fwd
    await fwd.cut()


async def test_postgres_outage_during_traffic_loses_no_event(
    start_gateway: GatewayFactory, pg_settings: PostgresSettings, pg_forwarder: TcpForwarder,
    mock_openai: MockOpenAI, tmp_path: object,
) -> None:  # fmt: skip
    pg = replace(pg_settings, port=pg_forwarder.port)
    gw: Running = await start_gateway(Settings(postgres=pg, config_refresh_interval=0.2))
    key = await gw.create_key(await gw.create_setting(mock_openai.url))
    client = gw.openai()
    await client.chat.completions.create(**CHAT)  # type: ignore[call-overload]
    await gw.flush_events()

    await pg_forwarder.cut()
    for _ in range(20):  # the proxy keeps serving from its in-memory configuration
        await client.chat.completions.create(**CHAT)  # type: ignore[call-overload]
    assert not await gw.gateway.events.flush()  # the database is really unreachable
    assert gw.gateway.events.pending >= 20
    status, problem = await gw.admin(
        "PUT", "/api/provider-settings", {"provider": "openai", "setting": {"apikey": "k"}}
    )
    assert status == 503 and problem["type"] == "/errors/unavailable"
    assert "k" not in problem["detail"].split()  # no request value echoed
    await pg_forwarder.restore()

    async def all_written() -> int:
        for _ in range(200):
            if gw.gateway.events.pending == 0:
                break
            await asyncio.sleep(0.05)
        status, events = await gw.admin("GET", f"/api/events?keyIds={key['keyId']}&limit=1000")
        assert status == 200, events
        return len(events)

    assert await all_written() == 21


async def test_redis_outage_fails_closed_with_a_clear_503(
    start_gateway: GatewayFactory, redis_settings: RedisSettings, redis_forwarder: TcpForwarder,
    mock_openai: MockOpenAI,
) -> None:  # fmt: skip
    redis = replace(redis_settings, port=redis_forwarder.port, read_timeout=0.3, write_timeout=0.3)
    metrics = InMemoryMetrics()
    gw: Running = await start_gateway(redis=redis, metrics=metrics)
    await gw.create_key(await gw.create_setting(mock_openai.url), rateLimitOverTime=100, rateLimitUnit="m")
    client = gw.openai()
    await client.chat.completions.create(**CHAT)  # type: ignore[call-overload]
    await redis_forwarder.cut()
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(**CHAT)  # type: ignore[call-overload]
    assert info.value.status_code == 503
    assert "limits cannot be checked" in info.value.message
    assert metrics.counts["counters.unavailable"] == 1
    assert len([r for r in mock_openai.requests if r.path == "/v1/chat/completions"]) == 1
    await redis_forwarder.restore()
    await client.chat.completions.create(**CHAT)  # type: ignore[call-overload]


async def test_redis_outage_can_fail_open(
    start_gateway: GatewayFactory, redis_settings: RedisSettings, redis_forwarder: TcpForwarder,
    mock_openai: MockOpenAI,
) -> None:  # fmt: skip
    redis = replace(redis_settings, port=redis_forwarder.port, read_timeout=0.3, write_timeout=0.3)
    metrics = InMemoryMetrics()
    gw: Running = await start_gateway(redis=redis, redis_failure_mode="open", metrics=metrics)
    await gw.create_key(await gw.create_setting(mock_openai.url), rateLimitOverTime=100, rateLimitUnit="m")
    await redis_forwarder.cut()
    result = await gw.openai().chat.completions.create(**CHAT)  # type: ignore[call-overload]
    assert result.choices[0].message.content
    assert metrics.counts["counters.unavailable"] == 1
