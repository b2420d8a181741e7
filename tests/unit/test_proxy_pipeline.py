"""`ProxyService.handle` without sockets: the in-memory configuration, in-process counters, an
event list and `FakeUpstream`. Each test drives one path through the pipeline and checks what
the client got, what the upstream received and what was recorded."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from multidict import CIMultiDict

from bricksllm.domain.models import (
    CustomProvider,
    Event,
    Key,
    PathConfig,
    ProviderSetting,
    RouteConfig,
    hash_secret,
)
from bricksllm.errors import UpstreamError, UpstreamTimeout
from bricksllm.ports import ConfigSnapshot, UpstreamRequest
from bricksllm.providers.registry import ProviderRegistry
from bricksllm.services.config_cache import ConfigIndex
from bricksllm.services.exchange import Inbound, Reply
from bricksllm.services.limits import Limits
from bricksllm.services.proxy import BUFFERED_ANSWER, ProxyService
from bricksllm.storage.memory_counters import MemoryCounters
from bricksllm.telemetry.metrics import InMemoryMetrics
from bricksllm.upstream.fake import FakeResponse, FakeUpstream

NOW = 1_700_000_010.0
CHAT_PATH = "/api/providers/openai/v1/chat/completions"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
ANSWER = {
    "id": "c", "object": "chat.completion", "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100},
}  # fmt: skip
ANSWER_MICROS = 1000 * 0.15 + 100 * 0.6  # gpt-4o-mini, USD per 1M tokens


def chunks_of(*events: dict[str, object]) -> list[bytes]:
    return [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]


STREAM = chunks_of(
    {"model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"content": "hel"}}], "usage": None},
    {"model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"content": "lo"}}], "usage": None},
    {"model": "gpt-4o-mini", "choices": [], "usage": {"prompt_tokens": 1000, "completion_tokens": 100}},
)


class Body:
    def __init__(self, data: bytes) -> None:
        self.data, self.content_length = data, len(data)

    async def read(self, limit: int) -> bytes:
        return self.data

    async def chunks(self) -> AsyncIterator[bytes]:
        yield self.data


class Events:
    def __init__(self) -> None:
        self.all: list[Event] = []

    def record(self, event: Event) -> None:
        self.all.append(event)


@dataclass
class World:
    upstream: FakeUpstream
    service: ProxyService
    events: Events
    metrics: InMemoryMetrics
    keys: list[Key] = field(default_factory=list)

    async def call(
        self, path: str = CHAT_PATH, body: object = CHAT, *, key: str = "sk-1", method: str = "POST",
        **headers: str,
    ) -> Reply:  # fmt: skip
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        hdrs = CIMultiDict({"Content-Type": "application/json", **headers})
        if key:
            hdrs["Authorization"] = f"Bearer {key}"
        return await self.service.handle(Inbound(method, path, "", hdrs, Body(raw)))


def json_answer(payload: dict[str, object], status: int = 200) -> FakeResponse:
    data = json.dumps(payload).encode()
    return FakeResponse(
        status, {"Content-Type": "application/json", "Content-Length": str(len(data))}, [data]
    )


def make_world(
    handler: Callable[[UpstreamRequest], FakeResponse] = lambda r: json_answer(ANSWER), **key_fields: object
) -> World:
    settings = [
        ProviderSetting(id="s-openai", provider="openai", created_at=0, updated_at=0,
                        setting={"apikey": "sk-upstream", "url": "http://up"}),
        ProviderSetting(id="s-anthropic", provider="anthropic", created_at=0, updated_at=0,
                        setting={"apikey": "sk-ant-upstream", "url": "http://ant"}),
        ProviderSetting(id="s-acme", provider="acme", created_at=0, updated_at=0,
                        setting={"apikey": "acme-key"}),
    ]  # fmt: skip
    fields: dict[str, object] = {"setting_ids": ("s-openai", "s-anthropic", "s-acme"), **key_fields}
    key = Key(key_id="k1", name="k", key_hash=hash_secret("sk-1"), created_at=0, updated_at=0, **fields)  # type: ignore[arg-type]
    acme = CustomProvider(
        id="cp", provider="acme", created_at=0, updated_at=0,
        route_configs=(RouteConfig(path="/generate", target_url="http://acme/gen", model_location="model",
                                   request_prompt_location="prompt",
                                   response_completion_location="output.text"),),
    )  # fmt: skip

    class Config:
        current = ConfigIndex.build(ConfigSnapshot(1, [key], settings, [acme]))

    metrics = InMemoryMetrics()
    upstream = FakeUpstream(handler)
    events = Events()
    limits = Limits(MemoryCounters(now=lambda: NOW), metrics, fail_open=False, clock=lambda: NOW)
    service = ProxyService(Config(), limits, events, ProviderRegistry(), upstream, metrics, clock=lambda: NOW)
    return World(upstream, service, events, metrics, [key])


async def drain(reply: Reply) -> bytes:
    if reply.stream is None:
        return reply.body
    return b"".join([c async for c in reply.stream])


# --- refusals: before anything is forwarded -----------------------------------------------


@pytest.mark.parametrize(
    ("path", "key", "status", "message"),
    [
        ("/v1/chat/completions", "sk-1", 404, "route not supported"),
        (CHAT_PATH, "", 401, "api key not found"),
        (CHAT_PATH, "sk-wrong", 401, "key is not found"),
        ("/api/providers/openai/v1/nope", "sk-1", 404, "route not supported"),
        ("/api/custom/providers/secret/generate", "", 401, "api key not found"),  # auth first
        ("/api/custom/providers/secret/generate", "sk-1", 404, "route not supported"),
        ("/api/providers/openai/v1/a/%2e%2e/b", "sk-1", 400, "dot segments"),
    ],
)
async def test_refusals_answer_in_openai_shape_and_forward_nothing(
    path: str, key: str, status: int, message: str
) -> None:
    world = make_world()
    reply = await world.call(path, key=key)
    body = json.loads(reply.body)
    assert reply.status == status and message in body["error"]["message"], body
    assert not world.upstream.requests
    assert [e.status for e in world.events.all] == [status]


async def test_refusals_on_anthropic_routes_use_anthropic_error_shape() -> None:
    world = make_world(allowed_paths=(PathConfig("/api/providers/openai/v1/chat/completions", "POST"),))
    reply = await world.call("/api/providers/anthropic/v1/messages", {"model": "claude-3-haiku"})
    assert reply.status == 403
    assert json.loads(reply.body) == {
        "type": "error",
        "error": {"type": "permission_error", "message": "[BricksLLM] path is not allowed"},
    }


async def test_a_key_without_a_setting_for_the_provider_is_forbidden() -> None:
    world = make_world(setting_ids=("s-openai",))
    reply = await world.call("/api/providers/anthropic/v1/messages", {"model": "claude-3-haiku"})
    assert reply.status == 403 and b"no anthropic provider setting" in reply.body
    assert not world.upstream.requests


@pytest.mark.parametrize(
    ("body", "headers", "message"),
    [
        (b"{not json", {}, "not valid JSON"),
        (b"[1, 2]", {}, "must be a JSON object"),
        (CHAT, {"x-request-timeout": "inf"}, "invalid timeout"),
        (CHAT, {"x-request-timeout": "-1s"}, "invalid timeout"),
        ({"model": "dall-e-3", "prompt": "x", "n": 1e20}, {}, "n must be a whole number"),
        ({"model": "dall-e-3", "prompt": "x", "n": "two"}, {}, "n must be a whole number"),
    ],
)
async def test_client_mistakes_are_400_and_never_forwarded(
    body: object, headers: dict[str, str], message: str
) -> None:
    world = make_world()
    path = "/api/providers/openai/v1/images/generations" if "n must" in message else CHAT_PATH
    reply = await world.call(path, body, **headers)
    assert reply.status == 400 and message in json.loads(reply.body)["error"]["message"]
    assert not world.upstream.requests


async def test_rate_limit_refusal_carries_retry_after_and_rate_headers() -> None:
    world = make_world(rate_limit_over_time=1, rate_limit_unit="m")
    assert (await world.call()).status == 200
    reply = await world.call()
    headers = dict(reply.headers)
    assert reply.status == 429 and headers["Retry-After"] == str(60 - int(NOW) % 60)
    assert headers["x-ratelimit-limit-requests"] == "1" and headers["x-ratelimit-remaining-requests"] == "0"
    assert len(world.upstream.requests) == 1


# --- forwarding ------------------------------------------------------------------------------------


async def test_the_upstream_gets_the_client_bytes_with_the_provider_credential_only() -> None:
    world = make_world()
    raw = b'{"model": "gpt-4o-mini", "messages": [], "seed": 123456789012345678901234567890}'
    reply = await world.call(CHAT_PATH, raw, **{"x-custom-event-id": "c-1", "OpenAI-Project": "other"})
    assert reply.status == 200 and json.loads(reply.body) == ANSWER
    request, body = world.upstream.requests[0]
    headers = {k.lower(): v for k, v in request.headers}
    assert request.url == "http://up/v1/chat/completions" and body == raw
    assert headers["authorization"] == "Bearer sk-upstream"
    assert "x-custom-event-id" not in headers and "openai-project" not in headers
    [event] = world.events.all
    assert (event.status, event.custom_id, event.model, event.prompt_token_count) == (
        200,
        "c-1",
        "gpt-4o-mini",
        1000,
    )
    assert event.cost_micros == round(ANSWER_MICROS)


async def test_streams_ask_for_usage_and_withhold_it_from_a_client_that_did_not() -> None:
    world = make_world(lambda r: FakeResponse(200, {"Content-Type": "text/event-stream"}, STREAM))
    reply = await world.call(CHAT_PATH, {**CHAT, "stream": True})
    out = await drain(reply)
    sent = json.loads(world.upstream.requests[0][1])
    assert sent["stream_options"] == {"include_usage": True}
    assert out == STREAM[0] + STREAM[1] + STREAM[3]  # the usage chunk was ours
    assert world.events.all[0].cost_micros == round(ANSWER_MICROS)


async def test_a_client_that_leaves_mid_stream_is_billed_for_what_was_generated() -> None:
    world = make_world(lambda r: FakeResponse(200, {"Content-Type": "text/event-stream"}, STREAM))
    reply = await world.call(CHAT_PATH, {**CHAT, "stream": True})
    assert reply.stream is not None
    first = await reply.stream.__anext__()
    await reply.stream.aclose()  # what the server does when the client's socket is gone
    assert b"hel" in first
    [event] = world.events.all
    assert event.status == 499
    assert event.completion_token_count == 1 and event.prompt_token_count > 0  # estimated offline
    assert event.cost_micros > 0


async def test_an_upstream_that_breaks_mid_stream_ends_it_with_an_error_event() -> None:
    broken = [STREAM[0], UpstreamError("reset")]
    world = make_world(lambda r: FakeResponse(200, {"Content-Type": "text/event-stream"}, broken))
    out = await drain(await world.call(CHAT_PATH, {**CHAT, "stream": True}))
    assert out.startswith(STREAM[0]) and b'"type":"bricksllm_error"' in out
    assert world.events.all[0].status == 502


@pytest.mark.parametrize(("error", "status"), [(UpstreamError("x"), 502), (UpstreamTimeout("x"), 504)])
async def test_transport_failures_are_502_and_504(error: Exception, status: int) -> None:
    def fail(request: UpstreamRequest) -> FakeResponse:
        raise error

    world = make_world(fail)
    reply = await world.call()
    assert reply.status == status and json.loads(reply.body)["error"]["type"] == "api_error"
    assert [e.status for e in world.events.all] == [status]


async def test_a_large_answer_is_streamed_with_its_length() -> None:
    big = b"x" * (BUFFERED_ANSWER + 1)
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(len(big))}
    world = make_world(lambda r: FakeResponse(200, headers, [big[:10], big[10:]]))
    reply = await world.call("/api/providers/openai/v1/files/f-1/content", b"", method="GET")
    assert reply.stream is not None and ("Content-Length", str(len(big))) in reply.headers
    assert await drain(reply) == big


async def test_an_unreadable_successful_answer_is_flagged() -> None:
    headers = {"Content-Type": "application/json", "Content-Length": "5"}
    world = make_world(lambda r: FakeResponse(200, headers, [b"{oops"]))
    reply = await world.call()
    assert reply.status == 200 and reply.body == b"{oops"
    assert world.metrics.counts["pricing.unreadable_answer"] == 1


async def test_custom_providers_are_resolved_from_configuration_and_estimated() -> None:
    answer = {"output": {"text": "four words right here"}}
    world = make_world(lambda r: json_answer(answer))
    reply = await world.call("/api/custom/providers/acme/generate", {"model": "gpt-4o", "prompt": "hello"})
    assert reply.status == 200
    request, _ = world.upstream.requests[0]
    assert request.url == "http://acme/gen" and ("Authorization", "Bearer acme-key") in request.headers
    [event] = world.events.all
    assert (event.provider, event.model, event.prompt_token_count, event.completion_token_count) == (
        "acme", "gpt-4o", 1, 4,
    )  # fmt: skip


async def test_a_stream_is_settled_before_the_client_sees_its_end() -> None:
    world = make_world(lambda r: FakeResponse(200, {"Content-Type": "text/event-stream"}, STREAM))
    reply = await world.call(CHAT_PATH, {**CHAT, "stream": True})
    assert reply.stream is not None
    recorded_when_seen: list[int] = []
    async for chunk in reply.stream:
        if b"[DONE]" in chunk:
            recorded_when_seen.append(len(world.events.all))
    assert recorded_when_seen == [1]  # the event (and the spend) existed before [DONE] went out
    assert world.events.all[0].cost_micros == round(ANSWER_MICROS)
