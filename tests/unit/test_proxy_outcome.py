"""What observers (metrics, the request log) get for each request: the `Outcome`'s reason, route
and times, and the `x-bricksllm-overhead-ms` header of every reply, on each path through
`ProxyService` (admitted, refused for each reason, streamed, failed upstream, abandoned)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bricksllm.domain.models import PathConfig
from bricksllm.errors import UpstreamError, UpstreamTimeout
from bricksllm.ports import UpstreamRequest
from bricksllm.providers.registry import ProviderRegistry
from bricksllm.services.exchange import Reply
from bricksllm.services.proxy import ProxyService
from bricksllm.services.proxy_record import OVERHEAD_HEADER, Outcome
from bricksllm.upstream.fake import FakeResponse, FakeUpstream
from tests.unit.test_proxy_pipeline import (
    ANSWER,
    CHAT,
    CHAT_PATH,
    STREAM,
    World,
    drain,
    json_answer,
    make_world,
)

ANTHROPIC = "/api/providers/anthropic/v1/messages"
HAIKU = {"model": "claude-3-haiku-20240307", "max_tokens": 5, "messages": []}
SSE = {"Content-Type": "text/event-stream"}


class Seen:
    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []

    def observe(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)


class SlowUpstream(FakeUpstream):
    async def send(self, request: UpstreamRequest) -> FakeResponse:
        await asyncio.sleep(0.05)
        return await super().send(request)


def observed(world: World, upstream: FakeUpstream | None = None) -> Seen:
    """The same world, its service rebuilt with an observer (and maybe another upstream)."""
    seen = Seen()
    old = world.service
    world.service = ProxyService(
        old._config, old._limits, world.events, ProviderRegistry(), upstream or world.upstream,
        world.metrics, clock=old._clock, observers=[seen],
    )  # fmt: skip
    return seen


def overhead(reply: Reply) -> float:
    [value] = [v for k, v in reply.headers if k == OVERHEAD_HEADER]
    return float(value)


async def test_an_admitted_call() -> None:
    world = make_world()
    seen = observed(world, SlowUpstream(lambda r: json_answer(ANSWER)))
    reply = await world.call()
    assert reply.status == 200 and overhead(reply) >= 0
    [o] = seen.outcomes
    assert (o.reason, o.route, o.ttfb_ms, o.stored) == ("", CHAT_PATH, None, True)
    assert o.upstream_ms is not None and o.upstream_ms >= 50  # the provider's 50 ms
    assert o.overhead_ms >= 0 and o.overhead_ms + o.upstream_ms <= o.event.latency_in_ms + 1
    assert o.event.status == 200 and o.event.prompt_token_count == 1000


async def test_a_stream_has_a_time_to_first_byte_and_its_overhead_stops_at_the_headers() -> None:
    world = make_world(lambda r: FakeResponse(200, SSE, STREAM))
    seen = observed(world)
    reply = await world.call(CHAT_PATH, {**CHAT, "stream": True})
    assert overhead(reply) >= 0  # in the reply's headers, before its body
    await drain(reply)
    [o] = seen.outcomes
    assert o.reason == "" and o.route == CHAT_PATH
    assert o.ttfb_ms is not None and o.upstream_ms is not None and o.ttfb_ms >= 0
    assert o.overhead_ms == pytest.approx(overhead(reply), abs=0.01)


@pytest.mark.parametrize(
    ("key_fields", "path", "body", "key", "reason", "route"),
    [
        ({}, CHAT_PATH, CHAT, "", "unauthorized", CHAT_PATH),
        ({}, CHAT_PATH, CHAT, "sk-wrong", "unauthorized", CHAT_PATH),
        ({"revoked": True}, CHAT_PATH, CHAT, "sk-1", "revoked", CHAT_PATH),
        ({"ttl_seconds": 5}, CHAT_PATH, CHAT, "sk-1", "expired", CHAT_PATH),
        ({"setting_ids": ("s-openai",)}, ANTHROPIC, HAIKU, "sk-1", "no_setting", ANTHROPIC),
        ({}, CHAT_PATH, b"{nope", "sk-1", "invalid_request", CHAT_PATH),
        ({"allowed_paths": (PathConfig(path=ANTHROPIC, method="POST"),)}, CHAT_PATH, CHAT, "sk-1",
         "path_not_allowed", CHAT_PATH),
        ({}, "/api/providers/openai/v1/nope", CHAT, "sk-1", "not_found", ""),
    ],
)  # fmt: skip
async def test_each_refusal_names_its_reason(
    key_fields: dict[str, Any], path: str, body: Any, key: str, reason: str, route: str
) -> None:
    world = make_world(**key_fields)
    seen = observed(world)
    reply = await world.call(path, body, key=key)
    assert reply.status in (400, 401, 403, 404) and overhead(reply) >= 0
    [o] = seen.outcomes
    assert (o.reason, o.route, o.upstream_ms, o.ttfb_ms) == (reason, route, None, None)
    assert world.upstream.requests == []


async def test_a_rate_limit_refusal() -> None:
    world = make_world(rate_limit_over_time=1, rate_limit_unit="m")
    seen = observed(world)
    assert (await world.call()).status == 200
    assert (await world.call()).status == 429
    assert [o.reason for o in seen.outcomes] == ["", "rate_limited"]


@pytest.mark.parametrize(
    ("error", "reason"), [(UpstreamError("x"), "upstream_error"), (UpstreamTimeout("x"), "upstream_timeout")]
)
async def test_a_failed_provider_is_its_reason_and_its_time(error: Exception, reason: str) -> None:
    def fail(request: UpstreamRequest) -> FakeResponse:
        raise error

    world = make_world(fail)
    seen = observed(world)
    reply = await world.call()
    assert overhead(reply) >= 0
    [o] = seen.outcomes
    assert o.reason == reason and o.upstream_ms is not None and o.upstream_ms >= 0


async def test_streams_that_break_or_are_abandoned() -> None:
    world = make_world(lambda r: FakeResponse(200, SSE, [STREAM[0], UpstreamError("reset")]))
    seen = observed(world)
    await drain(await world.call(CHAT_PATH, {**CHAT, "stream": True}))
    world.upstream.handler = lambda r: FakeResponse(200, SSE, STREAM)
    reply = await world.call(CHAT_PATH, {**CHAT, "stream": True})
    assert reply.stream is not None
    await reply.stream.__anext__()
    await reply.stream.aclose()
    assert [(o.event.status, o.reason) for o in seen.outcomes] == [
        (502, "upstream_error"),
        (499, "client_closed"),
    ]
