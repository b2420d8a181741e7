"""Server-sent event streams: relayed as they arrive, priced from the usage chunk the gateway asks
for (hidden from clients that did not ask), billed on disconnect, ended cleanly on upstream failure."""

from __future__ import annotations

import asyncio
import time

from tests.integration.conftest import Running
from tests.integration.mock_openai import COMPLETION_TOKENS, PROMPT_TOKENS, STREAM_WORDS, MockOpenAI
from tests.integration.test_proxy_quickstart import sdk

MESSAGES = [{"role": "user", "content": "Say hello"}]


async def _events(gw: Running) -> list[dict[str, object]]:
    """The recorded events, once the stream's handler has finished (a client may stop reading at
    [DONE] before the gateway has counted and recorded the stream)."""
    for _ in range(100):
        await gw.flush_events()
        status, events = await gw.admin("GET", "/api/events?tags=t1")
        assert status == 200
        if events:
            return list(events)
        await asyncio.sleep(0.05)
    return []


async def test_stream_without_usage_request_hides_the_usage_chunk_but_is_priced(
    gateway: Running, mock_openai: MockOpenAI
) -> None:
    await gateway.create_key(await gateway.create_setting(mock_openai.url))
    stream = await sdk(gateway).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "".join(STREAM_WORDS)
    assert all(c.choices for c in chunks), "a usage-only chunk reached a client that did not ask for it"
    assert mock_openai.last("/chat/completions").json()["stream_options"] == {"include_usage": True}
    (event,) = await _events(gateway)
    assert (
        event["prompt_token_count"] == PROMPT_TOKENS and event["completion_token_count"] == COMPLETION_TOKENS
    )
    # gpt-4o-mini: $0.15 in, $0.075 cached, $0.60 out per 1M
    assert event["cost_in_usd"] == round(8 * 0.15 + 3 * 0.075 + 7 * 0.6) / 1e6


async def test_stream_with_usage_request_sees_the_usage_chunk(
    gateway: Running, mock_openai: MockOpenAI
) -> None:
    await gateway.create_key(await gateway.create_setting(mock_openai.url))
    stream = await sdk(gateway).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == COMPLETION_TOKENS


async def test_chunks_are_forwarded_as_they_arrive(gateway: Running, mock_openai: MockOpenAI) -> None:
    await gateway.create_key(await gateway.create_setting(mock_openai.url))
    started = time.perf_counter()
    stream = await sdk(gateway).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_headers={"x-mock": "slow-150"}
    )
    arrivals = []
    async for _ in stream:
        arrivals.append(time.perf_counter() - started)
    # the mock waits 150 ms between chunks: a buffering proxy would deliver them all at the end
    assert arrivals[0] < arrivals[-1] - 0.5


async def test_stream_without_any_usage_is_counted_with_the_tokenizer(
    gateway: Running, mock_openai: MockOpenAI
) -> None:
    await gateway.create_key(await gateway.create_setting(mock_openai.url))
    stream = await sdk(gateway).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_headers={"x-mock": "no-usage"}
    )
    _ = [c async for c in stream]
    (event,) = await _events(gateway)
    assert event["completion_token_count"] == 5  # "Hello from the mock!" in o200k_base
    assert event["prompt_token_count"] > 0 and event["cost_in_usd"] > 0


async def test_client_disconnect_cancels_upstream_and_is_billed(
    gateway: Running, mock_openai: MockOpenAI
) -> None:
    await gateway.create_key(await gateway.create_setting(mock_openai.url))
    stream = await sdk(gateway).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_headers={"x-mock": "slow-200"}
    )
    async for _ in stream:
        break
    await stream.close()
    await asyncio.wait_for(mock_openai.stream_aborted.wait(), 5)
    (event,) = await _events(gateway)
    assert event["status"] == 499
    assert event["prompt_token_count"] > 0 and event["cost_in_usd"] > 0


async def test_broken_upstream_stream_ends_with_an_error_event(
    gateway: Running, mock_openai: MockOpenAI
) -> None:
    await gateway.create_key(await gateway.create_setting(mock_openai.url))
    async with gateway.http.post(
        gateway.openai_base + "/chat/completions",
        json={"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True},
        headers={"Authorization": "Bearer my-secret-key", "x-mock": "broken-stream"},
    ) as resp:
        text = await resp.text()
    assert resp.status == 200
    assert "the provider stream was interrupted" in text
    (event,) = await _events(gateway)
    assert event["status"] == 502


async def test_responses_api_stream_is_relayed_and_priced(gateway: Running, mock_openai: MockOpenAI) -> None:
    await gateway.create_key(await gateway.create_setting(mock_openai.url))
    stream = await sdk(gateway).responses.create(model="gpt-4.1", input="Say hello", stream=True)
    kinds = [e.type async for e in stream]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert kinds.count("response.output_text.delta") == len(STREAM_WORDS)
    (event,) = await _events(gateway)
    # gpt-4.1: $2 in, $0.50 cached, $8 out per 1M
    assert event["cost_in_usd"] == round(8 * 2 + 3 * 0.5 + 7 * 8) / 1e6
