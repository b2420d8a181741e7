"""PII policies end to end: the admin API, a key's policy, and what the proxy forwards, refuses
and records (issue 10). The mock upstreams record exactly what they received."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest

from bricksllm.settings import PostgresSettings, Settings
from bricksllm.telemetry.metrics import InMemoryMetrics
from tests.integration.conftest import GatewayFactory, Running
from tests.integration.mock_openai import MockOpenAI
from tests.integration.test_pii_engines import FakeComprehend

POLICIES = "/api/policies"
CARD = "4111 1111 1111 1111"  # passes Luhn
EMAIL = "jane.doe@example.com"
REGEX_FIELD = "regexConfig.rules[0].definition"
REDACT_EMAIL = {"name": "redact emails", "tags": ["pii"], "config": {"rules": {"email": "allow_but_redact"}}}


async def policy(gw: Running, body: dict[str, Any]) -> dict[str, Any]:
    status, created = await gw.admin("POST", POLICIES, body)
    assert status == 200, created
    return dict(created)


async def events(gw: Running) -> list[dict[str, Any]]:
    await gw.flush_events()
    return list((await gw.admin("GET", "/api/events?limit=100"))[1])


# --- admin API ------------------------------------------------------------------------------


async def test_policy_crud(gateway: Running) -> None:
    created = await policy(gateway, {**REDACT_EMAIL, "regexConfig": {"rules": [
        {"definition": "(?i)project\\s+[a-z]+", "action": "allow_but_warn"}]}})  # fmt: skip
    assert created["config"] == {"rules": {"email": "allow_but_redact"}} and created["failOpen"] is False
    pid = created["id"]
    assert (await gateway.admin("GET", f"{POLICIES}/{pid}"))[1] == created
    patched = (await gateway.admin("PATCH", f"{POLICIES}/{pid}", {"name": "renamed", "scanResponses": True}))[
        1
    ]
    assert patched["name"] == "renamed" and patched["scanResponses"] is True
    assert patched["regexConfig"] == created["regexConfig"]  # sections not given are kept
    await policy(gateway, {"name": "other", "tags": ["x"]})
    assert [p["id"] for p in (await gateway.admin("GET", f"{POLICIES}?tags=pii"))[1]] == [pid]
    assert [p["id"] for p in (await gateway.admin("GET", f"{POLICIES}?ids={pid}"))[1]] == [pid]
    assert (await gateway.admin("DELETE", f"{POLICIES}/{pid}"))[0] == 200
    assert (await gateway.admin("GET", f"{POLICIES}/{pid}"))[0] == 404
    assert (await gateway.admin("DELETE", f"{POLICIES}/{pid}"))[0] == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"config": {"rules": {"emial": "block"}}}, "config.rules.emial"),
        ({"config": {"rules": {"email": "shred"}}}, "config.rules.email"),
        ({"regexConfig": {"rules": [{"definition": "(unclosed", "action": "block"}]}}, REGEX_FIELD),
        ({"regexConfig": {"rules": [{"definition": "(?<=x)y", "action": "block"}]}}, REGEX_FIELD),
        ({"config": {"rules": {"name": "allow_but_redact"}}}, "config.rules.name"),  # needs an NLP engine
        ({"name": ""}, "name"),
    ],
)  # fmt: skip
async def test_invalid_policies_are_refused_naming_the_field(
    gateway: Running, body: dict[str, Any], field: str
) -> None:
    status, problem = await gateway.admin("POST", POLICIES, {"name": "p", **body})
    assert status == 400 and field in problem["fields"], problem
    if field == "config.rules.name":
        assert "engine" in problem["detail"] and "presidio" in problem["detail"].lower()
    assert (await gateway.admin("GET", POLICIES))[1] == []


async def test_a_key_refers_to_a_policy_by_id(gateway: Running, mock_openai: MockOpenAI) -> None:
    setting = await gateway.create_setting(mock_openai.url)
    status, problem = await gateway.admin(
        "PUT",
        "/api/key-management/keys",
        {"name": "k", "key": "s1", "settingId": setting, "policyId": "nope"},
    )
    assert status == 400 and problem["fields"] == ["policyId"]
    pid = (await policy(gateway, REDACT_EMAIL))["id"]
    key = await gateway.create_key(setting, policyId=pid)
    assert key["policyId"] == pid
    status, problem = await gateway.admin("DELETE", f"{POLICIES}/{pid}")
    assert status == 409 and key["keyId"] in problem["detail"]  # still used
    cleared = (await gateway.admin("PATCH", f"/api/key-management/keys/{key['keyId']}", {"policyId": ""}))[1]
    assert cleared["policyId"] == ""
    assert (await gateway.admin("DELETE", f"{POLICIES}/{pid}"))[0] == 200


# --- the proxy -------------------------------------------------------------------------------


async def test_redaction_is_in_place_and_leaves_every_other_field_alone(
    gateway: Running, mock_openai: MockOpenAI
) -> None:
    pid = (await policy(gateway, {
        "name": "p",
        "config": {"rules": {"email": "allow_but_redact", "credit_debit_number": "allow_but_redact"}},
        "regexConfig": {"rules": [{"definition": "(?i)project\\s+blue", "action": "allow_but_redact"}]},
    }))["id"]  # fmt: skip
    await gateway.create_key(await gateway.create_setting(mock_openai.url), policyId=pid)
    sent = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": f"Escalate to {EMAIL}."},
            {"role": "user", "content": [{"type": "text", "text": f"Card {CARD}, Project Blue"},
                                         {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
        ],
        "tools": [{"type": "function", "function": {"name": "f", "description": f"mail {EMAIL}",
                                                    "parameters": {"type": "object"}}}],
        "response_format": {"type": "json_object"},
        "seed": 123456789012345678901234567890,
        "a_field_from_the_future": {"nested": [1, 2.5, None]},
    }  # fmt: skip
    async with gateway.http.post(
        gateway.openai_base + "/chat/completions", data=json.dumps(sent),
        headers={"Authorization": "Bearer my-secret-key", "Content-Type": "application/json"},
    ) as resp:  # fmt: skip
        assert resp.status == 200
    received = json.loads(mock_openai.last("/chat/completions").body)
    assert received["messages"][0]["content"] == "Escalate to [EMAIL]."
    assert received["messages"][1]["content"][0]["text"] == "Card [CREDIT_DEBIT_NUMBER], [REDACTED]"
    for field in ("tools", "response_format", "seed", "a_field_from_the_future", "model"):
        assert received[field] == sent[field], field  # tools are not client text to screen
    assert received["messages"][1]["content"][1] == sent["messages"][1]["content"][1]
    assert list(received) == list(sent)
    [event] = await events(gateway)
    assert event["action"] == "redacted"
    assert event["pii_entities"] == ["credit_debit_number", "email", "regex[0]"]
    assert EMAIL not in json.dumps(event) and "4111" not in json.dumps(event)


async def test_a_blocked_request_is_refused_and_never_forwarded(
    gateway: Running, mock_openai: MockOpenAI
) -> None:
    rules = {"credit_debit_number": "block", "email": "allow_but_redact"}
    pid = (await policy(gateway, {"name": "p", "config": {"rules": rules}}))["id"]
    await gateway.create_key(await gateway.create_setting(mock_openai.url), policyId=pid)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        await gateway.openai().chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"pay with {CARD}, mail {EMAIL}"}]
        )
    message = caught.value.body["message"]  # type: ignore[index]
    assert "credit_debit_number" in message and "4111" not in message and EMAIL not in message
    assert mock_openai.requests == []
    [event] = await events(gateway)
    assert (event["status"], event["action"]) == (403, "blocked")
    assert event["pii_entities"] == ["credit_debit_number", "email"]


async def test_a_warned_request_is_forwarded_unchanged_and_flagged(
    gateway: Running, mock_openai: MockOpenAI
) -> None:
    pid = (await policy(gateway, {"name": "p", "config": {"rules": {"ip_address": "allow_but_warn"}}}))["id"]
    await gateway.create_key(await gateway.create_setting(mock_openai.url), policyId=pid)
    text = "server 10.1.2.3 is down"
    await gateway.openai().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": text}]
    )
    assert json.loads(mock_openai.last("/chat/completions").body)["messages"][0]["content"] == text
    [event] = await events(gateway)
    assert (event["action"], event["pii_entities"]) == ("warned", ["ip_address"])


async def test_keys_without_a_policy_are_untouched(gateway: Running, mock_openai: MockOpenAI) -> None:
    await gateway.create_key(await gateway.create_setting(mock_openai.url))
    raw = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "mail jane.doe@example.com"}]}'
    async with gateway.http.post(
        gateway.openai_base + "/chat/completions", data=raw,
        headers={"Authorization": "Bearer my-secret-key", "Content-Type": "application/json"},
    ) as resp:  # fmt: skip
        assert resp.status == 200
    assert mock_openai.last("/chat/completions").body == raw  # byte for byte
    [event] = await events(gateway)
    assert (event["action"], event["pii_entities"]) == ("", [])


async def test_answers_are_screened_when_the_policy_asks(gateway: Running, mock_openai: MockOpenAI) -> None:
    pid = (await policy(gateway, {**REDACT_EMAIL, "scanResponses": True}))["id"]
    await gateway.create_key(await gateway.create_setting(mock_openai.url), policyId=pid)
    answer = await gateway.openai().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "who do I write to?"}],
        extra_headers={"x-mock-answer": f"Write to {EMAIL} today."},
    )  # fmt: skip
    assert answer.choices[0].message.content == "Write to [EMAIL] today."
    assert answer.usage is not None and answer.usage.prompt_tokens == 11  # the rest is untouched
    await gateway.admin("PATCH", f"{POLICIES}/{pid}", {"scanResponses": False})
    answer = await gateway.openai().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "again?"}],
        extra_headers={"x-mock-answer": f"Write to {EMAIL} today."},
    )  # fmt: skip
    assert answer.choices[0].message.content == f"Write to {EMAIL} today."
    first, _ = sorted(await events(gateway), key=lambda e: e["id"])
    assert (first["action"], first["pii_entities"]) == ("redacted", ["email"])


async def test_anthropic_routes_are_screened_and_refused_in_anthropic_shape(
    gateway: Running, mock_anthropic: Any
) -> None:
    pid = (await policy(gateway, {"name": "p", "config": {"rules": {"ssn": "block"}}}))["id"]
    anthropic = {"provider": "anthropic", "setting": {"apikey": "sk-ant", "url": mock_anthropic.url}}
    setting = (await gateway.admin("PUT", "/api/provider-settings", anthropic))[1]["id"]
    await gateway.create_key(setting, policyId=pid)
    body = {"model": "claude-haiku-4-5", "max_tokens": 10, "system": "ssn 123-45-6789",
            "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    async with gateway.http.post(
        gateway.proxy_url + "/api/providers/anthropic/v1/messages",
        json=body,
        headers={"x-api-key": "my-secret-key"},
    ) as resp:
        assert resp.status == 403
        error = await resp.json()
    assert error["type"] == "error" and error["error"]["type"] == "permission_error"
    assert "ssn" in error["error"]["message"] and "123-45" not in error["error"]["message"]


async def test_a_policy_change_reaches_another_instance(
    start_gateway: GatewayFactory, pg_settings: PostgresSettings, mock_openai: MockOpenAI
) -> None:
    one = await start_gateway(Settings(postgres=pg_settings))
    two = await start_gateway(Settings(postgres=pg_settings))
    pid = (await policy(one, {"name": "p", "config": {"rules": {"email": "allow"}}}))["id"]
    await one.create_key(await one.create_setting(mock_openai.url), policyId=pid)
    await one.admin("PATCH", f"{POLICIES}/{pid}", {"config": {"rules": {"email": "block"}}})
    loop = asyncio.get_running_loop()
    start = loop.time()
    while loop.time() - start < 1.0:
        try:
            await two.openai().chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"mail {EMAIL}"}]
            )
        except openai.PermissionDeniedError:
            break
        await asyncio.sleep(0.02)
    else:
        pytest.fail("the policy change did not reach the other instance within a second")


@pytest.fixture
async def comprehend_gateway(
    start_gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> Any:
    from aiohttp import web

    fake = FakeComprehend()
    app = web.Application()
    app.router.add_post("/", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    for name, value in (("AWS_ACCESS_KEY_ID", "AKIDTEST"), ("AWS_SECRET_ACCESS_KEY", "test-secret")):
        monkeypatch.setenv(name, value)
    metrics = InMemoryMetrics()
    gw = await start_gateway(
        pii_engine="comprehend", amazon_endpoint_url=f"http://127.0.0.1:{runner.addresses[0][1]}",
        amazon_region="us-east-1", pii_engine_timeout=5.0, metrics=metrics,
    )  # fmt: skip
    yield gw, fake, metrics
    fake.release.set()
    await runner.cleanup()


@pytest.mark.parametrize("fail_open", [False, True])
async def test_an_engine_failure_fails_closed_or_open(
    comprehend_gateway: Any, mock_openai: MockOpenAI, fail_open: bool
) -> None:
    gw, fake, metrics = comprehend_gateway
    pid = (await policy(gw, {"name": "names", "failOpen": fail_open,
                             "config": {"rules": {"name": "allow_but_redact"}}}))["id"]  # fmt: skip
    await gw.create_key(await gw.create_setting(mock_openai.url), policyId=pid)
    client = gw.openai()
    answer = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Jane Doe says hi"}]
    )
    assert (
        json.loads(mock_openai.last("/chat/completions").body)["messages"][0]["content"] == "[NAME] says hi"
    )
    assert answer.choices
    fake.mode = "error"
    if fail_open:
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Jane Doe"}]
        )
        assert metrics.counts["pii.engine_failures"] == 1
    else:
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "Jane Doe"}]
            )
        assert caught.value.status_code == 503
        assert len(mock_openai.requests) == 1  # the failed one was never forwarded


async def test_policy_settings_names_its_engine(start_gateway: GatewayFactory) -> None:
    with pytest.raises(Exception, match="PII_ENGINE=presidio"):
        await start_gateway(pii_engine="presidio", pii_presidio_model="no_such_model_installed")
