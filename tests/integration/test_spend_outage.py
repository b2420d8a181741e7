"""Redis cut during traffic: no spend is lost, and counters agree with the events afterwards.

Calls admitted before the cut settle during it; calls admitted during it (fail-open mode) were
not counted. Both settlements wait in the limits service's backlog and are applied once Redis
is back, so the key's spend and request counters end equal to the sums of its recorded events.
The outage is a loopback forwarder the test closes; the real Redis is never stopped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

import pytest
import redis.asyncio as aioredis

from bricksllm.domain.limits import window
from bricksllm.settings import RedisSettings
from bricksllm.telemetry.metrics import InMemoryMetrics
from tests.integration.conftest import GatewayFactory, Running
from tests.integration.mock_openai import MockOpenAI
from tests.integration.tcp_forwarder import TcpForwarder

pytestmark = pytest.mark.redis
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "max_tokens": 50}


@pytest.fixture
async def redis_forwarder(redis_settings: RedisSettings) -> AsyncIterator[TcpForwarder]:
    fwd = TcpForwarder(redis_settings.hosts[0], redis_settings.port)
    await fwd.start()
    yield fwd
    await fwd.cut()


async def until(check: Callable[[], bool | Awaitable[bool]], within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result if isinstance(result, bool) else await result:
            return
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_a_redis_cut_during_traffic_loses_no_spend(
    start_gateway: GatewayFactory, redis_settings: RedisSettings, redis_forwarder: TcpForwarder,
    mock_openai: MockOpenAI,
) -> None:  # fmt: skip
    redis = replace(redis_settings, port=redis_forwarder.port, read_timeout=0.3, write_timeout=0.3)
    metrics = InMemoryMetrics()
    gw: Running = await start_gateway(redis=redis, redis_failure_mode="open", metrics=metrics)
    hour = window("h", time.time())
    key = await gw.create_key(
        await gw.create_setting(mock_openai.url),
        costLimitInUsd=100,
        rateLimitOverTime=10_000,
        rateLimitUnit="h",
    )
    client = gw.openai()

    async def calls(n: int) -> None:
        await asyncio.gather(*(
            client.chat.completions.create(**CHAT, extra_headers={"x-mock": "slow-300"})  # type: ignore[call-overload]
            for _ in range(n)
        ))  # fmt: skip

    before = asyncio.create_task(calls(30))  # admitted and in flight when Redis goes
    await until(lambda: len(mock_openai.requests) == 30)
    await redis_forwarder.cut()
    await calls(20)  # admitted uncounted (fail-open)
    await before
    limits = gw.gateway.limits
    assert limits.fail_open_admissions == 20
    assert len(limits.backlog) == 50  # every settlement is kept
    assert metrics.counts["limits.fail_open_admissions"] == 20

    await redis_forwarder.restore()
    await until(lambda: len(limits.backlog) == 0)
    await gw.flush_events()
    requests, cost = await gw.gateway.stores.events.key_usage(key["keyId"], hour.start)
    assert requests == 50 and cost == 50 * 94  # gpt-4o: 8 x $2.50 + 3 cached x $1.25 + 7 x $10 per 1M
    assert await gw.gateway.counters.spend(key["keyId"]) == cost
    raw = aioredis.Redis(host=redis_settings.hosts[0], port=redis_settings.port)
    try:
        prefix = f"{redis_settings.key_prefix}:c:{key['keyId']}"
        assert int(await raw.get(f"{prefix}:rate:h:{hour.start}") or 0) == requests
        assert int(await raw.get(f"{prefix}:spend:rs") or 0) == 0  # no reservation left behind
    finally:
        await raw.aclose()
    assert limits.backlog.dropped == 0


async def test_a_key_without_limits_never_waits_for_redis(
    start_gateway: GatewayFactory, redis_settings: RedisSettings, redis_forwarder: TcpForwarder,
    mock_openai: MockOpenAI,
) -> None:  # fmt: skip
    redis = replace(redis_settings, port=redis_forwarder.port, read_timeout=0.3, write_timeout=0.3)
    metrics = InMemoryMetrics()
    gw: Running = await start_gateway(redis=redis, metrics=metrics)  # fail-closed, the default
    key = await gw.create_key(await gw.create_setting(mock_openai.url))
    await redis_forwarder.cut()
    client = gw.openai()
    for _ in range(5):  # served while Redis is unreachable: admission never asks it
        await client.chat.completions.create(**CHAT)  # type: ignore[call-overload]
    assert metrics.counts["counters.unavailable"] == 0
    await redis_forwarder.restore()
    await until(lambda: len(gw.gateway.limits.backlog) == 0)  # its spend, kept for reporting, follows
    _, spend = await gw.admin("GET", f"/api/reporting/keys/{key['keyId']}")
    assert spend["costInMicroDollars"] == 5 * 94
