"""Routes served end to end on the embedded default: the official OpenAI SDK as the client, mock
upstreams speaking OpenAI's and Azure's wire formats and failing in sequence (a refused
connection, 429 with Retry-After, 503, a timeout, streams dying before and after their first
byte), the spend charged once, and the exact cache."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest

from tests.integration.conftest import Running
from tests.integration.mock_azure import UPSTREAM_KEY, MockAzure
from tests.integration.mock_scripted import ScriptedOpenAI

MESSAGES: list[Any] = [{"role": "user", "content": "Say hello"}]
CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens, the connection is refused


class World:
    def __init__(self, gw: Running, mock: ScriptedOpenAI, azure: MockAzure) -> None:
        self.gw, self.mock, self.azure = gw, mock, azure
        self.key_id = ""

    async def setup(self, **key_fields: Any) -> None:
        self.openai_id = await self.gw.create_setting(self.mock.url)
        self.refused_id = await self.gw.create_setting(CLOSED)
        status, azure = await self.gw.admin(
            "PUT",
            "/api/provider-settings",
            {"provider": "azure", "setting": {"apikey": UPSTREAM_KEY, "url": self.azure.url}},
        )
        assert status == 200
        self.azure_id = azure["id"]
        key = await self.gw.create_key(
            self.openai_id, settingIds=[self.openai_id, self.azure_id], **key_fields
        )
        self.key_id = key["keyId"]

    async def route(
        self, steps: list[dict[str, Any]], path: str = "/chat/prod", **extra: Any
    ) -> dict[str, Any]:
        body = {"name": "r", "path": path, "keyIds": [self.key_id], "steps": steps, **extra}
        status, created = await self.gw.admin("POST", "/api/routes", body)
        assert status == 200, created
        return dict(created)

    def client(self, path: str = "/chat/prod", key: str = "my-secret-key") -> openai.AsyncOpenAI:
        client = openai.AsyncOpenAI(
            api_key=key, base_url=f"{self.gw.proxy_url}/api/routes{path}", max_retries=0
        )
        self.gw.clients.append(client)
        return client

    async def events(self) -> list[dict[str, Any]]:
        await self.gw.flush_events()
        return list((await self.gw.admin("GET", f"/api/events?keyIds={self.key_id}"))[1])

    async def spend(self) -> int:
        return int(
            (await self.gw.admin("GET", f"/api/reporting/keys/{self.key_id}"))[1]["costInMicroDollars"]
        )

    def azure_step(self, **extra: Any) -> dict[str, Any]:
        return {"provider": "azure", "model": "prod-4o", "settingId": self.azure_id, **extra}


@pytest.fixture
async def world(gateway: Running, scripted: ScriptedOpenAI, mock_azure: MockAzure) -> World:
    w = World(gateway, scripted, mock_azure)
    await w.setup()
    return w


async def test_the_sdk_calls_a_route_for_chat_and_embeddings(world: World) -> None:
    await world.route(
        [{"provider": "openai", "model": "gpt-4o-mini", "params": {"temperature": 0.3, "seed": 7}}]
    )
    client = world.client()
    answer = await client.chat.completions.create(model="whatever", messages=MESSAGES)
    assert answer.choices[0].message.content
    sent = world.mock.last("/chat/completions").json()
    assert (sent["model"], sent["temperature"], sent["seed"]) == ("gpt-4o-mini", 0.3, 7)
    assert world.mock.last().headers["Authorization"] == "Bearer sk-upstream-secret"  # never the client's key
    embedded = await client.embeddings.create(model="whatever", input="hello")
    assert embedded.data
    assert world.mock.last("/embeddings").json()["model"] == "gpt-4o-mini"
    events = await world.events()
    assert {e["path"] for e in events} == {
        "/api/routes/chat/prod/chat/completions",
        "/api/routes/chat/prod/embeddings",
    }
    assert all(e["route_step"] == 0 and e["attempts"] == 1 and e["cost_in_usd"] > 0 for e in events)


async def test_failures_in_sequence_fail_over_and_charge_one_call(world: World) -> None:
    await world.route(
        [
            {"provider": "openai", "model": "gpt-4o-mini", "settingId": world.refused_id, "retries": 1},
            {"provider": "openai", "model": "gpt-4o-mini", "retries": 2, "retryInterval": "10ms",
             "timeout": "500ms"},
            world.azure_step(),
        ]
    )  # fmt: skip
    world.mock.script = ["429:0", "503", "hang"]
    answer = await world.client().chat.completions.create(model="x", messages=MESSAGES)
    assert answer.model == "gpt-4o-2024-08-06"  # Azure's deployment answered
    assert len(world.mock.requests) == 3 and len(world.azure.requests) == 1
    assert "api-version=" in world.azure.last().raw_path
    (event,) = await world.events()
    assert (event["route_step"], event["attempts"], event["status"]) == (2, 6, 200)
    assert (event["provider"], event["model"]) == ("azure", "prod-4o")
    # the same call straight to the Azure step: the key was charged exactly one call's price
    await world.route([world.azure_step()], path="/azure-only")
    await world.client("/azure-only").chat.completions.create(model="x", messages=MESSAGES)
    (direct,) = [e for e in await world.events() if e["path"].startswith("/api/routes/azure-only/")]
    assert direct["route_step"] == 0 and direct["cost_in_usd"] == event["cost_in_usd"] > 0
    assert await world.spend() == round(2 * event["cost_in_usd"] * 1e6)


async def test_a_client_error_is_answered_at_once(world: World) -> None:
    await world.route([{"provider": "openai", "model": "gpt-4o-mini", "retries": 3}, world.azure_step()])
    world.mock.script = ["400"]
    with pytest.raises(openai.BadRequestError, match="scripted 400"):
        await world.client().chat.completions.create(model="x", messages=MESSAGES)
    assert len(world.mock.requests) == 1 and world.azure.requests == []


async def test_when_every_step_fails_the_last_error_is_returned_and_nothing_charged(world: World) -> None:
    await world.route(
        [{"provider": "openai", "model": "gpt-4o-mini", "settingId": world.refused_id},
         {"provider": "openai", "model": "gpt-4o-mini", "retries": 1}]
    )  # fmt: skip
    world.mock.script = ["500", "503"]
    with pytest.raises(openai.InternalServerError) as raised:
        await world.client().chat.completions.create(model="x", messages=MESSAGES)
    assert raised.value.status_code == 503 and "scripted 503" in str(raised.value)
    (event,) = await world.events()
    assert (event["status"], event["attempts"], event["cost_in_usd"]) == (503, 3, 0)
    assert await world.spend() == 0
    # only transport failures: 502 in OpenAI's shape
    await world.route([{"provider": "openai", "model": "m", "settingId": world.refused_id}], path="/dead")
    with pytest.raises(openai.APIStatusError) as raised:
        await world.client("/dead").chat.completions.create(model="x", messages=MESSAGES)
    assert raised.value.status_code == 502


async def test_a_stream_fails_over_before_its_first_byte_not_after(world: World) -> None:
    await world.route([{"provider": "openai", "model": "gpt-4o-mini"}, world.azure_step()])
    world.mock.script = ["die-before"]
    stream = await world.client().chat.completions.create(model="x", messages=MESSAGES, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Hello from Azure!"
    world.mock.script = ["die-after"]
    url = f"{world.gw.proxy_url}/api/routes/chat/prod/chat/completions"
    body = {"model": "x", "messages": MESSAGES, "stream": True}
    async with world.gw.http.post(url, json=body, headers={"Authorization": "Bearer my-secret-key"}) as resp:
        assert resp.status == 200
        received = await resp.read()
    assert (
        received.startswith(b'data: {"id":"c"') and b"interrupted" in received
    )  # no second answer spliced in
    assert len(world.azure.requests) == 1
    steps = sorted((e["route_step"], e["attempts"], e["status"]) for e in await world.events())
    assert steps == [(0, 1, 502), (1, 2, 200)]  # the second stream broke after its first byte


async def test_the_cache_answers_identical_requests(world: World) -> None:
    await world.route(
        [{"provider": "openai", "model": "gpt-4o-mini"}], cacheConfig={"enabled": True, "ttl": "1h"}
    )
    client = world.client()
    params: dict[str, Any] = {"model": "x", "messages": MESSAGES, "temperature": 0.2, "max_tokens": 50}
    first = await client.chat.completions.with_raw_response.create(**params)
    again = await client.chat.completions.with_raw_response.create(**params)
    assert (first.headers["x-cache"], again.headers["x-cache"]) == ("miss", "hit")
    assert again.parse().model_dump() == first.parse().model_dump()
    assert len(world.mock.requests) == 1
    for change in (
        {"temperature": 0.3},
        {"max_tokens": 51},
        {"seed": 1},
        {"response_format": {"type": "json_object"}},
    ):
        reply = await client.chat.completions.with_raw_response.create(**{**params, **change})
        assert reply.headers["x-cache"] == "miss", change
    streamed = await client.chat.completions.create(**params, stream=True)
    first_text = "".join([c.choices[0].delta.content or "" async for c in streamed if c.choices])
    replayed = await client.chat.completions.with_raw_response.create(**params, stream=True)
    assert replayed.headers["x-cache"] == "hit"
    replay_text = "".join([c.choices[0].delta.content or "" async for c in replayed.parse() if c.choices])
    assert replay_text == first_text == "Hello from the mock!"
    assert len(world.mock.requests) == 6
    events = await world.events()
    hits = [e for e in events if e["cached"]]
    assert len(hits) == 2 and all(e["cost_in_usd"] == 0 and e["attempts"] == 0 for e in hits)
    assert await world.spend() == round(sum(e["cost_in_usd"] for e in events) * 1e6)


async def test_cache_ttl_and_rate_limit(
    gateway: Running, scripted: ScriptedOpenAI, mock_azure: MockAzure
) -> None:
    world = World(gateway, scripted, mock_azure)
    await world.setup(rateLimitOverTime=3, rateLimitUnit="m")
    await world.route(
        [{"provider": "openai", "model": "gpt-4o-mini"}], cacheConfig={"enabled": True, "ttl": "1s"}
    )
    client = world.client()
    first = await client.chat.completions.with_raw_response.create(model="x", messages=MESSAGES)
    hit = await client.chat.completions.with_raw_response.create(model="x", messages=MESSAGES)
    assert (first.headers["x-cache"], hit.headers["x-cache"]) == ("miss", "hit")
    await asyncio.sleep(1.1)
    expired = await client.chat.completions.with_raw_response.create(model="x", messages=MESSAGES)
    assert expired.headers["x-cache"] == "miss"
    with pytest.raises(openai.RateLimitError):  # the hit counted against the rate limit too
        await client.chat.completions.create(model="x", messages=MESSAGES)
    assert len(scripted.requests) == 2


async def test_a_key_outside_the_route_is_refused_before_forwarding(world: World) -> None:
    await world.route([{"provider": "openai", "model": "gpt-4o-mini"}])
    await world.gw.create_key(world.openai_id, secret="other-key")
    with pytest.raises(openai.PermissionDeniedError):
        await world.client(key="other-key").chat.completions.create(model="x", messages=MESSAGES)
    with pytest.raises(openai.AuthenticationError):
        await world.client(key="nobody").chat.completions.create(model="x", messages=MESSAGES)
    assert world.mock.requests == []


async def test_a_deleted_route_is_gone_at_once(world: World) -> None:
    created = await world.route([{"provider": "openai", "model": "gpt-4o-mini"}])
    client = world.client()
    await client.chat.completions.create(model="x", messages=MESSAGES)
    assert (await world.gw.admin("DELETE", f"/api/routes/{created['id']}"))[0] == 200
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model="x", messages=MESSAGES)


async def test_vllm_step(world: World) -> None:
    status, vllm = await world.gw.admin(
        "PUT", "/api/provider-settings", {"provider": "vllm", "setting": {"url": world.mock.url}}
    )
    assert status == 200
    await world.route(
        [{"provider": "vllm", "model": "meta-llama/Llama-3.1-8B-Instruct", "settingId": vllm["id"]}]
    )
    await world.client().chat.completions.create(model="x", messages=MESSAGES)
    assert world.mock.last("/v1/chat/completions").json()["model"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert json.loads(world.mock.last().body)["messages"] == MESSAGES


async def test_the_keys_pii_policy_screens_route_calls(world: World) -> None:
    rules = {"config": {"rules": {"email": "allow_but_redact", "credit_debit_number": "block"}}}
    status, policy = await world.gw.admin("POST", "/api/policies", {"name": "p", **rules})
    assert status == 200, policy
    status, _ = await world.gw.admin(
        "PATCH", f"/api/key-management/keys/{world.key_id}", {"policyId": policy["id"]}
    )
    assert status == 200
    await world.route([{"provider": "openai", "model": "gpt-4o-mini"}], cacheConfig={"enabled": True})
    client = world.client()
    mail: Any = [{"role": "user", "content": "write to ann@example.com"}]
    await client.chat.completions.create(model="x", messages=mail)
    assert world.mock.last("/chat/completions").json()["messages"][0]["content"] == "write to [EMAIL]"
    with pytest.raises(openai.PermissionDeniedError, match="credit_debit_number"):
        card: Any = [{"role": "user", "content": "charge 4111 1111 1111 1111"}]
        await client.chat.completions.create(model="x", messages=card)
    assert len(world.mock.requests) == 1
    actions = sorted((e["action"], e["status"]) for e in await world.events())
    assert actions == [("blocked", 403), ("redacted", 200)]


async def test_a_step_timeout_bounds_a_stream_until_its_first_byte_only(world: World) -> None:
    await world.route([{"provider": "openai", "model": "gpt-4o-mini", "timeout": "1s"}, world.azure_step()])
    client = world.client()
    # 250 ms before the first byte, then 250 ms between events: over 2 s in all
    stream = await client.chat.completions.create(
        model="x", messages=MESSAGES, stream=True, extra_headers={"x-mock": "slow-250"}
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Hello from the mock!" and world.azure.requests == []
    # not streamed, the same answer takes longer than the step's timeout: Azure answers
    answer = await client.chat.completions.create(
        model="x", messages=MESSAGES, extra_headers={"x-mock": "slow-1500"}
    )
    assert answer.model == "gpt-4o-2024-08-06"


async def test_embeddings_fail_over_to_an_azure_deployment(world: World) -> None:
    await world.route(
        [{"provider": "openai", "model": "text-embedding-3-small"}, world.azure_step(model="embed")]
    )
    world.mock.script = ["500"]
    embedded = await world.client().embeddings.create(model="x", input=["one", "two"])
    assert len(embedded.data) == 2
    assert world.azure.last().path == "/openai/deployments/embed/embeddings"
    (event,) = await world.events()
    assert (event["route_step"], event["attempts"], event["model"]) == (1, 2, "embed")
    assert event["cost_in_usd"] > 0 and await world.spend() == round(event["cost_in_usd"] * 1e6)
