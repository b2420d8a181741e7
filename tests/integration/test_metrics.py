"""Metrics end to end: a UDP listener in the test receives the statsd / DogStatsD packets of real
requests proxied through the gateway to the mock upstream; `/metrics` is scraped and parsed with
Prometheus' own text parser; no secret, credential, prompt or completion is in either."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import GatewayFactory, Running
from tests.integration.mock_openai import COMPLETION_TOKENS, PROMPT_TOKENS, MockOpenAI

CHAT_PATH = "/api/providers/openai/v1/chat/completions"
PROMPT = "tell me the plot of the purple otter saga"
COMPLETION = "Hello from the mock!"
SECRETS = ("my-secret-key", "sk-upstream-secret", "other-secret-key")
OVERHEAD = "x-bricksllm-overhead-ms"


@dataclass
class Line:
    name: str
    value: float
    type: str
    tags: dict[str, str]


@dataclass
class Listener(asyncio.DatagramProtocol):
    raw: list[bytes] = field(default_factory=list)
    port: int = 0

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.raw.append(data)

    @property
    def lines(self) -> list[Line]:
        out = []
        for packet in self.raw:
            for text in packet.decode().split("\n"):
                head, _, rest = text.partition("|")
                name, *values = head.split(":")  # DogStatsD 1.1: several values a line
                type_, _, tags = rest.partition("|#")
                pairs = (t.partition(":") for t in tags.split(",") if tags)
                for value in values:
                    out.append(Line(name, float(value), type_, {k: v for k, _, v in pairs}))
        return out

    def find(self, name: str, **tags: str) -> list[Line]:
        return [ln for ln in self.lines if ln.name == name and tags.items() <= ln.tags.items()]

    async def wait_for(self, check: Callable[[], bool]) -> None:
        for _ in range(200):  # bounded: 2 s at most
            if check():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the expected packets did not arrive")


@pytest.fixture
async def udp() -> AsyncIterator[Listener]:
    loop = asyncio.get_running_loop()
    listener = Listener()
    transport, _ = await loop.create_datagram_endpoint(lambda: listener, local_addr=("127.0.0.1", 0))
    listener.port = transport.get_extra_info("sockname")[1]
    yield listener
    transport.close()


def shifted_clock(offset: list[float]) -> Callable[[], float]:
    """A running clock starting 10 s into a minute (the test's requests share one rate window),
    moved forward by `offset[0]` seconds."""
    t0 = time.time()
    start = (int(t0) // 60 + 1) * 60 + 10
    return lambda: start + (time.time() - t0) + offset[0]


async def datadog_gateway(start: GatewayFactory, udp: Listener, **kw: Any) -> Running:
    gw: Running = await start(
        stats_enabled=True, stats_address=f"127.0.0.1:{udp.port}", stats_provider="datadog", **kw
    )
    return gw


async def chat(gw: Running, key: str = "my-secret-key", **body: Any) -> aiohttp.ClientResponse:
    payload = {"model": "gpt-4o", "messages": [{"role": "user", "content": PROMPT}], **body}
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with gw.http.post(gw.proxy_url + CHAT_PATH, json=payload, headers=headers) as resp:
        await resp.read()
        return resp


async def test_a_proxied_call_sends_its_figures(
    start_gateway: GatewayFactory, udp: Listener, mock_openai: MockOpenAI
) -> None:
    gw = await datadog_gateway(start_gateway, udp)
    await gw.create_key(await gw.create_setting(mock_openai.url))
    resp = await chat(gw)
    assert resp.status == 200
    assert float(resp.headers[OVERHEAD]) >= 0
    route = {"provider": "openai", "route": CHAT_PATH}
    await udp.wait_for(lambda: bool(udp.find("bricksllm.proxy.cost_micros")))
    [requests] = udp.find("bricksllm.proxy.requests", **route)
    assert (requests.value, requests.type) == (1, "c")
    assert requests.tags == {**route, "model": "gpt-4o", "status": "200"}  # no key_id by default
    for timing in ("latency", "upstream_latency", "overhead"):
        [line] = udp.find(f"bricksllm.proxy.{timing}", **route)
        assert line.type == "ms" and line.value >= 0
    [latency] = udp.find("bricksllm.proxy.latency")
    [upstream] = udp.find("bricksllm.proxy.upstream_latency")
    assert upstream.value <= latency.value + 1  # latency is whole milliseconds
    assert udp.find("bricksllm.proxy.ttfb") == []  # not a stream
    assert udp.find("bricksllm.proxy.rejected") == []
    tokens = {ln.tags["type"]: ln.value for ln in udp.find("bricksllm.proxy.tokens", model="gpt-4o")}
    assert tokens == {"prompt": PROMPT_TOKENS, "completion": COMPLETION_TOKENS}
    [cost] = udp.find("bricksllm.proxy.cost_micros", provider="openai", model="gpt-4o")
    assert cost.value == round(8 * 2.5 + 3 * 1.25 + 7 * 10)  # gpt-4o, as in test_proxy_limits
    # the admin calls that set the key up, by route pattern and status
    [put] = udp.find("bricksllm.admin.requests", route="/api/key-management/keys", method="PUT")
    assert (put.value, put.tags["status"]) == (1, "200")
    await gw.flush_events()
    await udp.wait_for(lambda: bool(udp.find("bricksllm.events.written")))
    assert udp.find("bricksllm.events.batch_size")[0].type == "h"
    assert udp.find("bricksllm.events.queue_depth")[0].type == "g"


async def test_a_stream_reports_its_time_to_first_byte(
    start_gateway: GatewayFactory, udp: Listener, mock_openai: MockOpenAI
) -> None:
    gw = await datadog_gateway(start_gateway, udp)
    await gw.create_key(await gw.create_setting(mock_openai.url))
    resp = await chat(gw, stream=True, stream_options={"include_usage": True})
    assert resp.status == 200 and float(resp.headers[OVERHEAD]) >= 0
    await udp.wait_for(lambda: bool(udp.find("bricksllm.proxy.requests")))
    [ttfb] = udp.find("bricksllm.proxy.ttfb", provider="openai", model="gpt-4o", route=CHAT_PATH)
    [latency] = udp.find("bricksllm.proxy.latency")
    assert ttfb.type == "ms" and 0 <= ttfb.value <= latency.value + 1
    assert {ln.tags["type"] for ln in udp.find("bricksllm.proxy.tokens")} == {"prompt", "completion"}


async def test_each_refusal_is_counted_by_its_reason(
    start_gateway: GatewayFactory, udp: Listener, mock_openai: MockOpenAI
) -> None:
    offset = [0.0]
    gw = await datadog_gateway(start_gateway, udp, clock=shifted_clock(offset))
    setting = await gw.create_setting(mock_openai.url, allowedModels=["gpt-4o", "gpt-4o-mini"])
    keys = {
        "rate": await gw.create_key(setting, "k-rate", rateLimitOverTime=1, rateLimitUnit="m"),
        "cost": await gw.create_key(setting, "k-cost", costLimitInUsd=0.001),
        "paths": await gw.create_key(
            setting,
            "k-paths",
            allowedPaths=[{"path": "/api/providers/openai/v1/embeddings", "method": "POST"}],
        ),
        "revoked": await gw.create_key(setting, "k-revoked"),
        "expired": await gw.create_key(setting, "k-expired", ttl="1h"),
    }
    status, _ = await gw.admin(
        "PATCH", f"/api/key-management/keys/{keys['revoked']['keyId']}", {"revoked": True}
    )
    assert status == 200
    status, pid = await gw.admin(
        "POST", "/api/policies", {"name": "p", "config": {"rules": {"email": "block"}}}
    )
    assert status == 200, pid
    await gw.create_key(setting, "k-pii", policyId=pid["id"])
    assert (await chat(gw, "k-rate")).status == 200
    # reserved small (max_tokens=1), it costs more than the limit once the answer is priced
    mock_openai.usage_override = {"prompt_tokens": 11, "completion_tokens": 1000, "total_tokens": 1011}
    assert (await chat(gw, "k-cost", max_tokens=1)).status == 200
    mock_openai.usage_override = None
    expected = {
        "rate_limited": await chat(gw, "k-rate"),
        "cost_limited": await chat(gw, "k-cost"),
        "path_not_allowed": await chat(gw, "k-paths"),
        "revoked": await chat(gw, "k-revoked"),
        "unauthorized": await chat(gw, ""),
        "model_not_allowed": await chat(gw, "k-rate", model="gpt-3.5-turbo"),
        "pii_blocked": await chat(gw, "k-pii", messages=[{"role": "user", "content": "jane@example.com"}]),
    }
    async with gw.http.post(
        gw.proxy_url + "/api/providers/anthropic/v1/messages",
        json={"model": "claude-3-haiku-20240307", "max_tokens": 5, "messages": []},
        headers={"x-api-key": "k-pii"},
    ) as resp:
        expected["no_setting"] = resp
    async with gw.http.post(
        gw.proxy_url + CHAT_PATH, data=b"{not json", headers={"Authorization": "Bearer k-pii"}
    ) as resp:
        expected["invalid_request"] = resp
    async with gw.http.get(
        gw.proxy_url + "/api/providers/openai/v1/nope", headers={"api-key": "k-pii"}
    ) as resp:
        expected["not_found"] = resp
    offset[0] += 2 * 3600  # past the ttl
    expected["expired"] = await chat(gw, "k-expired")
    for reason, resp in expected.items():
        assert resp.status in (400, 401, 403, 404, 429), (reason, resp.status)
        assert float(resp.headers[OVERHEAD]) >= 0, reason
    await udp.wait_for(lambda: len(udp.find("bricksllm.proxy.rejected")) == len(expected))
    seen = {ln.tags["reason"]: ln for ln in udp.find("bricksllm.proxy.rejected")}
    assert set(seen) == set(expected)
    for reason, line in seen.items():
        assert (line.value, line.type) == (1, "c"), reason
        assert line.tags["provider"] == ("anthropic" if reason == "no_setting" else "openai")
    assert seen["rate_limited"].tags["route"] == CHAT_PATH
    assert seen["not_found"].tags["route"] == "unmatched"
    statuses = {ln.tags["status"] for ln in udp.find("bricksllm.proxy.requests")}
    assert statuses == {"200", "400", "401", "403", "404", "429"}
    assert [ln.tags["kind"] for ln in udp.find("bricksllm.proxy.denied")] == ["requests", "cost"]


async def test_requests_the_server_refuses_itself_are_counted(
    start_gateway: GatewayFactory, udp: Listener
) -> None:
    """Malformed requests and ones with headers over the limit never reach the proxy service;
    the server answers them and counts them, with no provider nor route."""
    gw = await datadog_gateway(start_gateway, udp)
    for request in (b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nX-Big: " + b"b" * 70_000 + b"\r\n\r\n"):
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.gateway.proxy_port)
        writer.write(request)
        assert (await reader.readline()).split()[1] in (b"400", b"431")
        writer.close()
    await udp.wait_for(lambda: len(udp.find("bricksllm.proxy.rejected")) == 2)
    rejected = udp.find("bricksllm.proxy.rejected", provider="none", route="unmatched")
    assert {ln.tags["reason"] for ln in rejected} == {"invalid_request", "request_too_large"}
    requests = udp.find("bricksllm.proxy.requests", provider="none", route="unmatched")
    assert sorted(ln.tags["status"] for ln in requests) == ["400", "431"]


async def test_plain_statsd_puts_the_tag_values_in_the_name(
    start_gateway: GatewayFactory, udp: Listener, mock_openai: MockOpenAI
) -> None:
    gw = await start_gateway(stats_enabled=True, stats_address=f"127.0.0.1:{udp.port}")
    await gw.create_key(await gw.create_setting(mock_openai.url))
    assert (await chat(gw, "wrong-key")).status == 401  # refused before its body (and model) is read
    await udp.wait_for(lambda: any("proxy.rejected" in ln.name for ln in udp.lines))
    names = {ln.name: ln for ln in udp.lines}
    line = names["bricksllm.proxy.rejected.openai.api_providers_openai_v1_chat_completions.unauthorized"]
    assert (line.value, line.type, line.tags) == (1, "c", {})
    assert "bricksllm.proxy.requests.openai.none.api_providers_openai_v1_chat_completions.401" in names


async def test_per_key_tags_only_when_asked(
    start_gateway: GatewayFactory, udp: Listener, mock_openai: MockOpenAI
) -> None:
    gw = await datadog_gateway(start_gateway, udp, stats_key_tags=True)
    key = await gw.create_key(await gw.create_setting(mock_openai.url))
    assert (await chat(gw)).status == 200
    await udp.wait_for(lambda: bool(udp.find("bricksllm.proxy.cost_micros")))
    [line] = udp.find("bricksllm.proxy.requests")
    assert line.tags["key_id"] == key["keyId"]
    assert udp.find("bricksllm.proxy.cost_micros")[0].tags["key_id"] == key["keyId"]
    assert "key_id" not in udp.find("bricksllm.proxy.latency")[0].tags


async def test_nothing_listening_costs_no_request(
    start_gateway: GatewayFactory, mock_openai: MockOpenAI
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free now, and nothing listens on it once closed
    gw = await start_gateway(stats_enabled=True, stats_address=f"127.0.0.1:{port}", stats_provider="datadog")
    await gw.create_key(await gw.create_setting(mock_openai.url))
    statsd = gw.gateway.metrics.statsd  # type: ignore[attr-defined]
    for _ in range(20):  # bounded: a batch is sent every 0.1 s; the kernel refuses the second
        assert (await chat(gw)).status == 200
        if statsd.dropped:
            break
        await asyncio.sleep(0.05)
    assert statsd.dropped >= 1  # the kernel said "refused", and the gateway did not mind
    assert (await chat(gw)).status == 200


def scrape_values(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    values: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return values


async def test_prometheus_scrape_behind_the_admin_password(
    start_gateway: GatewayFactory, mock_openai: MockOpenAI
) -> None:
    gw = await start_gateway(metrics_enabled=True, admin_pass="admin-pw")
    auth = {"X-API-KEY": "admin-pw"}
    status, setting = await gw.admin(
        "PUT",
        "/api/provider-settings",
        {"provider": "openai", "setting": {"apikey": "sk-upstream-secret", "url": mock_openai.url}},
        headers=auth,
    )
    assert status == 200
    status, key = await gw.admin(
        "PUT", "/api/key-management/keys", {"name": "k", "key": "my-secret-key", "settingId": setting["id"]},
        headers=auth,
    )  # fmt: skip
    assert status == 200
    status, _ = await gw.admin(
        "PATCH", f"/api/key-management/keys/{key['keyId']}", {"name": "n"}, headers=auth
    )
    assert status == 200
    for _ in range(3):
        assert (await chat(gw)).status == 200
    assert (await chat(gw, "other-secret-key")).status == 401
    async with gw.http.get(gw.admin_url + "/metrics") as resp:
        assert resp.status == 401
    async with gw.http.get(gw.admin_url + "/metrics", headers=auth) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    values = scrape_values(text)
    ok = (("model", "gpt-4o"), ("provider", "openai"), ("route", CHAT_PATH), ("status", "200"))
    assert values["bricksllm_proxy_requests_total"][ok] == 3
    assert values["bricksllm_proxy_latency_seconds_count"][ok] == 3
    assert values["bricksllm_proxy_upstream_latency_seconds_count"][ok] == 3
    refused = (("provider", "openai"), ("reason", "unauthorized"), ("route", CHAT_PATH))
    assert values["bricksllm_proxy_rejected_total"][refused] == 1
    usage = (("model", "gpt-4o"), ("provider", "openai"))
    assert values["bricksllm_proxy_tokens_total"][(*usage, ("type", "prompt"))] == 3 * PROMPT_TOKENS
    assert values["bricksllm_proxy_cost_micros_total"][usage] == 3 * round(8 * 2.5 + 3 * 1.25 + 7 * 10)
    admin = values["bricksllm_admin_requests_total"]
    assert admin[(("method", "PATCH"), ("route", "/api/key-management/keys/{keyId}"), ("status", "200"))] == 1
    assert admin[(("method", "GET"), ("route", "/metrics"), ("status", "401"))] == 1
    assert not any(key["keyId"] in route for labels in admin for _, route in labels)  # patterns, not paths
    for secret in (*SECRETS, "admin-pw", PROMPT, COMPLETION):
        assert secret not in text


async def test_metrics_port_serves_the_scrape_alone_without_auth(
    start_gateway: GatewayFactory, udp: Listener, mock_openai: MockOpenAI
) -> None:
    gw = await datadog_gateway(start_gateway, udp, metrics_port=0, admin_pass="admin-pw")
    assert gw.gateway.metrics_port
    url = f"http://127.0.0.1:{gw.gateway.metrics_port}"
    async with gw.http.get(url + "/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    families = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert families["bricksllm_proxy_requests"] == "counter"
    assert families["bricksllm_proxy_latency_seconds"] == "histogram"
    async with gw.http.get(url + "/api/key-management/keys") as resp:
        assert resp.status == 404  # only the scrape is served there
    async with gw.http.get(gw.admin_url + "/metrics", headers={"X-API-KEY": "admin-pw"}) as resp:
        assert resp.status == 404  # and not on the admin port any more


async def test_no_secret_or_prompt_in_any_packet(
    start_gateway: GatewayFactory, udp: Listener, mock_openai: MockOpenAI
) -> None:
    gw = await datadog_gateway(start_gateway, udp, stats_key_tags=True, metrics_enabled=True)
    await gw.create_key(await gw.create_setting(mock_openai.url))
    assert (await chat(gw)).status == 200
    assert (await chat(gw, stream=True)).status == 200
    assert (await chat(gw, "other-secret-key")).status == 401
    await chat(gw, model=PROMPT)
    await gw.flush_events()
    await udp.wait_for(lambda: sum(ln.value for ln in udp.find("bricksllm.proxy.requests")) == 4)
    async with gw.http.get(gw.admin_url + "/metrics") as resp:
        scrape = await resp.text()
    sent = b"\n".join(udp.raw).decode()
    for secret in (*SECRETS, PROMPT, COMPLETION):
        assert secret not in sent and secret not in scrape, secret
    assert "model:other" in sent  # a model name with spaces is not a tag value
