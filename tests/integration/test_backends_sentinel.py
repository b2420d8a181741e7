"""Redis Sentinel (REDIS_SENTINELS + REDIS_MASTER_NAME): the gateway finds the master through the
sentinel and keeps admitting and settling after a failover, with the counters it had before.

The master, its replica and the sentinel are `redis-server` processes the test starts
(`redis_sentinel.py`); the shared Redis is never touched."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bricksllm.settings import RedisSettings, Settings
from tests.integration.conftest import GatewayFactory, Running, mid_minute_clock
from tests.integration.mock_openai import MockOpenAI
from tests.integration.redis_sentinel import MASTER_NAME, SentinelSetup

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}


@pytest.fixture
async def sentinel_setup() -> AsyncIterator[SentinelSetup]:
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed (CI must install it)")
        pytest.skip("redis-server is not installed")
    setup = SentinelSetup(binary)
    try:
        await asyncio.to_thread(setup.start)
        yield setup
    finally:
        await asyncio.to_thread(setup.close)


async def _call(gw: Running) -> int:
    async with gw.http.post(
        f"{gw.openai_base}/chat/completions", json=CHAT, headers={"Authorization": "Bearer my-secret-key"}
    ) as resp:
        await resp.read()
        return resp.status


async def test_the_gateway_follows_a_sentinel_failover(
    start_gateway: GatewayFactory, sentinel_setup: SentinelSetup, mock_openai: MockOpenAI, tmp_path: Path
) -> None:
    setup = sentinel_setup
    redis = RedisSettings(
        hosts=(),
        sentinels=(f"127.0.0.1:{setup.sentinel_port}",),
        master_name=MASTER_NAME,
        key_prefix=f"bricksllm-test-{uuid.uuid4().hex[:12]}",
        read_timeout=0.5,
        write_timeout=0.5,
    )
    gw = await start_gateway(Settings(data_dir=tmp_path / "data", redis=redis), clock=mid_minute_clock())
    setting_id = await gw.create_setting(mock_openai.url)
    key = await gw.create_key(setting_id, rateLimitOverTime=8, rateLimitUnit="m", costLimitInUsd=100)
    for _ in range(3):
        assert await _call(gw) == 200
    spent_before = await gw.gateway.counters.spend(key["keyId"])
    assert spent_before > 0
    assert setup.client(setup.master_port).dbsize() > 0  # the counters live on the first master

    await asyncio.to_thread(setup.failover)

    # the call in flight when the old master's connections are killed may fail once (503,
    # fail-closed); then calls are admitted against the new master, which has the counters
    statuses: list[int] = []
    for _ in range(100):
        statuses.append(await _call(gw))
        if statuses[-1] != 503:
            break
        await asyncio.sleep(0.1)
    assert statuses[-1] == 200, statuses
    assert statuses.count(503) <= 2, statuses
    while (status := await _call(gw)) == 200:
        statuses.append(status)
    assert status == 429  # exactly the 8 of the rate limit, counted across the failover
    assert statuses.count(200) == 8 - 3, statuses
    assert await gw.gateway.counters.spend(key["keyId"]) == spent_before * 8 // 3  # settled there
    new_master = setup.client(setup.replica_port)
    counted = [new_master.get(k) for k in new_master.scan_iter(f"{redis.key_prefix}*{key['keyId']}*rate*")]
    assert counted == [b"8"]  # the rate counter the gateway used lives on the new master
