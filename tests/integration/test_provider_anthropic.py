"""Anthropic through the gateway, driven by the official `anthropic` SDK: Messages (plain; system,
tools and an image; streamed), the legacy Text Completions route, token counting and models
passed through, the headers that cross, errors mapped to the SDK's exception classes, and every
call recorded and priced exactly (cache writes and reads at their own prices)."""

from __future__ import annotations

import base64
import re

import anthropic
import pytest
from anthropic.types import (
    Base64ImageSourceParam,
    ImageBlockParam,
    MessageParam,
    TextBlockParam,
    ToolParam,
)

from tests.integration.conftest import GatewayFactory, Running, mid_minute_clock
from tests.integration.mock_anthropic import (
    CACHE_READ_TOKENS,
    CACHE_WRITE_TOKENS,
    COUNTED_TOKENS,
    INPUT_TOKENS,
    OUTPUT_TOKENS,
    STREAM_WORDS,
    TOOL_INPUT,
    UPSTREAM_KEY,
    MockAnthropic,
)
from tests.integration.provider_harness import KEY, anthropic_sdk, events_of, put_setting, spend_of

BASE = "/api/providers/anthropic"
HI: list[MessageParam] = [{"role": "user", "content": "Say hi"}]
# claude-haiku-4-5 (USD per 1M): input 1, cache write 1.25, cache read 0.10, output 5
HAIKU_45_MICROS = INPUT_TOKENS * 1 + CACHE_WRITE_TOKENS * 1.25 + CACHE_READ_TOKENS * 0.1 + OUTPUT_TOKENS * 5
PROMPT_TOKENS = INPUT_TOKENS + CACHE_WRITE_TOKENS + CACHE_READ_TOKENS
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32).decode()
WEATHER_TOOL: ToolParam = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"location": {"type": "string"}},
        "required": ["location"],
    },
}


async def _setup(gw: Running, mock: MockAnthropic, **extra: object) -> dict[str, object]:
    setting_id = await put_setting(gw, "anthropic", {"apikey": UPSTREAM_KEY, "url": mock.url}, **extra)
    return await gw.create_key(setting_id)


async def test_messages_through_the_sdk_priced_with_cache_tokens(
    gateway: Running, mock_anthropic: MockAnthropic
) -> None:
    key = await _setup(gateway, mock_anthropic)
    client = anthropic_sdk(gateway)
    message = await client.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=HI)
    assert message.content[0].type == "text" and message.content[0].text == "".join(STREAM_WORDS)
    assert message.model == "claude-haiku-4-5-20251001"
    assert message.usage.cache_read_input_tokens == CACHE_READ_TOKENS
    seen = mock_anthropic.last("/v1/messages")
    assert seen.path == "/v1/messages" and seen.json()["messages"] == HI
    assert seen.headers["x-api-key"] == UPSTREAM_KEY
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", seen.headers["anthropic-version"])  # the SDK's own
    assert KEY not in str(seen.headers)
    (event,) = await events_of(gateway, str(key["keyId"]))
    assert (event["provider"], event["model"], event["status"]) == ("anthropic", "claude-haiku-4-5", 200)
    assert (event["prompt_token_count"], event["completion_token_count"]) == (PROMPT_TOKENS, OUTPUT_TOKENS)
    assert round(event["cost_in_usd"] * 1e6) == HAIKU_45_MICROS == 1616
    assert event["path"] == f"{BASE}/v1/messages"
    assert await spend_of(gateway, str(key["keyId"])) == 1616


async def test_system_tools_and_image_arrive_untouched(
    gateway: Running, mock_anthropic: MockAnthropic
) -> None:
    await _setup(gateway, mock_anthropic)
    client = anthropic_sdk(gateway)
    source: Base64ImageSourceParam = {"type": "base64", "media_type": "image/png", "data": PNG}
    image: ImageBlockParam = {"type": "image", "source": source}
    question: TextBlockParam = {"type": "text", "text": "Weather where this was taken?"}
    messages: list[MessageParam] = [{"role": "user", "content": [image, question]}]
    system: list[TextBlockParam] = [
        {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}
    ]
    message = await client.messages.create(
        model="claude-3-5-haiku-latest",
        max_tokens=128,
        system=system,
        tools=[WEATHER_TOOL],
        messages=messages,
    )
    block = message.content[0]
    assert message.stop_reason == "tool_use" and block.type == "tool_use"
    assert block.name == "get_weather" and block.input == TOOL_INPUT
    sent = mock_anthropic.last("/v1/messages").json()
    assert sent["system"] == system and sent["tools"] == [WEATHER_TOOL] and sent["messages"] == messages


async def test_streamed_message_through_the_sdk(gateway: Running, mock_anthropic: MockAnthropic) -> None:
    key = await _setup(gateway, mock_anthropic)
    client = anthropic_sdk(gateway)
    async with client.messages.stream(model="claude-haiku-4-5", max_tokens=64, messages=HI) as stream:
        texts = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert texts == STREAM_WORDS
    assert final.usage.output_tokens == OUTPUT_TOKENS and final.usage.input_tokens == INPUT_TOKENS
    # newer models repeat the input side in message_delta: it must not be counted twice
    async with client.messages.stream(
        model="claude-haiku-4-5",
        max_tokens=64,
        messages=HI,
        extra_headers={"x-mock": "full-delta-usage"},
    ) as stream:
        await stream.get_final_message()
    events = await events_of(gateway, str(key["keyId"]), count=2)
    assert [(e["prompt_token_count"], e["completion_token_count"]) for e in events] == [
        (PROMPT_TOKENS, OUTPUT_TOKENS)
    ] * 2
    assert [round(e["cost_in_usd"] * 1e6) for e in events] == [HAIKU_45_MICROS] * 2


async def test_streamed_tool_use(gateway: Running, mock_anthropic: MockAnthropic) -> None:
    await _setup(gateway, mock_anthropic)
    async with anthropic_sdk(gateway).messages.stream(
        model="claude-haiku-4-5",
        max_tokens=64,
        messages=HI,
        tools=[WEATHER_TOOL],
    ) as stream:
        final = await stream.get_final_message()
    assert final.content[0].type == "tool_use" and final.content[0].input == TOOL_INPUT


async def test_broken_stream_ends_with_an_anthropic_error_and_bills_what_was_reported(
    gateway: Running, mock_anthropic: MockAnthropic
) -> None:
    key = await _setup(gateway, mock_anthropic)
    with pytest.raises(anthropic.APIStatusError) as info:
        async with anthropic_sdk(gateway).messages.stream(
            model="claude-haiku-4-5",
            max_tokens=64,
            messages=HI,
            extra_headers={"x-mock": "broken-stream"},
        ) as stream:
            await stream.get_final_message()
    assert "interrupted" in str(info.value)
    (event,) = await events_of(gateway, str(key["keyId"]))
    # message_start said: the whole input side, and 1 output token so far
    assert (event["prompt_token_count"], event["completion_token_count"]) == (PROMPT_TOKENS, 1)
    assert round(event["cost_in_usd"] * 1e6) == HAIKU_45_MICROS - (OUTPUT_TOKENS - 1) * 5
    assert event["status"] == 502


@pytest.mark.parametrize("stream", [False, True])
async def test_legacy_complete_is_estimated_offline(
    gateway: Running, mock_anthropic: MockAnthropic, stream: bool
) -> None:
    key = await _setup(gateway, mock_anthropic)
    body = {"model": "claude-2.1", "prompt": "\n\nHuman: Say hi\n\nAssistant:", "max_tokens_to_sample": 50}
    async with gateway.http.post(
        gateway.proxy_url + BASE + "/v1/complete",
        json={**body, "stream": stream},
        headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"},
    ) as resp:
        assert resp.status == 200, await resp.text()
        text = await resp.text()
    assert ("event: completion" in text) is stream and "Hello" in text
    (event,) = await events_of(gateway, str(key["keyId"]))
    # cl100k_base: the prompt is 8 tokens, "Hello from the mock!" 5; claude-2.1: $8 in, $24 out per 1M
    assert (event["prompt_token_count"], event["completion_token_count"]) == (8, 5)
    assert round(event["cost_in_usd"] * 1e6) == 8 * 8 + 5 * 24


async def test_count_tokens_and_models_pass_through_unbilled(
    gateway: Running, mock_anthropic: MockAnthropic
) -> None:
    key = await _setup(gateway, mock_anthropic)
    client = anthropic_sdk(gateway)
    counted = await client.messages.count_tokens(model="claude-haiku-4-5", messages=HI)
    assert counted.input_tokens == COUNTED_TOKENS
    models = await client.models.list()
    assert [m.id for m in models.data] == [
        "claude-haiku-4-5-20251001", "claude-sonnet-4-5-20250929", "claude-3-5-haiku-20241022"
    ]  # fmt: skip
    model = await client.models.retrieve("claude-haiku-4-5-20251001")
    assert model.id == "claude-haiku-4-5-20251001"
    events = await events_of(gateway, str(key["keyId"]))
    assert [(e["path"], e["status"], e["cost_in_usd"]) for e in events] == [
        (f"{BASE}/v1/messages/count_tokens", 200, 0),
        (f"{BASE}/v1/models", 200, 0),
        (f"{BASE}/v1/models/claude-haiku-4-5-20251001", 200, 0),
    ]
    assert mock_anthropic.last("/count_tokens").headers["x-api-key"] == UPSTREAM_KEY


@pytest.mark.parametrize("header", ["x-api-key", "Authorization"])
async def test_key_in_either_header_and_version_headers_cross(
    gateway: Running, mock_anthropic: MockAnthropic, header: str
) -> None:
    await _setup(gateway, mock_anthropic)
    auth = {header: KEY if header == "x-api-key" else f"Bearer {KEY}"}
    url = gateway.proxy_url + BASE + "/v1/messages"
    body = {"model": "claude-haiku-4-5", "max_tokens": 8, "messages": HI}
    async with gateway.http.post(url, json=body, headers=auth) as resp:  # no anthropic-version: a default
        assert resp.status == 200, await resp.text()
    seen = mock_anthropic.last("/v1/messages").headers
    assert seen["anthropic-version"] == "2023-06-01" and "anthropic-beta" not in seen
    beta = {"anthropic-version": "2024-01-01", "anthropic-beta": "prompt-caching-2024-07-31"}
    async with gateway.http.post(url + "?beta=true", json=body, headers={**auth, **beta}) as resp:
        assert resp.status == 200  # older SDKs mark beta calls with ?beta=true
    assert mock_anthropic.last("/v1/messages").query == "beta=true"
    seen = mock_anthropic.last("/v1/messages").headers
    assert seen["anthropic-version"] == "2024-01-01" and seen["anthropic-beta"] == beta["anthropic-beta"]
    assert seen["x-api-key"] == UPSTREAM_KEY and "Authorization" not in seen
    assert [h.lower() for h in seen].count("anthropic-version") == 1


async def test_sdk_with_auth_token(gateway: Running, mock_anthropic: MockAnthropic) -> None:
    await _setup(gateway, mock_anthropic)
    client = anthropic.AsyncAnthropic(base_url=gateway.proxy_url + BASE, auth_token=KEY, max_retries=0)
    gateway.clients.append(client)
    message = await client.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=HI)
    assert message.id == "msg_mock"


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, anthropic.BadRequestError),
        (401, anthropic.AuthenticationError),
        (429, anthropic.RateLimitError),
        (500, anthropic.InternalServerError),
        (529, anthropic.OverloadedError),
    ],
)
async def test_upstream_errors_reach_the_sdk_as_they_are(
    gateway: Running, mock_anthropic: MockAnthropic, status: int, error: type[Exception]
) -> None:
    key = await _setup(gateway, mock_anthropic)
    with pytest.raises(error, match=f"mock error {status}") as info:
        await anthropic_sdk(gateway).messages.create(
            model="claude-haiku-4-5",
            max_tokens=8,
            messages=HI,
            extra_headers={"x-mock": f"error-{status}"},
        )
    assert isinstance(info.value, anthropic.APIStatusError) and info.value.status_code == status
    (event,) = await events_of(gateway, str(key["keyId"]))
    assert (event["status"], event["cost_in_usd"]) == (status, 0)


async def test_gateway_refusals_raise_the_sdk_exception_classes(
    start_gateway: GatewayFactory, mock_anthropic: MockAnthropic, free_port: int
) -> None:
    gw: Running = await start_gateway(clock=mid_minute_clock())
    setting_id = await put_setting(
        gw,
        "anthropic",
        {"apikey": UPSTREAM_KEY, "url": mock_anthropic.url},
        allowedModels=["claude-haiku-4-5"],
    )
    await gw.create_key(setting_id, rateLimitOverTime=1, rateLimitUnit="m")
    client = anthropic_sdk(gw)
    with pytest.raises(anthropic.AuthenticationError, match="key is not found"):
        await anthropic_sdk(gw, key="wrong").messages.create(
            model="claude-haiku-4-5", max_tokens=8, messages=HI
        )
    with pytest.raises(anthropic.PermissionDeniedError, match="model is not allowed"):
        await client.messages.create(model="claude-opus-4-1", max_tokens=8, messages=HI)
    with pytest.raises(anthropic.BadRequestError, match="invalid timeout"):
        await client.messages.create(
            model="claude-haiku-4-5",
            max_tokens=8,
            messages=HI,
            extra_headers={"x-request-timeout": "soon"},
        )
    with pytest.raises(anthropic.NotFoundError, match="route not supported") as not_found:
        await client.post("/v1/nope", body={}, cast_to=object)
    assert not_found.value.body == {
        "type": "error", "error": {"type": "not_found_error", "message": "[BricksLLM] route not supported"}
    }  # fmt: skip
    with pytest.raises(anthropic.GatewayTimeoutError):
        await client.messages.create(
            model="claude-haiku-4-5", max_tokens=8, messages=HI,
            extra_headers={"x-mock": "slow-1500", "x-request-timeout": "200ms"},
        )  # fmt: skip
    with pytest.raises(anthropic.RateLimitError, match="rate limit of 1 per minute") as limited:
        await client.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=HI)
    assert int(limited.value.response.headers["Retry-After"]) >= 1
    assert limited.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert len(mock_anthropic.requests) == 1  # only the call that timed out was forwarded


async def test_unreachable_upstream_is_an_anthropic_api_error(gateway: Running, free_port: int) -> None:
    await gateway.create_key(
        await put_setting(gateway, "anthropic", {"apikey": "x", "url": f"http://127.0.0.1:{free_port}"})
    )
    with pytest.raises(anthropic.InternalServerError) as info:
        await anthropic_sdk(gateway).messages.create(model="claude-haiku-4-5", max_tokens=8, messages=HI)
    assert info.value.status_code == 502 and info.value.body["error"]["type"] == "api_error"  # type: ignore[index]


async def test_per_setting_price_override_wins(gateway: Running, mock_anthropic: MockAnthropic) -> None:
    prices = {"claude-haiku-4-5": {"input": 1.0, "output": 2.0, "cachedInput": 0.5, "cacheWrite": 1.5}}
    key = await _setup(gateway, mock_anthropic, prices=prices)
    await anthropic_sdk(gateway).messages.create(model="claude-haiku-4-5", max_tokens=8, messages=HI)
    (event,) = await events_of(gateway, str(key["keyId"]))
    expected = INPUT_TOKENS * 1 + CACHE_WRITE_TOKENS * 1.5 + CACHE_READ_TOKENS * 0.5 + OUTPUT_TOKENS * 2
    assert round(event["cost_in_usd"] * 1e6) == expected == 3039


async def test_beta_messages_are_billed_like_messages(
    gateway: Running, mock_anthropic: MockAnthropic
) -> None:
    key = await _setup(gateway, mock_anthropic)
    message = await anthropic_sdk(gateway).beta.messages.create(
        model="claude-haiku-4-5", max_tokens=8, messages=HI, betas=["token-efficient-tools-2025-02-19"]
    )
    assert message.id == "msg_mock"
    seen = mock_anthropic.last("/v1/messages")
    assert seen.headers["anthropic-beta"] == "token-efficient-tools-2025-02-19"
    (event,) = await events_of(gateway, str(key["keyId"]))
    assert round(event["cost_in_usd"] * 1e6) == HAIKU_45_MICROS
