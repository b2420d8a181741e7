"""Spend limits hold under concurrency: a $1 budget hit by hundreds of calls at once.

Every call is reserved at admission (its body's size, or its tokens once that bound is refused,
x the input price + its max_tokens, or the default output allowance, x the output price) and
settled with what it actually cost, so the budget is overshot only by what calls use beyond
their estimate: here nothing, since the mock's usage stays within each estimate. Measured on the
production stack (4 `bricksllm serve` processes sharing PostgreSQL and Redis, 200 concurrent
calls each) and on the embedded default (one gateway, SQLite and in-process counters, 200
concurrent calls). The figures are printed.
Bounded: 800 and 200 calls, answered by the mock after 50 ms.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from bricksllm.settings import PostgresSettings, RedisSettings
from tests.integration.conftest import GatewayFactory, Running
from tests.integration.mock_openai import MockOpenAI
from tests.integration.test_production_mode import ADMIN_PASS, Instance, _start_instance, production_env

BUDGET = 1_000_000  # micro-dollars: $1
PROMPT = "hello " * 200  # about 200 tokens, so the estimate of the input is at least what is billed
USAGE = {"prompt_tokens": 200, "completion_tokens": 500, "total_tokens": 700}
CALL_MICROS = 200 * 2.5 + 500 * 10  # gpt-4o: $2.50 in, $10 out per 1M tokens = 5,500
DEFAULT_ALLOWANCE_MICROS = 1024 * 10  # LIMITS_DEFAULT_OUTPUT_TOKENS x gpt-4o's output price


def chat(max_tokens: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": PROMPT}]}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return body


async def bursts(
    http: aiohttp.ClientSession, urls: list[str], key: str, n: int, body: dict[str, Any]
) -> list[int]:
    """Bursts of `n` concurrent calls until one admits nothing (at most 16): a single burst leaves
    budget unused when estimates exceed what calls cost, later ones use it up (near the end one
    call a burst, the first to reserve its size bound)."""
    headers = {"Authorization": f"Bearer {key}", "x-mock": "slow-50"}

    async def one(i: int) -> int:
        async with http.post(urls[i % len(urls)] + "/chat/completions", json=body, headers=headers) as r:
            await r.read()
            return r.status

    statuses: list[int] = []
    async with asyncio.timeout(240):
        for _ in range(16):
            burst = await asyncio.gather(*(one(i) for i in range(n)))
            statuses += burst
            if 200 not in burst:
                break
    return statuses


def report(where: str, statuses: list[int], spent: int, bound: float) -> None:
    overshoot = spent - BUDGET
    print(
        f"\n{where}: {len(statuses)} calls in bursts against $1: {statuses.count(200)} admitted, "
        f"{statuses.count(429)} refused; spent ${spent / 1e6:.6f}, overshoot ${overshoot / 1e6:.6f} "
        f"(bound ${bound / 1e6:.6f})"
    )
    assert set(statuses) <= {200, 429}, statuses
    assert spent == statuses.count(200) * CALL_MICROS  # every admitted call settled, once
    assert statuses.count(429) > 0  # the budget was really contended
    assert overshoot <= bound
    assert spent > BUDGET - 2 * DEFAULT_ALLOWANCE_MICROS  # and was used up, not refused early


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.parametrize("max_tokens", [500, None], ids=["max_tokens", "default_allowance"])
async def test_four_instances_on_postgres_and_redis(
    pg_settings: PostgresSettings,
    redis_settings: RedisSettings,
    mock_openai: MockOpenAI,
    max_tokens: int | None,
) -> None:
    mock_openai.usage_override = USAGE
    env = production_env(pg_settings, redis_settings)
    instances: list[Instance] = []
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    try:
        instances.append(await _start_instance(env, 60))  # the first one migrates the schema
        started = await asyncio.gather(*(_start_instance(env, 60) for _ in range(3)), return_exceptions=True)
        instances += [i for i in started if isinstance(i, Instance)]
        assert len(instances) == 4, started
        admin = {"X-API-KEY": ADMIN_PASS}
        base = instances[0].admin
        setting = {"provider": "openai", "setting": {"apikey": "sk-x", "url": mock_openai.url}}
        async with http.put(base + "/api/provider-settings", json=setting, headers=admin) as r:
            setting_id = (await r.json())["id"]
        key = {"name": "budget", "key": "budget-key", "settingId": setting_id, "costLimitInUsd": 1.0}
        async with http.put(base + "/api/key-management/keys", json=key, headers=admin) as r:
            key_id = (await r.json())["keyId"]
        for inst in instances:  # every instance knows the key (an unknown route: 404, not 401)
            for _ in range(200):
                async with http.post(
                    inst.openai + "/nope", headers={"Authorization": "Bearer budget-key"}
                ) as r:
                    if r.status == 404:
                        break
                await asyncio.sleep(0.02)
        statuses = await bursts(http, [i.openai for i in instances], "budget-key", 800, chat(max_tokens))
        async with http.get(f"{base}/api/reporting/keys/{key_id}", headers=admin) as r:
            spent = (await r.json())["costInMicroDollars"]
        bound = CALL_MICROS if max_tokens else DEFAULT_ALLOWANCE_MICROS
        report(f"4 instances (PostgreSQL + Redis), {'max_tokens' if max_tokens else 'no max_tokens'}",
               statuses, spent, bound)  # fmt: skip
    finally:
        await http.close()
        for inst in instances:
            inst.process.terminate()
        for inst in instances:
            await inst.process.wait()


@pytest.mark.parametrize("max_tokens", [500, None], ids=["max_tokens", "default_allowance"])
async def test_the_embedded_default(
    start_gateway: GatewayFactory, mock_openai: MockOpenAI, max_tokens: int | None
) -> None:
    mock_openai.usage_override = USAGE
    gw: Running = await start_gateway()
    key = await gw.create_key(await gw.create_setting(mock_openai.url), "budget-key", costLimitInUsd=1.0)
    url = f"{gw.proxy_url}/api/providers/openai/v1"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        statuses = await bursts(http, [url], "budget-key", 200, chat(max_tokens))
    _, spend = await gw.admin("GET", f"/api/reporting/keys/{key['keyId']}")
    bound = CALL_MICROS if max_tokens else DEFAULT_ALLOWANCE_MICROS
    report(f"embedded (SQLite + in-process), {'max_tokens' if max_tokens else 'no max_tokens'}",
           statuses, spend["costInMicroDollars"], bound)  # fmt: skip
