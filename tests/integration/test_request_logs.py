"""Request logs, correlation ids and opt-in capture, through the real gateway: the log output is
captured as the JSON formatter writes it and parsed line by line; the correlation id in the
reply header, the log line and the stored event must be one and the same."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from multidict import CIMultiDict

from bricksllm.telemetry.logs import JsonFormatter
from tests.integration.conftest import GatewayFactory, Running
from tests.integration.mock_openai import COMPLETION_TOKENS, PROMPT_TOKENS, MockOpenAI

CHAT = {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "Say hello"}]}
AUTH = {"Authorization": "Bearer my-secret-key"}
ROUTE = "/api/providers/openai/v1/chat/completions"
HEX_ID = re.compile(r"[0-9a-f]{32}")
Lines = Callable[[str], list[dict[str, Any]]]


@pytest.fixture
def log_lines() -> Iterator[Lines]:
    """Everything logged while the test runs, as the JSON formatter writes it; `lines(name)`
    parses the output (every line must be one JSON object) and keeps those of logger `name`."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    root, ours = logging.getLogger(), logging.getLogger("bricksllm")
    saved = ours.level
    root.addHandler(handler)
    ours.setLevel(logging.INFO)

    def lines(name: str) -> list[dict[str, Any]]:
        parsed = [json.loads(line) for line in out.getvalue().splitlines()]
        assert all(isinstance(p, dict) and {"time", "level", "logger", "message"} <= p.keys() for p in parsed)
        return [p for p in parsed if p["logger"] == name]

    yield lines
    root.removeHandler(handler)
    ours.setLevel(saved)


async def _chat(gw: Running, body: Any = CHAT, **headers: str) -> tuple[int, CIMultiDict[str], bytes]:
    url = gw.openai_base + "/chat/completions"
    async with gw.http.post(url, json=body, headers={**AUTH, **headers}) as r:
        return r.status, CIMultiDict(r.headers), await r.read()


async def _event(gw: Running, correlation_id: str, bodies: bool = False) -> dict[str, Any]:
    await gw.flush_events()
    query = f"/api/events?correlationId={correlation_id}" + ("&includeBodies=true" if bodies else "")
    status, events = await gw.admin("GET", query)
    assert status == 200 and len(events) == 1, events
    return dict(events[0])


async def test_one_line_per_request_with_the_id_of_the_reply_and_the_event(
    gateway: Running, mock_openai: MockOpenAI, log_lines: Lines
) -> None:
    key = await gateway.create_key(await gateway.create_setting(mock_openai.url))
    status, headers, _ = await _chat(gateway)
    assert status == 200
    rid = headers["x-bricksllm-request-id"]
    assert HEX_ID.fullmatch(rid)
    assert headers["x-request-id"] == "req-mock"  # the provider's own id passes through untouched
    [line] = log_lines("bricksllm.requests")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line.pop("time"))
    upstream_ms, overhead_ms = line.pop("upstream_ms"), line.pop("overhead_ms")
    latency_ms = line.pop("latency_ms")
    assert isinstance(upstream_ms, float) and isinstance(overhead_ms, float) and upstream_ms > 0
    assert 0 <= latency_ms <= upstream_ms + overhead_ms + 1  # event latency is whole milliseconds
    event = await _event(gateway, rid)
    assert line == {
        "level": "info",
        "logger": "bricksllm.requests",
        "message": f"POST {ROUTE} 200",
        "correlation_id": rid,
        "key_id": key["keyId"],
        "provider": "openai",
        "model": "gpt-3.5-turbo",
        "method": "POST",
        "route": ROUTE,
        "path": ROUTE,
        "status": 200,
        "reason": "",
        "ttfb_ms": None,  # not a stream
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": COMPLETION_TOKENS,
        "cost_micros": round(event["cost_in_usd"] * 1e6),
    }
    assert event["correlation_id"] == rid and event["cost_in_usd"] > 0
    assert "request_body" not in event or event["request_body"] is None  # only with includeBodies


async def test_a_well_formed_client_id_is_kept_and_a_malformed_one_replaced(
    gateway: Running, mock_openai: MockOpenAI, log_lines: Lines
) -> None:
    await gateway.create_key(await gateway.create_setting(mock_openai.url))
    given = "client-1:trace.42_A"
    _, headers, _ = await _chat(gateway, **{"x-bricksllm-request-id": given})
    assert headers["x-bricksllm-request-id"] == given
    assert (await _event(gateway, given))["correlation_id"] == given
    for bad in ("has spaces", "x" * 129, "semi;colon", "é"):
        _, headers, _ = await _chat(gateway, **{"x-bricksllm-request-id": bad})
        assert HEX_ID.fullmatch(headers["x-bricksllm-request-id"]), bad
    _, headers, _ = await _chat(gateway, **{"x-bricksllm-request-id": "x" * 128})
    assert headers["x-bricksllm-request-id"] == "x" * 128  # at the limit: kept
    ids = [line["correlation_id"] for line in log_lines("bricksllm.requests")]
    assert ids[0] == given and ids[-1] == "x" * 128 and len(set(ids)) == 6


async def test_refused_requests_are_logged_with_their_reason(
    gateway: Running, mock_openai: MockOpenAI, log_lines: Lines
) -> None:
    setting_id = await gateway.create_setting(mock_openai.url, allowedModels=["gpt-4o-mini"])
    key = await gateway.create_key(
        setting_id,
        rateLimitOverTime=1,
        rateLimitUnit="m",
        allowedPaths=[{"path": ROUTE, "method": "POST"}],
    )
    refusals = []
    status, headers, _ = await _chat(gateway, Authorization="Bearer wrong-secret")
    refusals.append((status, headers["x-bricksllm-request-id"]))
    status, headers, _ = await _chat(gateway)  # gpt-3.5-turbo is not among the allowed models
    refusals.append((status, headers["x-bricksllm-request-id"]))
    async with gateway.http.get(gateway.openai_base + "/models", headers=AUTH) as resp:
        refusals.append((resp.status, resp.headers["x-bricksllm-request-id"]))
    ok = {**CHAT, "model": "gpt-4o-mini"}
    assert (await _chat(gateway, ok))[0] == 200
    status, headers, _ = await _chat(gateway, ok)
    refusals.append((status, headers["x-bricksllm-request-id"]))
    lines = log_lines("bricksllm.requests")
    assert [(line["status"], line["reason"], line["key_id"]) for line in lines] == [
        (401, "unauthorized", ""),
        (403, "model_not_allowed", key["keyId"]),
        (403, "path_not_allowed", key["keyId"]),
        (200, "", key["keyId"]),
        (429, "rate_limited", key["keyId"]),
    ]
    assert [line["correlation_id"] for line in lines if line["status"] != 200] == [r for _, r in refusals]
    assert lines[2]["route"] == "/api/providers/openai/v1/models"
    assert all(line["upstream_ms"] is None for line in lines if line["status"] != 200)
    assert all(line["overhead_ms"] >= 0 for line in lines)
    for _, rid in refusals:
        assert (await _event(gateway, rid))["status"] in (401, 403, 429)


async def test_a_stream_has_its_time_to_first_byte(
    gateway: Running, mock_openai: MockOpenAI, log_lines: Lines
) -> None:
    await gateway.create_key(await gateway.create_setting(mock_openai.url))
    status, headers, body = await _chat(gateway, {**CHAT, "stream": True}, **{"x-mock": "slow-30"})
    assert status == 200 and body.endswith(b"data: [DONE]\n\n")
    [line] = log_lines("bricksllm.requests")
    assert line["correlation_id"] == headers["x-bricksllm-request-id"]
    assert 0 < line["ttfb_ms"] < line["upstream_ms"]  # the chunks came 30 ms apart after the first
    assert line["prompt_tokens"] == PROMPT_TOKENS and line["completion_tokens"] == COMPLETION_TOKENS


async def test_one_line_per_admin_request_without_secrets(
    gateway: Running, mock_openai: MockOpenAI, log_lines: Lines
) -> None:
    setting_id = await gateway.create_setting(mock_openai.url)
    key = await gateway.create_key(setting_id)
    status, _ = await gateway.admin("PATCH", "/api/key-management/keys/nope", {"name": "x"})
    assert status == 404
    status, _ = await gateway.admin("GET", "/api/no-such-thing?key=my-secret-key")
    assert status == 404
    lines = log_lines("bricksllm.admin.access")
    assert [(line["method"], line["route"], line["status"]) for line in lines] == [
        ("PUT", "/api/provider-settings", 200),
        ("PUT", "/api/key-management/keys", 200),
        ("PATCH", "/api/key-management/keys/{keyId}", 404),
        ("GET", "", 404),
    ]
    assert lines[2]["path"] == "/api/key-management/keys/nope" and lines[3]["path"] == "/api/no-such-thing"
    assert all(isinstance(line["latency_ms"], float) and line["remote"] == "127.0.0.1" for line in lines)
    text = json.dumps(lines)
    assert "my-secret-key" not in text and "sk-upstream-secret" not in text
    assert key["keyId"] not in text  # created in a body: never logged


# ------------------------------------------------------------------ capture


async def test_bodies_are_captured_only_for_keys_that_ask_and_returned_only_with_the_flag(
    gateway: Running, mock_openai: MockOpenAI, log_lines: Lines
) -> None:
    setting_id = await gateway.create_setting(mock_openai.url)
    key = await gateway.create_key(setting_id, shouldLogRequest=True, shouldLogResponse=True)
    assert key["shouldLogRequest"] is True and key["shouldLogResponse"] is True
    await gateway.create_key(setting_id, "other-secret", name="plain")
    _, headers, answer = await _chat(gateway)
    captured = await _event(gateway, headers["x-bricksllm-request-id"], bodies=True)
    assert json.loads(captured["request_body"]) == CHAT
    assert captured["response_body"] == answer.decode()
    assert "Hello from the mock!" in captured["response_body"]
    listed = await _event(gateway, headers["x-bricksllm-request-id"])
    assert listed["request_body"] is None and listed["response_body"] is None
    _, headers, _ = await _chat(gateway, Authorization="Bearer other-secret")
    plain = await _event(gateway, headers["x-bricksllm-request-id"], bodies=True)
    assert plain["request_body"] == "" and plain["response_body"] == ""
    assert all("Say hello" not in json.dumps(line) for line in log_lines("bricksllm.requests"))
    status, patched = await gateway.admin(
        "PATCH", f"/api/key-management/keys/{key['keyId']}", {"shouldLogResponse": False}
    )
    assert status == 200 and patched["shouldLogRequest"] is True and patched["shouldLogResponse"] is False
    _, headers, _ = await _chat(gateway)
    after = await _event(gateway, headers["x-bricksllm-request-id"], bodies=True)
    assert after["request_body"] and after["response_body"] == ""
    status, problem = await gateway.admin(
        "PATCH", f"/api/key-management/keys/{key['keyId']}", {"shouldLogRequest": "yes"}
    )
    assert status == 400 and problem["fields"] == ["shouldLogRequest"]


async def test_a_stream_is_captured_as_the_text_relayed_and_capped(
    start_gateway: GatewayFactory, mock_openai: MockOpenAI, log_lines: Lines
) -> None:
    gw: Running = await start_gateway(log_body_max_bytes=300, log_bodies=True)
    setting_id = await gw.create_setting(mock_openai.url)
    await gw.create_key(setting_id, shouldLogRequest=True, shouldLogResponse=True)
    long_prompt = {**CHAT, "messages": [{"role": "user", "content": "word " * 200}], "stream": True}
    _, headers, relayed = await _chat(gw, long_prompt)
    event = await _event(gw, headers["x-bricksllm-request-id"], bodies=True)
    assert len(event["request_body"]) == 300  # ASCII: 300 bytes, 300 characters
    # the body as forwarded: the gateway asked for the stream's usage
    assert event["request_body"].startswith('{"stream_options":{"include_usage":true},"model": "gpt-3.5')
    assert len(event["response_body"]) == 300 and len(relayed) > 300
    assert relayed.decode().startswith(event["response_body"])  # what the client got, as text
    assert event["response_body"].startswith("data: {")
    _, headers, relayed = await _chat(gw, {**CHAT, "stream": True, "model": "gpt-4o-mini", "n": 1})
    [_, line] = log_lines("bricksllm.requests")  # LOG_BODIES: the captured bodies are in the line
    assert json.loads(line["request_body"])["model"] == "gpt-4o-mini"
    assert line["response_body"] == relayed.decode()[:300]


async def test_a_flood_of_anonymous_refusals_is_counted_not_logged_line_by_line(
    gateway: Running, mock_openai: MockOpenAI, log_lines: Lines
) -> None:
    await gateway.create_key(await gateway.create_setting(mock_openai.url))
    for _ in range(300):
        async with gateway.http.get(gateway.openai_base + "/models") as resp:
            assert resp.status == 401
    assert (await _chat(gateway))[0] == 200
    lines = log_lines("bricksllm.requests")
    refusals = [line for line in lines if line.get("status") == 401]
    summaries = [line for line in lines if "unlogged" in line]
    await gateway.flush_events()
    _, events = await gateway.admin("GET", "/api/events?status=401&limit=1000")
    assert 100 <= len(refusals) < 300  # the burst of the events' bucket, and what it refilled
    assert {e["correlation_id"] for e in events} == {line["correlation_id"] for line in refusals}
    assert summaries and all(s["level"] == "warning" for s in summaries)
    assert sum(s["unlogged"] for s in summaries) == 300 - len(refusals)  # each one counted
    assert lines[-1]["status"] == 200


async def test_capture_keeps_what_a_pii_policy_removed_out(
    gateway: Running, mock_openai: MockOpenAI, log_lines: Lines
) -> None:
    rules = {"credit_debit_number": "block", "email": "allow_but_redact"}
    status, created = await gateway.admin("POST", "/api/policies", {"name": "p", "config": {"rules": rules}})
    assert status == 200, created
    setting_id = await gateway.create_setting(mock_openai.url)
    await gateway.create_key(
        setting_id, policyId=created["id"], shouldLogRequest=True, shouldLogResponse=True
    )
    email, card = "jane.doe@example.com", "4111 1111 1111 1111"
    redacted = {**CHAT, "messages": [{"role": "user", "content": f"mail {email}"}]}
    _, headers, _ = await _chat(gateway, redacted)
    event = await _event(gateway, headers["x-bricksllm-request-id"], bodies=True)
    assert "mail [EMAIL]" in event["request_body"] and email not in event["request_body"]  # as forwarded
    blocked = {**CHAT, "messages": [{"role": "user", "content": f"pay with {card}"}]}
    status, headers, _ = await _chat(gateway, blocked)
    assert status == 403
    event = await _event(gateway, headers["x-bricksllm-request-id"], bodies=True)
    assert (event["action"], event["request_body"], event["response_body"]) == ("blocked", "", "")
    assert log_lines("bricksllm.requests")[-1]["reason"] == "pii_blocked"
