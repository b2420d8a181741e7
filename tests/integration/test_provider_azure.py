"""Azure OpenAI through the gateway, driven by the official `openai.AsyncAzureOpenAI` client: chat,
streams (usage asked for only from api-version 2024-09-01, withheld from a client that did not
ask), embeddings and completions on deployment routes; `api-version` and `api-key` as Azure wants
them; every call priced from the model the answer names, the deployment as the fallback."""

from __future__ import annotations

import base64
import struct

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from bricksllm.telemetry.metrics import InMemoryMetrics
from tests.integration.conftest import GatewayFactory, Running
from tests.integration.mock_azure import (
    CACHED_TOKENS,
    COMPLETION_TOKENS,
    PROMPT_TOKENS,
    STREAM_WORDS,
    UPSTREAM_KEY,
    MockAzure,
)
from tests.integration.provider_harness import AZURE_API_VERSION, KEY, azure_sdk, events_of, put_setting

BASE = "/api/providers/azure/openai/deployments"
HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
# gpt-4o (USD per 1M): input 2.50, cached input 1.25, output 10
GPT_4O_MICROS = (PROMPT_TOKENS - CACHED_TOKENS) * 2.5 + CACHED_TOKENS * 1.25 + COMPLETION_TOKENS * 10


async def _setup(gw: Running, mock: MockAzure, **extra: object) -> str:
    setting_id = await put_setting(gw, "azure", {"apikey": UPSTREAM_KEY, "url": mock.url}, **extra)
    return str((await gw.create_key(setting_id))["keyId"])


async def test_chat_priced_from_the_model_the_answer_names(gateway: Running, mock_azure: MockAzure) -> None:
    key_id = await _setup(gateway, mock_azure)
    completion = await azure_sdk(gateway).chat.completions.create(model="prod-4o", messages=HI)
    assert completion.model == "gpt-4o-2024-08-06"
    assert completion.choices[0].message.content == "".join(STREAM_WORDS)
    seen = mock_azure.last("/chat/completions")
    assert seen.path == "/openai/deployments/prod-4o/chat/completions"
    assert seen.query == f"api-version={AZURE_API_VERSION}"
    assert seen.headers["api-key"] == UPSTREAM_KEY and KEY not in str(seen.headers)
    assert seen.json() == {"model": "prod-4o", "messages": HI}  # forwarded as sent
    (event,) = await events_of(gateway, key_id)
    assert (event["provider"], event["model"], event["status"]) == ("azure", "prod-4o", 200)
    assert (event["prompt_token_count"], event["completion_token_count"]) == (
        PROMPT_TOKENS,
        COMPLETION_TOKENS,
    )
    assert round(event["cost_in_usd"] * 1e6) == GPT_4O_MICROS == 550
    assert event["path"] == f"{BASE}/prod-4o/chat/completions"


async def test_stream_usage_is_asked_for_and_withheld(gateway: Running, mock_azure: MockAzure) -> None:
    key_id = await _setup(gateway, mock_azure)
    client = azure_sdk(gateway)
    stream = await client.chat.completions.create(model="prod-4o", messages=HI, stream=True)
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "".join(STREAM_WORDS)
    assert all(c.usage is None for c in chunks)  # the client did not ask for the usage chunk
    assert mock_azure.last().json()["stream_options"] == {"include_usage": True}
    stream = await client.chat.completions.create(
        model="prod-4o", messages=HI, stream=True, stream_options={"include_usage": True}
    )
    last = [chunk async for chunk in stream][-1]
    assert last.usage is not None and last.usage.prompt_tokens == PROMPT_TOKENS  # asked: it arrives
    events = await events_of(gateway, key_id, count=2)
    assert [round(e["cost_in_usd"] * 1e6) for e in events] == [550, 550]
    assert [e["completion_token_count"] for e in events] == [COMPLETION_TOKENS] * 2


async def test_stream_on_an_older_api_version_is_estimated_at_the_answer_model(
    start_gateway: GatewayFactory, mock_azure: MockAzure
) -> None:
    metrics = InMemoryMetrics()
    gw: Running = await start_gateway(metrics=metrics)
    key_id = await _setup(gw, mock_azure)
    client = azure_sdk(gw, api_version="2024-06-01")  # refuses stream_options: none is added
    stream = await client.chat.completions.create(model="prod-4o", messages=HI, stream=True)
    assert (
        "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == "Hello from Azure!"
    )
    assert "stream_options" not in mock_azure.last().json()
    (event,) = await events_of(gw, key_id)
    # o200k_base: the one-message chat prompt is 8 tokens, "Hello from Azure!" 4; gpt-4o prices
    assert (event["prompt_token_count"], event["completion_token_count"]) == (8, 4)
    assert round(event["cost_in_usd"] * 1e6) == 8 * 2.5 + 4 * 10
    assert metrics.counts.get("pricing.unknown_model", 0) == 0


async def test_embeddings_and_completions(gateway: Running, mock_azure: MockAzure) -> None:
    key_id = await _setup(gateway, mock_azure)
    client = azure_sdk(gateway)
    embedded = await client.embeddings.create(model="embed", input=["a", "b"])
    assert embedded.data[0].embedding == [1.0, 2.0, 3.0]  # the SDK asked for base64 and decoded it
    assert base64.b64decode("AACAPwAAAEAAAEBA") == struct.pack("<3f", 1.0, 2.0, 3.0)
    assert mock_azure.last("/embeddings").path == "/openai/deployments/embed/embeddings"
    completion = await client.completions.create(model="instruct", prompt="Say ok")
    assert completion.choices[0].text == "ok"
    events = await events_of(gateway, key_id)
    # text-embedding-3-small: 2 x 500 tokens at $0.02 per 1M; gpt-35-turbo-instruct: $1.50 in, $2 out
    assert [(e["model"], round(e["cost_in_usd"] * 1e6)) for e in events] == [
        ("embed", 1000 * 0.02),
        ("instruct", PROMPT_TOKENS * 1.5 + COMPLETION_TOKENS * 2),
    ]


async def test_deployment_prices_an_answer_that_names_no_model(
    gateway: Running, mock_azure: MockAzure
) -> None:
    key_id = await _setup(gateway, mock_azure)
    async with gateway.http.post(
        f"{gateway.proxy_url}{BASE}/gpt-4o-mini/chat/completions?api-version={AZURE_API_VERSION}",
        json={"messages": HI},  # no model in the body either: the deployment stands in
        headers={"api-key": KEY, "x-mock": "no-model"},
    ) as resp:
        assert resp.status == 200, await resp.text()
        assert "model" not in await resp.json()
    (event,) = await events_of(gateway, key_id)
    assert event["model"] == "gpt-4o-mini"
    # gpt-4o-mini: $0.15 in, $0.075 cached, $0.60 out per 1M
    assert round(event["cost_in_usd"] * 1e6) == 80 * 0.15 + 40 * 0.075 + 30 * 0.6 == 33


async def test_price_override_for_a_deployment_wins(gateway: Running, mock_azure: MockAzure) -> None:
    key_id = await _setup(gateway, mock_azure, prices={"prod-4o": {"input": 1.0, "output": 2.0}})
    await azure_sdk(gateway).chat.completions.create(model="prod-4o", messages=HI)
    (event,) = await events_of(gateway, key_id)
    assert round(event["cost_in_usd"] * 1e6) == PROMPT_TOKENS * 1 + COMPLETION_TOKENS * 2


async def test_allowed_models_name_deployments(gateway: Running, mock_azure: MockAzure) -> None:
    setting_id = await put_setting(
        gateway, "azure", {"apikey": UPSTREAM_KEY, "url": mock_azure.url}, allowedModels=["mini"]
    )
    await gateway.create_key(setting_id)
    client = azure_sdk(gateway)
    await client.chat.completions.create(model="mini", messages=HI)
    with pytest.raises(openai.PermissionDeniedError, match="model is not allowed"):
        await client.chat.completions.create(model="prod-4o", messages=HI)
    assert [r.path for r in mock_azure.requests] == ["/openai/deployments/mini/chat/completions"]


async def test_upstream_errors_pass_through(gateway: Running, mock_azure: MockAzure) -> None:
    await _setup(gateway, mock_azure)
    client = azure_sdk(gateway)
    with pytest.raises(openai.RateLimitError, match="mock error 429"):
        await client.chat.completions.create(
            model="prod-4o", messages=HI, extra_headers={"x-mock": "error-429"}
        )
    with pytest.raises(openai.NotFoundError, match="deployment for this resource does not exist"):
        await client.chat.completions.create(model="nowhere", messages=HI)
    async with gateway.http.post(  # Azure itself requires api-version; the gateway passes what it gets
        f"{gateway.proxy_url}{BASE}/prod-4o/chat/completions", json={"messages": HI}, headers={"api-key": KEY}
    ) as resp:
        assert resp.status == 404 and (await resp.json())["error"]["message"] == "Resource not found"


async def test_gateway_refusal_reads_as_an_openai_error(gateway: Running, mock_azure: MockAzure) -> None:
    await _setup(gateway, mock_azure)
    with pytest.raises(openai.AuthenticationError, match="key is not found"):
        await azure_sdk(gateway, key="wrong").chat.completions.create(model="prod-4o", messages=HI)
    assert mock_azure.requests == []
