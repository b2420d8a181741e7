"""Limits enforced before forwarding, exactly, under concurrency; spend settled after the answer."""

from __future__ import annotations

import asyncio

import openai
import pytest

from bricksllm.storage.memory_counters import MemoryCounters
from bricksllm.telemetry.metrics import InMemoryMetrics
from tests.integration.conftest import GatewayFactory, Running, mid_minute_clock
from tests.integration.mock_openai import MockOpenAI
from tests.integration.test_proxy_quickstart import CHAT, sdk


async def test_fifty_concurrent_requests_against_a_limit_of_ten(
    gateway: Running, mock_openai: MockOpenAI
) -> None:
    setting_id = await gateway.create_setting(mock_openai.url)
    await gateway.create_key(setting_id, rateLimitOverTime=10, rateLimitUnit="m")
    client = sdk(gateway)

    async def one() -> int:
        try:
            await client.chat.completions.create(**CHAT)  # type: ignore[call-overload]
            return 200
        except openai.RateLimitError:
            return 429

    results = await asyncio.gather(*(one() for _ in range(50)))
    assert results.count(200) == 10 and results.count(429) == 40
    assert len(mock_openai.requests) == 10


SMALL = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "max_tokens": 7}


async def test_spend_limit_refuses_once_reached_and_says_not_to_retry(
    gateway: Running, mock_openai: MockOpenAI
) -> None:
    setting_id = await gateway.create_setting(mock_openai.url)
    key = await gateway.create_key(setting_id, costLimitInUsd=0.0002)  # 200 micro-dollars
    client = sdk(gateway)
    await client.chat.completions.create(**SMALL)  # type: ignore[call-overload]
    status, spend = await gateway.admin("GET", f"/api/reporting/keys/{key['keyId']}")
    # gpt-4o: 8 uncached x $2.50 + 3 cached x $1.25 + 7 x $10 per 1M tokens
    assert status == 200 and spend["costInMicroDollars"] == round(8 * 2.5 + 3 * 1.25 + 7 * 10)
    # 94 spent: the next call's estimate (its body's tokens x $2.50 + 7 x $10) does not fit in 200
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(**SMALL)  # type: ignore[call-overload]
    assert (
        "spend limit of $0.0002 reached (costLimitInUsd): spent $0.000094, reserved $0" in info.value.message
    )
    assert "$0.000106 left" in info.value.message
    headers = info.value.response.headers
    assert headers["x-should-retry"] == "false" and headers["retry-after"] == "3600"  # every 429 has one
    assert headers["x-ratelimit-limit-cost-usd"] == "0.0002"
    assert headers["x-ratelimit-remaining-cost-usd"] == "0.000106"
    assert info.value.body["code"] == "cost_limit_exceeded"  # type: ignore[index]
    assert len(mock_openai.requests) == 1


async def test_a_call_without_max_tokens_reserves_the_default_allowance(
    gateway: Running, mock_openai: MockOpenAI
) -> None:
    setting_id = await gateway.create_setting(mock_openai.url)
    await gateway.create_key(setting_id, costLimitInUsd=0.01)  # $0.01 < 1024 output tokens x $10/1M
    with pytest.raises(openai.RateLimitError, match=r"this call may cost up to \$0\.0102"):
        await sdk(gateway).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "x"}]
        )
    assert mock_openai.requests == []


async def test_windowed_spend_limit(gateway: Running, mock_openai: MockOpenAI) -> None:
    setting_id = await gateway.create_setting(mock_openai.url)
    await gateway.create_key(setting_id, costLimitInUsdOverTime=0.0002, costLimitInUsdUnit="h")
    client = sdk(gateway)
    await client.chat.completions.create(**SMALL)  # type: ignore[call-overload]
    with pytest.raises(openai.RateLimitError, match="per hour reached") as info:
        await client.chat.completions.create(**SMALL)  # type: ignore[call-overload]
    assert 1 <= int(info.value.response.headers["Retry-After"]) <= 3600
    assert info.value.response.headers["x-ratelimit-reset-cost"].endswith("s")


async def test_relimit_and_restart_keep_counting(
    start_gateway: GatewayFactory, mock_openai: MockOpenAI
) -> None:
    clock = mid_minute_clock()
    gw: Running = await start_gateway(clock=clock)
    setting_id = await gw.create_setting(mock_openai.url)
    key = await gw.create_key(setting_id, rateLimitOverTime=5, rateLimitUnit="m", costLimitInUsd=100)
    client = sdk(gw)
    for _ in range(3):
        await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    status, _ = await gw.admin("PATCH", f"/api/key-management/keys/{key['keyId']}", {"rateLimitOverTime": 3})
    assert status == 200
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    # restart on the same data directory: spend and this window's requests survive
    _, before = await gw.admin("GET", f"/api/reporting/keys/{key['keyId']}")
    await gw.close()
    gw2: Running = await start_gateway(clock=clock)
    _, after = await gw2.admin("GET", f"/api/reporting/keys/{key['keyId']}")
    assert after["costInMicroDollars"] == before["costInMicroDollars"] > 0
    with pytest.raises(openai.RateLimitError):
        await sdk(gw2).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])


async def test_unknown_model_is_priced_by_the_default_rule_and_counted(
    start_gateway: GatewayFactory, mock_openai: MockOpenAI
) -> None:
    metrics = InMemoryMetrics()
    gateway: Running = await start_gateway(metrics=metrics)
    setting_id = await gateway.create_setting(mock_openai.url)
    key = await gateway.create_key(setting_id)
    await sdk(gateway).chat.completions.create(
        model="my-new-model", messages=[{"role": "user", "content": "x"}]
    )
    _, spend = await gateway.admin("GET", f"/api/reporting/keys/{key['keyId']}")
    # the table's conservative default (gpt-4's $30 in / $60 out per 1M), never free
    assert spend["costInMicroDollars"] == 11 * 30 + 7 * 60
    assert metrics.counts["pricing.unknown_model"] == 1


async def test_per_setting_price_override_wins(gateway: Running, mock_openai: MockOpenAI) -> None:
    setting_id = await gateway.create_setting(
        mock_openai.url, prices={"gpt-4o": {"input": 1.0, "output": 2.0}}
    )
    key = await gateway.create_key(setting_id)
    await sdk(gateway).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    _, spend = await gateway.admin("GET", f"/api/reporting/keys/{key['keyId']}")
    assert spend["costInMicroDollars"] == 11 * 1 + 7 * 2


@pytest.mark.parametrize("end", ["client_gone", "upstream_error", "timeout"])
async def test_every_end_of_a_call_frees_its_reservation(
    gateway: Running, mock_openai: MockOpenAI, end: str
) -> None:
    setting_id = await gateway.create_setting(mock_openai.url)
    # room for one reservation of a gpt-4o-mini call with max_tokens 1000 ($0.60 per 1M out), not two
    await gateway.create_key(setting_id, costLimitInUsd=0.001)
    client = sdk(gateway)
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1000}
    if end == "client_gone":
        stream = await client.chat.completions.create(
            **body, stream=True, extra_headers={"x-mock": "slow-200"}
        )  # type: ignore[call-overload]
        async for _ in stream:
            break
        await stream.close()
        await asyncio.wait_for(mock_openai.stream_aborted.wait(), 5)
    elif end == "upstream_error":
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(**body, extra_headers={"x-mock": "error-500"})  # type: ignore[call-overload]
    else:
        with pytest.raises(openai.APIStatusError):
            await client.chat.completions.create(
                **body, extra_headers={"x-mock": "slow-2000", "x-request-timeout": "200ms"}
            )  # type: ignore[call-overload]
    counters = gateway.gateway.counters
    assert isinstance(counters, MemoryCounters)
    (key_id,) = gateway.gateway.config.current.keys_by_id
    for _ in range(100):  # the end is settled as the call finishes (a stream's a moment later)
        if not counters.reserved(f"{key_id}:spend"):
            break
        await asyncio.sleep(0.02)
    assert counters.reserved(f"{key_id}:spend") == 0  # released now, not at the end of its lease
    await client.chat.completions.create(**body)  # type: ignore[call-overload]  # admitted again
