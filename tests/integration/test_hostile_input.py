"""Regression tests for the reliability issue's first defects: input that the stores cannot hold,
dot segments that widen `allowedPaths`, and values that cannot be sent as a header.

Each test states the defect it pins down. They run on SQLite and, where the defect was seen
there, on PostgreSQL too."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bricksllm.domain.models import MAX_TOKENS
from bricksllm.settings import PostgresSettings, Settings
from tests.integration.conftest import GatewayFactory, Running
from tests.integration.mock_openai import MockOpenAI

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}


async def raw_request(port: int, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send bytes no HTTP client library would send; return (status, whole answer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head + b"Connection: close\r\n\r\n" + body)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return int(answer.split(b" ", 2)[1]), answer


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend_pg(request: pytest.FixtureRequest) -> PostgresSettings | None:
    return request.getfixturevalue("pg_settings") if request.param == "postgres" else None


@pytest.fixture
async def any_backend(
    backend_pg: PostgresSettings | None, start_gateway: GatewayFactory, tmp_path: Path
) -> Running:
    return await start_gateway(Settings(data_dir=tmp_path / "data", postgres=backend_pg))  # type: ignore[no-any-return]


# --- 1 and 2: a value the store refuses must never stop recording, nor erase usage -----------


async def test_a_bad_header_byte_does_not_stop_event_recording(
    any_backend: Running, mock_openai: MockOpenAI
) -> None:
    gw = any_backend
    await gw.create_key(await gw.create_setting(mock_openai.url))
    status, _ = await raw_request(
        gw.gateway.proxy_port, b"GET / HTTP/1.1\r\nHost: x\r\nX-CUSTOM-EVENT-ID: \xff\r\n"
    )
    assert status == 404
    await gw.openai().chat.completions.create(**CHAT)  # type: ignore[call-overload]
    await gw.flush_events()  # fails if a batch is stuck behind the refused row
    assert gw.gateway.events.pending == 0
    _, events = await gw.admin("GET", "/api/events?limit=10")
    assert sorted(e["status"] for e in events) == [200, 404]
    assert [e["custom_id"] for e in events if e["status"] == 404] == ["\\udcff"]  # kept, escaped


async def test_a_caller_cannot_erase_its_usage_with_a_bad_header(
    start_gateway: GatewayFactory, mock_openai: MockOpenAI, tmp_path: object
) -> None:
    gw = await start_gateway()
    await gw.create_key(await gw.create_setting(mock_openai.url), costLimitInUsd=1)
    body = json.dumps(CHAT).encode()
    head = (
        b"POST /api/providers/openai/v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer my-secret-key\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\nX-CUSTOM-EVENT-ID: a\xffb\r\n"
    )
    status, _ = await raw_request(gw.gateway.proxy_port, head, body)
    assert status == 200
    key_id = (await gw.admin("GET", "/api/key-management/keys"))[1][0]["keyId"]
    spent = (await gw.admin("GET", f"/api/reporting/keys/{key_id}"))[1]["costInMicroDollars"]
    assert spent > 0
    settings = gw.gateway.settings
    await gw.close()
    again = await start_gateway(settings)  # spend is rebuilt from the recorded events
    assert (await again.admin("GET", f"/api/reporting/keys/{key_id}"))[1]["costInMicroDollars"] == spent


async def test_usage_beyond_64_bits_is_recorded_clamped(
    any_backend: Running, mock_openai: MockOpenAI
) -> None:
    gw = any_backend
    await gw.create_key(await gw.create_setting(mock_openai.url))
    mock_openai.usage_override = {"prompt_tokens": 10**20, "completion_tokens": -5, "total_tokens": 1}
    await gw.openai().chat.completions.create(**CHAT)  # type: ignore[call-overload]
    mock_openai.usage_override = None
    await gw.openai().chat.completions.create(**CHAT)  # type: ignore[call-overload]
    await gw.flush_events()
    _, events = await gw.admin("GET", "/api/events?limit=10")
    assert len(events) == 2
    tokens = sorted((e["prompt_token_count"], e["completion_token_count"]) for e in events)
    assert tokens[1] == (MAX_TOKENS, 0)  # clamped, never negative


# --- 3: dot segments and encoded slashes never widen allowedPaths -----------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/v1/assistants/%2e%2e/files",
        "/v1/assistants/%2E./files",
        "/v1/assistants/../files",
        "/v1/assistants/a%2f..%2f..%2ffiles/files",
        "/v1/assistants/a%5c..%5cfiles/files",
        "/v1/assistants/a%3fx/files",
        "/v1/assistants/a%23x/files",
        "/v1/assistants/a%00/files",
    ],
)
async def test_dot_segments_and_encoded_separators_are_refused(
    gateway: Running, mock_openai: MockOpenAI, path: str
) -> None:
    setting = await gateway.create_setting(mock_openai.url)
    allowed = "/api/providers/openai/v1/assistants/:assistant_id/files"
    await gateway.create_key(setting, allowedPaths=[{"path": allowed, "method": "GET"}])
    head = f"GET /api/providers/openai{path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer my-secret-key\r\n"
    status, answer = await raw_request(gateway.gateway.proxy_port, head.encode())
    assert status == 400, answer
    assert b"path" in answer
    assert not mock_openai.requests


async def test_what_is_forwarded_is_exactly_what_was_matched(
    gateway: Running, mock_openai: MockOpenAI
) -> None:
    setting = await gateway.create_setting(mock_openai.url)
    allowed = "/api/providers/openai/v1/files/:file_id"
    await gateway.create_key(setting, allowedPaths=[{"path": allowed, "method": "GET"}])
    head = (
        b"GET /api/providers/openai/v1/files/file%2Dabc%20x?limit=2 HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer my-secret-key\r\n"
    )
    await raw_request(gateway.gateway.proxy_port, head)
    seen = mock_openai.requests[-1]
    assert (seen.path, seen.query) == ("/v1/files/file-abc x", "limit=2")
    assert seen.raw_path == "/v1/files/file-abc%20x?limit=2"


# --- 4: values that cannot be stored or sent as a header are refused at the edge ---------------


async def _raw_admin(gw: Running, method: str, path: str, body: str) -> tuple[int, dict[str, object]]:
    async with gw.http.request(
        method, gw.admin_url + path, data=body.encode(), headers={"Content-Type": "application/json"}
    ) as resp:
        return resp.status, await resp.json(content_type=None)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"provider": "openai", "setting": {"apikey": "k", "url": "http://x/\\ud800"}}', "setting.url"),
        ('{"provider": "openai", "setting": {"apikey": "k\\r\\nX-Evil: 1"}}', "setting.apikey"),
        ('{"provider": "openai", "setting": {"apikey": "k\\u0000"}}', "setting.apikey"),
        ('{"provider": "openai", "setting": {"apikey": "k"}, "name": "a\\u0000b"}', "name"),
        ('{"provider": "openai", "setting": {"apikey": "k", "\\udfff": "v"}}', "setting"),
    ],
)
async def test_unstorable_or_unsendable_setting_values_are_refused(
    any_backend: Running, body: str, field: str
) -> None:
    status, problem = await _raw_admin(any_backend, "PUT", "/api/provider-settings", body)
    assert status == 400, problem
    assert field in problem["fields"]  # type: ignore[operator]
    status, listed = await any_backend.admin("GET", "/api/provider-settings")
    assert (status, listed) == (200, [])  # nothing half-stored, the collection still reads


async def test_unstorable_custom_provider_and_key_fields_are_refused(any_backend: Running) -> None:
    route = {
        "path": "/chat",
        "target_url": "http://127.0.0.1:1/chat",
        "model_location": "model",
        "request_prompt_location": "messages.#.content",
        "response_completion_location": "choices.#.message.content\ud800",
    }
    body = json.dumps({"provider": "acme", "route_configs": [route]})
    status, problem = await _raw_admin(any_backend, "POST", "/api/custom/providers", body)
    assert status == 400 and problem["fields"] == ["route_configs[0].response_completion_location"]
    assert await any_backend.admin("GET", "/api/custom/providers") == (200, [])
    key = json.dumps({"name": "n\x00", "key": "s", "settingId": "x"})
    status, problem = await _raw_admin(any_backend, "PUT", "/api/key-management/keys", key)
    assert status == 400 and "name" in problem["fields"]  # type: ignore[operator]


async def test_unstorable_query_values_are_refused(any_backend: Running) -> None:
    for query in ("customId=a%00b", "keyIds=%ff%fe", "tags=%00"):
        status, problem = await any_backend.admin("GET", f"/api/events?{query}")
        assert status == 400, (query, problem)
        assert problem["type"] == "/errors/validation"
