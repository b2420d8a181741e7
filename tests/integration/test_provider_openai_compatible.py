"""vLLM (any OpenAI-compatible server at a `url`) and DeepInfra through the gateway, driven by the
official OpenAI SDK: chat, streams, embeddings and models on their own routes, the upstream URL
and credentials each one needs, and pricing from the setting's `prices` (DeepInfra's embedding
table aside), exact."""

from __future__ import annotations

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from bricksllm.telemetry.metrics import InMemoryMetrics
from tests.integration.conftest import GatewayFactory, Running
from tests.integration.mock_openai import COMPLETION_TOKENS, PROMPT_TOKENS, STREAM_WORDS, MockOpenAI
from tests.integration.provider_harness import KEY, events_of, openai_sdk, put_setting

LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]


async def test_vllm_chat_stream_embeddings_and_models(gateway: Running, mock_openai: MockOpenAI) -> None:
    prices = {LLAMA: {"input": 2.0, "output": 5.0}, "BAAI/bge-m3": {"input": 1.0, "output": 0.0}}
    setting_id = await put_setting(gateway, "vllm", {"url": mock_openai.url}, prices=prices)
    key_id = str((await gateway.create_key(setting_id))["keyId"])
    client = openai_sdk(gateway, "vllm")
    completion = await client.chat.completions.create(model=LLAMA, messages=HI)
    assert completion.choices[0].message.content == "".join(STREAM_WORDS)
    seen = mock_openai.last("/chat/completions")
    assert seen.path == "/v1/chat/completions"
    assert "Authorization" not in seen.headers and KEY not in str(seen.headers)  # no apikey: no auth
    stream = await client.chat.completions.create(model=LLAMA, messages=HI, stream=True)
    chunks = [c async for c in stream]
    assert all(c.usage is None for c in chunks)  # asked for by the gateway, withheld from the client
    assert mock_openai.last("/chat/completions").json()["stream_options"] == {"include_usage": True}
    embedded = await client.embeddings.create(model="BAAI/bge-m3", input=["a", "b"])
    assert len(embedded.data) == 2
    models = await client.models.list()
    assert [m.id for m in models.data] == ["gpt-4o-mini"]
    events = await events_of(gateway, key_id, count=4)
    # Llama: 11 x $2 + 7 x $5 per 1M (no cached price: cached tokens are input); bge-m3: 10 x $1
    assert [(e["provider"], e["model"], e["path"], round(e["cost_in_usd"] * 1e6)) for e in events] == [
        ("vllm", LLAMA, "/api/providers/vllm/v1/chat/completions", PROMPT_TOKENS * 2 + COMPLETION_TOKENS * 5),
        ("vllm", LLAMA, "/api/providers/vllm/v1/chat/completions", PROMPT_TOKENS * 2 + COMPLETION_TOKENS * 5),
        ("vllm", "BAAI/bge-m3", "/api/providers/vllm/v1/embeddings", 10),
        ("vllm", "", "/api/providers/vllm/v1/models", 0),
    ]
    assert [e["completion_token_count"] for e in events[:2]] == [COMPLETION_TOKENS] * 2


async def test_vllm_url_with_v1_and_an_apikey(gateway: Running, mock_openai: MockOpenAI) -> None:
    setting_id = await put_setting(gateway, "vllm", {"url": mock_openai.url + "/v1/", "apikey": "vllm-token"})
    await gateway.create_key(setting_id)
    await openai_sdk(gateway, "vllm").completions.create(model=LLAMA, prompt="Say ok")
    seen = mock_openai.last("/completions")
    assert seen.path == "/v1/completions" and seen.headers["Authorization"] == "Bearer vllm-token"


async def test_vllm_model_without_a_price_costs_nothing_and_is_counted(
    start_gateway: GatewayFactory, mock_openai: MockOpenAI
) -> None:
    metrics = InMemoryMetrics()
    gw: Running = await start_gateway(metrics=metrics)
    key_id = str((await gw.create_key(await put_setting(gw, "vllm", {"url": mock_openai.url})))["keyId"])
    await openai_sdk(gw, "vllm").chat.completions.create(model=LLAMA, messages=HI)
    (event,) = await events_of(gw, key_id)
    assert (event["cost_in_usd"], event["prompt_token_count"]) == (0, PROMPT_TOKENS)
    assert metrics.counts["pricing.unknown_model"] == 1


async def test_vllm_requires_a_url(gateway: Running) -> None:
    status, problem = await gateway.admin(
        "PUT", "/api/provider-settings", {"provider": "vllm", "setting": {}}
    )
    assert status == 400 and "setting.url" in str(problem)


async def test_deepinfra_chat_and_embeddings(gateway: Running, mock_deepinfra: MockOpenAI) -> None:
    model = "meta-llama/Meta-Llama-3.1-70B-Instruct"
    setting_id = await put_setting(
        gateway,
        "deepinfra",
        {"apikey": "di-upstream-secret", "url": mock_deepinfra.url},
        prices={model: {"input": 1.0, "output": 3.0}},
    )
    key_id = str((await gateway.create_key(setting_id))["keyId"])
    client = openai_sdk(gateway, "deepinfra")
    completion = await client.chat.completions.create(model=model, messages=HI)
    assert completion.model == model
    seen = mock_deepinfra.last("/chat/completions")
    assert seen.path == "/v1/openai/chat/completions"
    assert seen.headers["Authorization"] == "Bearer di-upstream-secret"
    stream = await client.chat.completions.create(model=model, messages=HI, stream=True)
    assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == "".join(
        STREAM_WORDS
    )
    await client.embeddings.create(model="BAAI/bge-large-en-v1.5", input=["x"] * 200)
    assert mock_deepinfra.last("/embeddings").path == "/v1/openai/embeddings"
    events = await events_of(gateway, key_id, count=3)
    # chat: setting prices, 11 x $1 + 7 x $3; embeddings: DeepInfra's table, 1000 tokens x $0.01 per 1M
    assert [(e["provider"], round(e["cost_in_usd"] * 1e6)) for e in events] == [
        ("deepinfra", PROMPT_TOKENS + COMPLETION_TOKENS * 3),
        ("deepinfra", PROMPT_TOKENS + COMPLETION_TOKENS * 3),
        ("deepinfra", 10),
    ]


async def test_deepinfra_upstream_error_passes_through(gateway: Running, mock_deepinfra: MockOpenAI) -> None:
    setting_id = await put_setting(gateway, "deepinfra", {"apikey": "x", "url": mock_deepinfra.url})
    await gateway.create_key(setting_id)
    client = openai_sdk(gateway, "deepinfra")
    with pytest.raises(openai.RateLimitError, match="mock error 429"):
        await client.chat.completions.create(model="m", messages=HI, extra_headers={"x-mock": "error-429"})
