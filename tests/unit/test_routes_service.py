"""`RouteService.handle` without sockets: a scripted `FakeUpstream`, the in-memory breaker and
cache, and a recorded `sleep`, so the retry rules (intervals, Retry-After and its bound, which
answers fail over) are checked exactly. The wire failures are in tests/integration/test_routes_*."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from multidict import CIMultiDict

from bricksllm.domain.models import Event, Key, ProviderSetting, hash_secret
from bricksllm.domain.routes import Route, RouteStep
from bricksllm.errors import UpstreamError, UpstreamTimeout
from bricksllm.ports import ConfigSnapshot, UpstreamRequest
from bricksllm.providers.registry import ProviderRegistry
from bricksllm.services.config_cache import ConfigIndex
from bricksllm.services.exchange import Inbound, Reply
from bricksllm.services.limits import Limits
from bricksllm.services.proxy import ProxyService
from bricksllm.services.routes import ProxyFront, RouteService
from bricksllm.storage.memory_counters import MemoryCounters
from bricksllm.storage.memory_routes import MemoryBreaker, MemoryCache
from bricksllm.telemetry.metrics import InMemoryMetrics
from bricksllm.upstream.fake import FakeResponse, FakeUpstream
from tests.unit.test_proxy_pipeline import ANSWER, ANSWER_MICROS, STREAM, Body, Events, drain, json_answer

NOW = 1_700_000_010.0
CHAT = {"model": "anything", "messages": [{"role": "user", "content": "hi"}]}
SSE = {"Content-Type": "text/event-stream"}

Step = Callable[[UpstreamRequest], FakeResponse]


def error(status: int, retry_after: str = "") -> FakeResponse:
    headers = {"Retry-After": retry_after} if retry_after else {}
    body = json.dumps({"error": {"message": f"upstream {status}", "type": "server_error"}}).encode()
    return FakeResponse(status, {"Content-Type": "application/json", **headers}, [body])


def refused() -> FakeResponse:
    raise UpstreamError("[BricksLLM] could not connect to the provider")


def timed_out() -> FakeResponse:
    raise UpstreamTimeout("[BricksLLM] the provider did not answer in time")


@dataclass
class World:
    front: ProxyFront
    upstream: FakeUpstream
    events: Events
    sleeps: list[float]
    counters: MemoryCounters
    script: list[Callable[[], FakeResponse]] = field(default_factory=list)

    async def call(self, path: str = "/api/routes/chat", body: object = CHAT, key: str = "sk-1") -> Reply:
        headers = CIMultiDict({"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
        return await self.front.handle(Inbound("POST", path, "", headers, Body(json.dumps(body).encode())))

    def sent(self) -> list[tuple[str, dict[str, object]]]:
        return [(r.url, json.loads(b)) for r, b in self.upstream.requests]


def make_world(
    *steps: RouteStep, strategy: str = "constant", cache: bool = False, failures: int = 100
) -> World:
    settings = [
        ProviderSetting(id="s-openai", provider="openai", created_at=0, updated_at=0,
                        setting={"apikey": "sk-up", "url": "http://openai"}),
        ProviderSetting(id="s-azure", provider="azure", created_at=0, updated_at=0,
                        setting={"apikey": "az", "url": "http://azure"}),
        ProviderSetting(id="s-vllm", provider="vllm", created_at=0, updated_at=0, setting={"url": "http://vllm"}),
    ]  # fmt: skip
    keys = [
        Key(key_id="k1", name="k", key_hash=hash_secret("sk-1"), created_at=0, updated_at=0,
            setting_ids=("s-openai", "s-azure", "s-vllm")),
        Key(key_id="k2", name="k", key_hash=hash_secret("sk-2"), created_at=0, updated_at=0,
            setting_ids=("s-openai",)),
    ]  # fmt: skip
    route = Route(
        id="r1", name="r", path="/chat", created_at=0, updated_at=0, key_ids=("k1",), steps=steps,
        retry_strategy=strategy, cache_enabled=cache,
    )  # fmt: skip

    class Config:
        current = ConfigIndex.build(ConfigSnapshot(1, keys, settings, [], routes=[route]))

    world: World

    def handler(request: UpstreamRequest) -> FakeResponse:
        return world.script.pop(0)()

    metrics = InMemoryMetrics()
    upstream = FakeUpstream(handler)
    events = Events()
    counters = MemoryCounters(now=lambda: NOW)
    limits = Limits(counters, metrics, fail_open=False, clock=lambda: NOW)
    registry = ProviderRegistry()
    proxy = ProxyService(Config(), limits, events, registry, upstream, metrics, clock=lambda: NOW)
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    routes = RouteService(
        proxy, Config(), limits, registry, upstream, MemoryBreaker(failures, 30.0), MemoryCache(100, 1 << 20),
        metrics, retry_after_max=10.0, clock=lambda: NOW, sleep=sleep,
    )  # fmt: skip
    world = World(ProxyFront(proxy, routes), upstream, events, sleeps, counters)
    return world


OPENAI = RouteStep("openai", "gpt-4o-mini", retries=2, retry_interval="1s", retry_interval_seconds=1.0)
AZURE = RouteStep("azure", "prod-4o", setting_id="s-azure")
VLLM = RouteStep("vllm", "llama", params={"temperature": 0})


def ok() -> FakeResponse:
    return json_answer(ANSWER)


async def test_the_first_step_answers_with_its_model_and_params() -> None:
    world = make_world(VLLM)
    world.script = [ok]
    reply = await world.call()
    assert reply.status == 200
    url, body = world.sent()[0]
    assert url == "http://vllm/v1/chat/completions"
    assert body["model"] == "llama" and body["temperature"] == 0 and body["messages"] == CHAT["messages"]
    (event,) = world.events.all
    assert (event.route_id, event.route_step, event.attempts, event.cached) == ("r1", 0, 1, False)
    assert event.provider == "vllm" and event.model == "llama" and event.path == "/api/routes/chat"


async def test_retries_wait_the_interval_then_fail_over_charging_once() -> None:
    world = make_world(OPENAI, AZURE)
    world.script = [lambda: error(503), refused, timed_out, ok]
    reply = await world.call()
    assert reply.status == 200
    assert world.sleeps == [1.0, 1.0]  # constant: between the three OpenAI attempts, none before Azure
    urls = [u for u, _ in world.sent()]
    assert urls[:3] == ["http://openai/v1/chat/completions"] * 3
    assert urls[3] == "http://azure/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21"
    (event,) = world.events.all
    assert (event.route_step, event.attempts, event.status, event.provider) == (1, 4, 200, "azure")
    assert event.cost_micros > 0
    assert await world.counters.spend("k1") == event.cost_micros


async def test_exponential_intervals_double() -> None:
    world = make_world(
        RouteStep("openai", "gpt-4o-mini", retries=3, retry_interval_seconds=0.5), strategy="exponential"
    )
    world.script = [lambda: error(500), lambda: error(502), lambda: error(504), ok]
    assert (await world.call()).status == 200
    assert world.sleeps == [0.5, 1.0, 2.0]


async def test_retry_after_is_honoured_up_to_the_bound() -> None:
    world = make_world(OPENAI, AZURE)
    world.script = [lambda: error(429, "3"), lambda: error(429, "60"), ok]
    assert (await world.call()).status == 200
    assert world.sleeps == [3.0]  # then 60 s is over ROUTE_RETRY_AFTER_MAX: Azure at once
    assert world.events.all[0].route_step == 1


async def test_the_last_upstreams_retry_after_is_passed_on() -> None:
    world = make_world(RouteStep("openai", "gpt-4o-mini"))
    world.script = [lambda: error(429, "42")]
    reply = await world.call()
    assert reply.status == 429 and ("Retry-After", "42") in reply.headers
    assert json.loads(reply.body)["error"]["message"] == "upstream 429"


async def test_a_client_error_is_returned_at_once_without_failover() -> None:
    world = make_world(OPENAI, AZURE)
    world.script = [lambda: error(400)]
    reply = await world.call()
    assert reply.status == 400
    assert b"upstream 400" in await drain(reply)
    assert len(world.upstream.requests) == 1 and world.sleeps == []
    assert world.events.all[0].cost_micros == 0


async def test_every_step_failing_returns_the_last_upstream_error_and_charges_nothing() -> None:
    world = make_world(RouteStep("openai", "gpt-4o-mini"), AZURE)
    world.script = [lambda: error(500), lambda: error(503)]
    reply = await world.call()
    assert reply.status == 503
    assert json.loads(reply.body)["error"]["message"] == "upstream 503"
    (event,) = world.events.all
    assert (event.status, event.cost_micros, event.attempts, event.route_step) == (503, 0, 2, 1)
    assert await world.counters.spend("k1") == 0


async def test_transport_failures_end_as_502_or_504_in_openai_shape() -> None:
    world = make_world(RouteStep("openai", "gpt-4o-mini"), AZURE)
    world.script = [refused, timed_out]
    reply = await world.call()
    assert reply.status == 504
    assert json.loads(reply.body)["error"]["type"] == "api_error"
    world.script = [timed_out, refused]
    assert (await world.call()).status == 502


async def test_a_stream_fails_over_before_its_first_byte_only() -> None:
    world = make_world(RouteStep("openai", "gpt-4o-mini"), AZURE)
    dying = UpstreamError("[BricksLLM] the connection to the provider was lost")
    world.script = [lambda: FakeResponse(200, SSE, [dying]), lambda: FakeResponse(200, SSE, STREAM)]
    reply = await world.call(body={**CHAT, "stream": True})
    text = await drain(reply)
    assert text.endswith(b"data: [DONE]\n\n") and b"hel" in text
    assert world.events.all[-1].route_step == 1
    assert world.sent()[1][1]["stream_options"] == {"include_usage": True}
    # dying after its first byte: the client has it, so the stream ends with an error, no failover
    world.script = [lambda: FakeResponse(200, SSE, [STREAM[0], dying])]
    text = await drain(await world.call(body={**CHAT, "stream": True}))
    assert b"hel" in text and b"interrupted" in text
    assert len(world.upstream.requests) == 3


async def test_the_breaker_skips_an_upstream_that_keeps_failing() -> None:
    world = make_world(RouteStep("openai", "gpt-4o-mini"), AZURE, failures=2)
    world.script = [lambda: error(503), ok, lambda: error(503), ok, ok]
    for _ in range(3):
        assert (await world.call()).status == 200
    urls = [u for u, _ in world.sent()]
    assert sum("openai/v1" in u for u in urls) == 2  # the third call went straight to Azure
    assert world.events.all[-1].attempts == 1 and world.events.all[-1].route_step == 1


async def test_keys_outside_the_route_and_unknown_routes_are_refused() -> None:
    world = make_world(OPENAI)
    assert (await world.call(key="sk-2")).status == 403
    assert (await world.call(path="/api/routes/nope")).status == 404
    assert (await world.call(key="sk-unknown")).status == 401
    assert world.upstream.requests == []
    assert [e.status for e in world.events.all if e.route_id == "r1"] == [403, 401]


async def test_the_sdk_suffix_names_the_operation() -> None:
    world = make_world(RouteStep("openai", "text-embedding-3-small"))
    embedding = {"object": "list", "data": [], "model": "m", "usage": {"prompt_tokens": 5, "total_tokens": 5}}
    world.script = [lambda: json_answer(embedding)]
    reply = await world.call(path="/api/routes/chat/embeddings", body={"input": "hello", "model": "x"})
    assert reply.status == 200
    assert world.sent()[0][0] == "http://openai/v1/embeddings"


async def test_a_cache_hit_costs_nothing_and_is_flagged() -> None:
    world = make_world(RouteStep("openai", "gpt-4o-mini"), cache=True)
    world.script = [ok]
    first = await world.call()
    second = await world.call()
    assert ("x-cache", "miss") in first.headers and ("x-cache", "hit") in second.headers
    assert second.body == first.body
    assert len(world.upstream.requests) == 1
    miss, hit = world.events.all
    assert miss.cost_micros == round(ANSWER_MICROS) and not miss.cached
    assert (hit.cost_micros, hit.cached, hit.attempts, hit.status) == (0, True, 0, 200)
    assert await world.counters.spend("k1") == miss.cost_micros
    world.script = [ok]
    assert ("x-cache", "miss") in (await world.call(body={**CHAT, "temperature": 0.5})).headers


async def test_a_cached_stream_is_replayed_as_a_stream() -> None:
    world = make_world(RouteStep("openai", "gpt-4o-mini"), cache=True)
    world.script = [lambda: FakeResponse(200, SSE, STREAM)]
    first = await drain(await world.call(body={**CHAT, "stream": True}))
    hit = await world.call(body={**CHAT, "stream": True})
    assert hit.stream is not None and ("x-cache", "hit") in hit.headers
    assert await drain(hit) == first
    assert len(world.upstream.requests) == 1
    event: Event = world.events.all[-1]
    assert event.cached and event.cost_micros == 0
