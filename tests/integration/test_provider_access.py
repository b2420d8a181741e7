"""Every access rule, on every provider, exactly as on OpenAI: a refused call gets the status and
the error shape of that provider's SDK, and never reaches the upstream.

One matrix: (openai, anthropic, azure, vllm, deepinfra, custom) x (unknown key, revoked, expired,
allowedPaths, allowedModels, no setting for the provider, rate limit, spend limit).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.integration.conftest import GatewayFactory, Running, mid_minute_clock
from tests.integration.provider_harness import PROVIDERS, Upstream, put_setting, serving

T0 = 1_800_000_010.0  # ten seconds into a UTC minute


@pytest.fixture(params=PROVIDERS)
async def upstream(request: pytest.FixtureRequest) -> AsyncIterator[Upstream]:
    async with serving(request.param) as up:
        yield up


async def _refused(gw: Running, up: Upstream, status: int, key: str = "my-secret-key") -> str:
    got, body = await up.call(gw, key)
    assert got == status, body
    return up.error(status, body)


async def test_unknown_key(start_gateway: GatewayFactory, upstream: Upstream) -> None:
    gw: Running = await start_gateway()
    await gw.create_key(await upstream.configure(gw))
    assert "key is not found" in await _refused(gw, upstream, 401, key="not-a-key")
    assert upstream.requests == []


async def test_revoked_key(start_gateway: GatewayFactory, upstream: Upstream) -> None:
    gw: Running = await start_gateway()
    key = await gw.create_key(await upstream.configure(gw))
    status, _ = await gw.admin("PATCH", f"/api/key-management/keys/{key['keyId']}", {"revoked": True})
    assert status == 200
    assert "revoked" in await _refused(gw, upstream, 401)
    assert upstream.requests == []


async def test_expired_key(start_gateway: GatewayFactory, upstream: Upstream) -> None:
    now = [T0]
    gw: Running = await start_gateway(clock=lambda: now[0])
    await gw.create_key(await upstream.configure(gw), ttl="1h")
    assert (await upstream.call(gw))[0] == 200
    now[0] += 3600  # exactly at expiry
    assert "expired" in await _refused(gw, upstream, 401)
    assert len(upstream.requests) == 1


async def test_path_not_allowed(start_gateway: GatewayFactory, upstream: Upstream) -> None:
    gw: Running = await start_gateway()
    elsewhere = {"path": "/api/providers/openai/v1/embeddings", "method": "POST"}
    await gw.create_key(await upstream.configure(gw), allowedPaths=[elsewhere])
    assert "path is not allowed" in await _refused(gw, upstream, 403)
    assert upstream.requests == []


async def test_path_allowed_by_its_pattern(start_gateway: GatewayFactory, upstream: Upstream) -> None:
    gw: Running = await start_gateway()
    path = upstream.path.partition("?")[0].replace("/prod-4o/", "/:deployment_id/")
    await gw.create_key(await upstream.configure(gw), allowedPaths=[{"path": path, "method": "POST"}])
    status, body = await upstream.call(gw)
    assert status == 200, body
    assert len(upstream.requests) == 1


async def test_model_not_allowed(start_gateway: GatewayFactory, upstream: Upstream) -> None:
    gw: Running = await start_gateway()
    await gw.create_key(await upstream.configure(gw, allowedModels=["some-other-model"]))
    assert "model is not allowed" in await _refused(gw, upstream, 403)
    assert upstream.requests == []


async def test_no_setting_for_the_provider(start_gateway: GatewayFactory, upstream: Upstream) -> None:
    gw: Running = await start_gateway()
    await upstream.configure(gw)  # exists, but the key holds only a setting of another provider
    other = await put_setting(gw, "vllm" if upstream.provider != "vllm" else "openai",
                              {"url": "http://127.0.0.1:9", "apikey": "x"})  # fmt: skip
    await gw.create_key(other)
    assert f"no {upstream.provider} provider setting" in await _refused(gw, upstream, 403)
    assert upstream.requests == []


async def test_key_with_several_settings_uses_the_one_of_the_route(
    start_gateway: GatewayFactory, upstream: Upstream
) -> None:
    gw: Running = await start_gateway()
    mine = await upstream.configure(gw)
    other = await put_setting(gw, "vllm" if upstream.provider != "vllm" else "openai",
                              {"url": "http://127.0.0.1:9", "apikey": "x"})  # fmt: skip
    key = await gw.create_key(other, settingIds=[other, mine])
    status, body = await upstream.call(gw)
    assert status == 200, body
    assert len(upstream.requests) == 1
    await gw.flush_events()
    _, events = await gw.admin("GET", f"/api/events?keyIds={key['keyId']}")
    assert [(e["provider"], e["status"]) for e in events] == [(upstream.provider, 200)]


async def test_rate_limit_admits_exactly_the_limit(start_gateway: GatewayFactory, upstream: Upstream) -> None:
    gw: Running = await start_gateway(clock=mid_minute_clock())
    await gw.create_key(await upstream.configure(gw), rateLimitOverTime=3, rateLimitUnit="m")
    results = await asyncio.gather(*(upstream.call(gw) for _ in range(8)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * 3 + [429] * 5
    for status, body in results:
        if status == 429:
            assert "rate limit of 3 per minute" in upstream.error(429, body)
    assert len(upstream.requests) == 3


async def test_spend_limit(start_gateway: GatewayFactory, upstream: Upstream) -> None:
    gw: Running = await start_gateway()
    key = await gw.create_key(await upstream.configure(gw), costLimitInUsd=10.0)
    status, body = await upstream.call(gw)
    assert status == 200, body
    _, spend = await gw.admin("GET", f"/api/reporting/keys/{key['keyId']}")
    assert spend["costInMicroDollars"] > 1  # the call is priced
    # a budget of exactly what was spent: nothing is left for the next call's estimate
    limit = spend["costInMicroDollars"] / 1e6
    status, _ = await gw.admin("PATCH", f"/api/key-management/keys/{key['keyId']}", {"costLimitInUsd": limit})
    assert status == 200
    message = await _refused(gw, upstream, 429)
    assert f"spend limit of ${limit:.6f}".rstrip("0") in message and "$0 left" in message
    assert len(upstream.requests) == 1
