"""The limit shapes through the admin API and the proxy: several windows per key, token limits,
per-model limits, tag budgets; the shorthand fields as a view of the same data; x-ratelimit-*
headers on answers and refusals."""

from __future__ import annotations

import openai
import pytest

from tests.integration.conftest import GatewayFactory, Running, mid_minute_clock
from tests.integration.mock_openai import MockOpenAI
from tests.integration.test_proxy_quickstart import sdk

SMALL = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "max_tokens": 7}
KEYS = "/api/key-management/keys"


async def test_lists_and_shorthand_read_and_write_the_same_limits(
    gateway: Running, mock_openai: MockOpenAI
) -> None:
    setting_id = await gateway.create_setting(mock_openai.url)
    key = await gateway.create_key(
        setting_id,
        rateLimits=[{"limit": 60, "unit": "m"}, {"limit": 1000, "unit": "d"}],
        costLimits=[{"usd": 5, "unit": "d"}, {"usd": 100, "unit": "mo"}, {"usd": 500, "unit": "total"}],
        tokenLimits=[{"limit": 100_000, "unit": "d"}],
        modelLimits={"gpt-4o": {"costLimits": [{"usd": 1, "unit": "d"}]}},
    )
    assert (key["costLimitInUsd"], key["costLimitInUsdOverTime"], key["costLimitInUsdUnit"]) == (500, 5, "d")
    assert (key["rateLimitOverTime"], key["rateLimitUnit"]) == (60, "m")
    assert key["costLimits"] == [
        {"usd": 500, "unit": "total"}, {"usd": 5, "unit": "d"}, {"usd": 100, "unit": "mo"}
    ]  # fmt: skip
    assert key["rateLimits"] == [{"limit": 60, "unit": "m"}, {"limit": 1000, "unit": "d"}]
    assert key["tokenLimits"] == [{"limit": 100_000, "unit": "d"}]
    assert key["modelLimits"] == {
        "gpt-4o": {"rateLimits": [], "costLimits": [{"usd": 1, "unit": "d"}], "tokenLimits": []}
    }
    path = f"{KEYS}/{key['keyId']}"
    status, patched = await gateway.admin("PATCH", path, {"costLimitInUsd": 7})  # the shorthand
    assert status == 200
    assert patched["costLimits"][0] == {"usd": 7, "unit": "total"} and len(patched["costLimits"]) == 3
    status, patched = await gateway.admin("PATCH", path, {"rateLimits": [{"limit": 5, "unit": "s"}]})
    assert status == 200 and (patched["rateLimitOverTime"], patched["rateLimitUnit"]) == (5, "s")
    assert patched["tokenLimits"] == [{"limit": 100_000, "unit": "d"}]  # other kinds untouched
    status, patched = await gateway.admin("PATCH", path, {"costLimits": []})
    assert status == 200 and patched["costLimits"] == [] and patched["costLimitInUsd"] == 0
    status, problem = await gateway.admin("PATCH", path, {"costLimits": [], "costLimitInUsd": 1})
    assert status == 400 and problem["fields"] == ["costLimits"], problem
    status, problem = await gateway.admin("PATCH", path, {"tokenLimits": [{"limit": 5, "unit": "s"}]})
    assert status == 400 and "tokenLimits" in str(problem), problem
    status, problem = await gateway.admin("PATCH", path, {"costLimits": [{"usd": 0, "unit": "d"}]})
    assert status == 400, problem


async def test_several_request_windows_and_their_headers(gateway: Running, mock_openai: MockOpenAI) -> None:
    setting_id = await gateway.create_setting(mock_openai.url)
    await gateway.create_key(setting_id, rateLimits=[{"limit": 5, "unit": "d"}, {"limit": 2, "unit": "m"}])
    client = sdk(gateway)
    raw = await client.chat.completions.with_raw_response.create(**SMALL)  # type: ignore[call-overload]
    assert raw.headers["x-ratelimit-limit-requests"] == "2"  # the tightest: 1 left of 2 per minute
    assert raw.headers["x-ratelimit-remaining-requests"] == "1"
    assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
    await client.chat.completions.create(**SMALL)  # type: ignore[call-overload]
    with pytest.raises(openai.RateLimitError, match="rate limit of 2 per minute reached") as info:
        await client.chat.completions.create(**SMALL)  # type: ignore[call-overload]
    headers = info.value.response.headers
    assert 1 <= int(headers["Retry-After"]) <= 60
    assert (headers["x-ratelimit-limit-requests"], headers["x-ratelimit-remaining-requests"]) == ("2", "0")


async def test_token_limit_reserves_and_settles_tokens(gateway: Running, mock_openai: MockOpenAI) -> None:
    setting_id = await gateway.create_setting(mock_openai.url)
    await gateway.create_key(setting_id, tokenLimits=[{"limit": 200, "unit": "h"}])
    client = sdk(gateway)
    admitted = 0
    with pytest.raises(openai.RateLimitError) as info:
        for _ in range(50):
            await client.chat.completions.create(**SMALL)  # type: ignore[call-overload]
            admitted += 1
    # each call uses 11 + 7 = 18 tokens and reserves its body's tokens + 7: admitted while it fits
    assert admitted == 10, admitted
    assert "token limit of 200 per hour reached (tokenLimits): 180 used, 0 reserved" in info.value.message
    headers = info.value.response.headers
    assert (headers["x-ratelimit-limit-tokens"], headers["x-ratelimit-remaining-tokens"]) == ("200", "20")
    assert info.value.body["code"] == "token_limit_exceeded"  # type: ignore[index]


async def test_a_model_limit_applies_to_that_model_only(gateway: Running, mock_openai: MockOpenAI) -> None:
    setting_id = await gateway.create_setting(mock_openai.url)
    await gateway.create_key(
        setting_id, modelLimits={"gpt-4o": {"costLimits": [{"usd": 0.0002, "unit": "d"}]}}
    )
    client = sdk(gateway)
    await client.chat.completions.create(**SMALL)  # type: ignore[call-overload]
    with pytest.raises(openai.RateLimitError, match=r"per day reached \(modelLimits\[gpt-4o\]\)"):
        await client.chat.completions.create(**SMALL)  # type: ignore[call-overload]
    await client.chat.completions.create(**{**SMALL, "model": "gpt-4o-mini"})  # type: ignore[call-overload]


async def test_a_tag_budget_is_shared_by_the_tag_s_keys(gateway: Running, mock_openai: MockOpenAI) -> None:
    setting_id = await gateway.create_setting(mock_openai.url)
    budget = {"costLimits": [{"usd": 0.0002, "unit": "mo"}]}
    status, created = await gateway.admin("PUT", "/api/tags/team-a/budget", budget)
    assert status == 200 and created == {
        "tag": "team-a", "rateLimits": [], "costLimits": [{"usd": 0.0002, "unit": "mo"}], "tokenLimits": []
    }  # fmt: skip
    await gateway.create_key(setting_id, "alice", tags=["team-a"])
    await gateway.create_key(setting_id, "bob", tags=["team-a", "x"])
    await gateway.create_key(setting_id, "carol", tags=["team-b"])
    await sdk(gateway, "alice").chat.completions.create(**SMALL)  # type: ignore[call-overload]
    with pytest.raises(openai.RateLimitError, match=r"\(budget of tag team-a\): spent \$0.000094"):
        await sdk(gateway, "bob").chat.completions.create(**SMALL)  # type: ignore[call-overload]
    await sdk(gateway, "carol").chat.completions.create(**SMALL)  # type: ignore[call-overload]
    assert (await gateway.admin("GET", "/api/tag-budgets"))[1] == [created]
    assert (await gateway.admin("DELETE", "/api/tags/team-a/budget"))[0] == 200
    assert (await gateway.admin("GET", "/api/tags/team-a/budget"))[0] == 404
    await sdk(gateway, "bob").chat.completions.create(**SMALL)  # type: ignore[call-overload]
    status, problem = await gateway.admin("PUT", "/api/tags/team-a/budget", {"costLimits": []})
    assert status == 400 and problem["fields"] == ["costLimits"]


async def test_token_model_and_tag_counters_are_rebuilt_from_events_at_start(
    start_gateway: GatewayFactory, mock_openai: MockOpenAI
) -> None:
    gw: Running = await start_gateway(clock=mid_minute_clock())
    setting_id = await gw.create_setting(mock_openai.url)
    await gw.admin("PUT", "/api/tags/team-a/budget", {"costLimits": [{"usd": 0.0002, "unit": "mo"}]})
    await gw.create_key(setting_id, "alice", tags=["team-a"], tokenLimits=[{"limit": 60, "unit": "d"}])
    await gw.create_key(
        setting_id, "bob", modelLimits={"gpt-4o": {"costLimits": [{"usd": 0.0002, "unit": "d"}]}}
    )
    await sdk(gw, "alice").chat.completions.create(**SMALL)  # type: ignore[call-overload]
    await sdk(gw, "bob").chat.completions.create(**SMALL)  # type: ignore[call-overload]
    await gw.close()  # the in-process counters are gone; the events stay
    gw2: Running = await start_gateway(clock=mid_minute_clock())
    with pytest.raises(openai.RateLimitError, match=r"budget of tag team-a\): spent \$0.000094"):
        await sdk(gw2, "alice").chat.completions.create(**SMALL)  # type: ignore[call-overload]
    await gw2.admin("DELETE", "/api/tags/team-a/budget")
    await sdk(gw2, "alice").chat.completions.create(**SMALL)  # type: ignore[call-overload]
    # each call: 18 tokens used, about 33 reserved (its body's tokens + max_tokens)
    with pytest.raises(openai.RateLimitError, match=r"limit of 60 per day reached \(tokenLimits\): 36 used"):
        await sdk(gw2, "alice").chat.completions.create(**SMALL)  # type: ignore[call-overload]
    with pytest.raises(openai.RateLimitError, match=r"modelLimits\[gpt-4o\]\): spent \$0.000094"):
        await sdk(gw2, "bob").chat.completions.create(**SMALL)  # type: ignore[call-overload]
