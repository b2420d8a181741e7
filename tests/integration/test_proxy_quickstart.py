"""The reference's quick start, end to end through the official OpenAI SDK, plus the proxy's
access checks and what crosses the gateway in each direction."""

from __future__ import annotations

import asyncio
import io

import openai
import pytest

from tests.integration.conftest import Running
from tests.integration.mock_openai import COMPLETION_TOKENS, PROMPT_TOKENS, MockOpenAI


def sdk(gw: Running, key: str = "my-secret-key") -> openai.AsyncOpenAI:
    return gw.openai(key)


CHAT = {"model": "gpt-3.5-turbo", "messages": [{"role": "system", "content": "hi"}]}


async def test_quick_start_third_call_in_the_minute_is_refused(
    gateway: Running, mock_openai: MockOpenAI
) -> None:
    setting_id = await gateway.create_setting(mock_openai.url)
    await gateway.create_key(setting_id, rateLimitOverTime=2, rateLimitUnit="m", costLimitInUsd=0.25)
    client = sdk(gateway)
    for remaining in (1, 0):
        raw = await client.chat.completions.with_raw_response.create(**CHAT)  # type: ignore[call-overload]
        completion = raw.parse()
        assert completion.choices[0].message.content == "Hello from the mock!"
        assert completion.usage.prompt_tokens == PROMPT_TOKENS
        assert raw.headers["x-ratelimit-limit-requests"] == "2"
        assert raw.headers["x-ratelimit-remaining-requests"] == str(remaining)
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(**CHAT)  # type: ignore[call-overload]
    assert info.value.status_code == 429
    assert "rate limit of 2 per minute" in info.value.message
    assert int(info.value.response.headers["Retry-After"]) >= 1
    assert "my-secret-key" not in info.value.response.text
    assert len([r for r in mock_openai.requests if r.path == "/v1/chat/completions"]) == 2


async def test_client_key_is_replaced_by_the_provider_credential(
    gateway: Running, mock_openai: MockOpenAI
) -> None:
    setting_id = await gateway.create_setting(mock_openai.url)
    await gateway.create_key(setting_id)
    for header in (
        {"Authorization": "Bearer my-secret-key"},
        {"api-key": "my-secret-key"},
        {"x-api-key": "my-secret-key"},
    ):
        async with gateway.http.post(
            gateway.openai_base + "/chat/completions?trace=1",
            json=CHAT,
            headers={**header, "X-CUSTOM-EVENT-ID": "evt-1", "x-request-timeout": "30s", "OpenAI-Beta": "x"},
        ) as resp:
            assert resp.status == 200, await resp.text()
            assert resp.headers["x-request-id"] == "req-mock"
        seen = mock_openai.last("/chat/completions")
        assert seen.headers["Authorization"] == "Bearer sk-upstream-secret"
        lowered = {k.lower(): v for k, v in seen.headers.items()}
        assert "api-key" not in lowered and "x-api-key" not in lowered
        assert "x-custom-event-id" not in lowered and "x-request-timeout" not in lowered
        assert lowered["openai-beta"] == "x"
        assert seen.query == "trace=1"
        assert "my-secret-key" not in str(seen.headers)
        assert seen.json() == CHAT  # the client's body arrives unchanged


@pytest.mark.parametrize(
    ("headers", "message"),
    [({}, "api key not found"), ({"Authorization": "Bearer nope"}, "key is not found")],
)
async def test_missing_or_unknown_key_is_401(
    gateway: Running, mock_openai: MockOpenAI, headers: dict[str, str], message: str
) -> None:
    async with gateway.http.post(
        gateway.openai_base + "/chat/completions", json=CHAT, headers=headers
    ) as resp:
        assert resp.status == 401
        body = await resp.json()
    assert message in body["error"]["message"]
    assert set(body["error"]) == {"message", "type", "code"}
    assert mock_openai.requests == []
    await gateway.flush_events()
    _, events = await gateway.admin("GET", "/api/events")
    assert [(e["status"], e["key_id"], e["path"]) for e in events] == [
        (401, "", "/api/providers/openai/v1/chat/completions")
    ]  # refused callers are recorded too


async def test_revoked_and_expired_keys_are_refused(start_gateway: object, mock_openai: MockOpenAI) -> None:
    now = [1_800_000_000.0]
    gw: Running = await start_gateway(clock=lambda: now[0])  # type: ignore[operator]
    setting_id = await gw.create_setting(mock_openai.url)
    key = await gw.create_key(setting_id, ttl="2d")
    client = sdk(gw)
    await client.chat.completions.create(**CHAT)  # type: ignore[call-overload]
    now[0] += 2 * 86400  # exactly at expiry: refused, not one request later
    with pytest.raises(openai.AuthenticationError, match="expired"):
        await client.chat.completions.create(**CHAT)  # type: ignore[call-overload]
    now[0] -= 86400
    status, _ = await gw.admin(
        "PATCH", f"/api/key-management/keys/{key['keyId']}", {"revoked": True, "revokedReason": "leaked"}
    )
    assert status == 200
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        await client.chat.completions.create(**CHAT)  # type: ignore[call-overload]
    assert len(mock_openai.requests) == 1


async def test_allowed_paths_and_models(gateway: Running, mock_openai: MockOpenAI) -> None:
    setting_id = await gateway.create_setting(mock_openai.url, allowedModels=["gpt-4o-mini"])
    await gateway.create_key(
        setting_id,
        allowedPaths=[
            {"path": "/api/providers/openai/v1/chat/completions", "method": "POST"},
            {"path": "/api/providers/openai/v1/files/:file_id", "method": "GET"},
        ],
    )
    client = sdk(gateway)
    await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.PermissionDeniedError, match="model is not allowed"):
        await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.PermissionDeniedError, match="path is not allowed"):
        await client.embeddings.create(model="gpt-4o-mini", input="x")
    with pytest.raises(openai.NotFoundError):  # allowed by pattern; the mock has no such file
        await client.files.retrieve("file-404")
    assert [r.path for r in mock_openai.requests] == ["/v1/chat/completions", "/v1/files/file-404"]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b"", "application/json"),
        (b"model=gpt-4o", "application/x-www-form-urlencoded"),
    ],
)
async def test_unparseable_body_never_bypasses_checks(
    gateway: Running, mock_openai: MockOpenAI, body: bytes, content_type: str
) -> None:
    setting_id = await gateway.create_setting(mock_openai.url, allowedModels=["gpt-4o-mini"])
    await gateway.create_key(setting_id)
    async with gateway.http.post(
        gateway.openai_base + "/chat/completions",
        data=body,
        headers={"Authorization": "Bearer my-secret-key", "Content-Type": content_type},
    ) as r:
        assert r.status == 400
        assert (await r.json())["error"]["type"] == "invalid_request_error"
    assert mock_openai.requests == []


async def test_upstream_errors_pass_through_and_failures_are_clear(
    gateway: Running, mock_openai: MockOpenAI
) -> None:
    setting_id = await gateway.create_setting(mock_openai.url)
    await gateway.create_key(setting_id)
    client = sdk(gateway)
    with pytest.raises(openai.RateLimitError, match="mock error 429"):
        await client.chat.completions.create(**CHAT, extra_headers={"x-mock": "error-429"})  # type: ignore[call-overload]
    with pytest.raises(openai.InternalServerError, match="mock error 500"):
        await client.chat.completions.create(**CHAT, extra_headers={"x-mock": "error-500"})  # type: ignore[call-overload]
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(  # type: ignore[call-overload]
            **CHAT, extra_headers={"x-mock": "slow-2000", "x-request-timeout": "200ms"}
        )
    assert info.value.status_code == 504
    with pytest.raises(openai.BadRequestError, match="invalid timeout"):
        await client.chat.completions.create(**CHAT, extra_headers={"x-request-timeout": "soon"})  # type: ignore[call-overload]


async def test_unreachable_upstream_is_502(gateway: Running, free_port: int) -> None:
    setting_id = await gateway.create_setting(f"http://127.0.0.1:{free_port}")
    await gateway.create_key(setting_id)
    with pytest.raises(openai.APIStatusError) as info:
        await sdk(gateway).chat.completions.create(**CHAT)  # type: ignore[call-overload]
    assert info.value.status_code == 502
    assert "could not be reached" in info.value.message


async def test_unknown_route_and_provider_are_404(gateway: Running, mock_openai: MockOpenAI) -> None:
    setting_id = await gateway.create_setting(mock_openai.url)
    await gateway.create_key(setting_id)
    auth = {"Authorization": "Bearer my-secret-key"}
    for path in ("/api/providers/openai/v1/nope", "/api/providers/nobody/v1/chat/completions", "/elsewhere"):
        async with gateway.http.post(gateway.proxy_url + path, json={}, headers=auth) as resp:
            assert resp.status == 404, path
            assert "route not supported" in (await resp.json())["error"]["message"]


async def test_health_on_both_ports(gateway: Running) -> None:
    for url in (gateway.admin_url, gateway.proxy_url):
        async with gateway.http.get(url + "/api/health") as resp:
            assert resp.status == 200


async def test_events_are_recorded_for_admitted_and_rejected_requests(
    gateway: Running, mock_openai: MockOpenAI
) -> None:
    setting_id = await gateway.create_setting(mock_openai.url)
    key = await gateway.create_key(setting_id, rateLimitOverTime=1, rateLimitUnit="m")
    client = sdk(gateway)
    await client.chat.completions.create(**CHAT, extra_headers={"X-CUSTOM-EVENT-ID": "first"})  # type: ignore[call-overload]
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(**CHAT, extra_headers={"X-CUSTOM-EVENT-ID": "second"})  # type: ignore[call-overload]
    await asyncio.sleep(0)
    await gateway.flush_events()
    status, events = await gateway.admin("GET", f"/api/events?keyIds={key['keyId']}")
    assert status == 200
    by_custom = {e["custom_id"]: e for e in events}
    first, second = by_custom["first"], by_custom["second"]
    assert first["status"] == 200 and second["status"] == 429
    assert (
        first["prompt_token_count"] == PROMPT_TOKENS and first["completion_token_count"] == COMPLETION_TOKENS
    )
    # gpt-3.5-turbo: $0.50 / 1M input, $1.50 / 1M output; 3 of the 11 prompt tokens cached (no cached price)
    assert first["cost_in_usd"] == pytest.approx((11 * 0.5 + 7 * 1.5) / 1e6)
    assert second["cost_in_usd"] == 0
    assert first["model"] == "gpt-3.5-turbo" and first["provider"] == "openai"
    assert first["path"] == "/api/providers/openai/v1/chat/completions" and first["method"] == "POST"
    assert first["tags"] == ["t1"]


async def test_proxy_timeout_bounds_the_upstream_call(start_gateway: object, mock_openai: MockOpenAI) -> None:
    gw: Running = await start_gateway(proxy_timeout=0.2)  # type: ignore[operator]
    await gw.create_key(await gw.create_setting(mock_openai.url))
    with pytest.raises(openai.APIStatusError) as info:
        await sdk(gw).chat.completions.create(**CHAT, extra_headers={"x-mock": "slow-1500"})  # type: ignore[call-overload]
    assert info.value.status_code == 504


async def test_model_of_a_multipart_request_is_checked(gateway: Running, mock_openai: MockOpenAI) -> None:
    await gateway.create_key(await gateway.create_setting(mock_openai.url, allowedModels=["dall-e-2"]))
    client = sdk(gateway)
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 64
    edited = await client.images.edit(model="dall-e-2", image=("a.png", png), prompt="a hat")
    assert edited.data is not None and edited.data[0].url == "https://img.example/edit.png"
    with pytest.raises(openai.PermissionDeniedError, match="model is not allowed"):
        await client.images.edit(model="gpt-image-1", image=("a.png", png), prompt="a hat")
    assert len([r for r in mock_openai.requests if r.path == "/v1/images/edits"]) == 1


async def test_body_over_the_limit_is_413(gateway: Running, mock_openai: MockOpenAI) -> None:
    limit = gateway.gateway.settings.proxy_max_body_bytes
    await gateway.create_key(await gateway.create_setting(mock_openai.url))
    async with gateway.http.post(
        gateway.openai_base + "/chat/completions",
        data=io.BytesIO(b"{" + b" " * limit + b"}"),
        headers={"Authorization": "Bearer my-secret-key", "Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 413
        assert (await resp.json())["error"]["code"] == "request_too_large"
    assert mock_openai.requests == []
