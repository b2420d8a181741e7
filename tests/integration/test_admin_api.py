"""Admin API over HTTP, across resources: the reference's quick start, errors, auth, OpenAPI,
restart persistence, and that no secret ever leaves in a response body or a log line."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bricksllm.http.admin_app import create_admin_app
from bricksllm.ports import EventQuery
from bricksllm.providers.registry import ProviderRegistry
from bricksllm.services.admin import AdminService
from bricksllm.settings import Settings
from bricksllm.storage.memory_counters import MemoryCounters
from bricksllm.storage.sql import open_stores
from tests.integration.admin_harness import CUSTOM, KEYS, SETTINGS, Admin, problem_fields, running_admin


@pytest.fixture
async def admin(tmp_path: Path) -> AsyncIterator[Admin]:
    async with running_admin(tmp_path) as a:
        yield a


async def test_reference_quick_start_bodies(admin: Admin) -> None:
    setting_body = '{\n"provider":"openai",\n"setting": {\n"apikey": "YOUR_OPENAI_KEY"\n}\n}'
    status, setting = await admin.call(
        "PUT", SETTINGS, raw=setting_body, headers={"Content-Type": "application/json"}
    )
    assert status == 200, setting
    key_body = (
        '{\n"name": "My Secret Key",\n"key": "my-secret-key",\n"tags": ["mykey"],\n'
        f'"settingId": "{setting["id"]}",\n"rateLimitOverTime": 2,\n"rateLimitUnit": "m",\n'
        '"costLimitInUsd": 0.25\n}'
    )
    status, key = await admin.call("PUT", KEYS, raw=key_body, headers={"Content-Type": "application/json"})
    assert status == 200, key
    assert key["name"] == "My Secret Key" and key["tags"] == ["mykey"] and key["settingId"] == setting["id"]
    assert (key["rateLimitOverTime"], key["rateLimitUnit"], key["costLimitInUsd"]) == (2, "m", 0.25)
    snapshot = await admin.stores.config.snapshot()
    assert [k.key_id for k in snapshot.keys] == [key["keyId"]]
    assert len(admin.changes) == 2 and admin.changes == sorted(admin.changes)
    assert all("YOUR_OPENAI_KEY" not in b and "my-secret-key" not in b for b in admin.bodies)


async def test_health(admin: Admin) -> None:
    assert await admin.ok("GET", "/api/health") == {"status": "ok"}


@pytest.mark.parametrize(
    "raw",
    ['{"name": "x",', "[]", "1", '"text"', "null", "", "   ", "{'a': 1}", b"\xff\xfe{}", "[" * 100_000],
    ids=[
        "truncated",
        "array",
        "number",
        "string",
        "null",
        "empty",
        "blank",
        "single-quotes",
        "binary",
        "deep",
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", KEYS),
        ("PATCH", f"{KEYS}/x"),
        ("POST", SETTINGS),
        ("POST", CUSTOM),
        ("POST", "/api/reporting/events"),
    ],
)
async def test_malformed_json_is_a_400(admin: Admin, method: str, path: str, raw: str | bytes) -> None:
    status, data = await admin.call(method, path, raw=raw, headers={"Content-Type": "application/json"})
    assert status == 400, data
    assert data["type"] == "/errors/json" and data["status"] == 400 and data["instance"] == path
    assert data["title"] and data["detail"]


async def test_unknown_route_and_wrong_method(admin: Admin) -> None:
    status, data = await admin.call("GET", "/api/nothing-here")
    assert status == 404 and data["type"] == "/errors/not-found" and data["instance"] == "/api/nothing-here"
    resp = await admin.client.request("DELETE", SETTINGS)
    data = await resp.json(content_type=None)
    assert resp.status == 405 and data["type"] == "/errors/method-not-allowed"
    assert resp.content_type == "application/problem+json"
    assert set(resp.headers["Allow"].split(", ")) >= {"GET", "PUT", "POST"}
    status, _ = await admin.call("POST", "/api/health")
    assert status == 405


async def test_body_over_one_mebibyte_is_a_413(admin: Admin) -> None:
    big = '{"name": "' + "x" * (1024 * 1024) + '"}'
    status, data = await admin.call(
        "PUT", KEYS, raw=io.BytesIO(big.encode()), headers={"Content-Type": "application/json"}
    )
    assert status == 413 and data["type"] == "/errors/too-large"
    setting = await admin.setting()
    near = {"name": "n" * 1_000_000, "key": "s", "settingId": setting["id"]}
    assert (await admin.ok("PUT", KEYS, near))["name"] == near["name"]


async def test_admin_password(tmp_path: Path) -> None:
    async with running_admin(tmp_path, admin_pass="adm-pass-Quartz") as admin:
        for headers in ({"X-API-KEY": "nope"}, {"X-API-KEY": ""}, {"X-API-KEY": "adm-pass-quartz"}):
            for method, path in (
                ("GET", KEYS),
                ("PUT", SETTINGS),
                ("GET", "/openapi.json"),
                ("GET", "/nowhere"),
            ):
                status, data = await admin.call(method, path, {}, headers=headers)
                assert status == 401 and data["type"] == "/errors/unauthorized", (headers, path)
                assert "adm-pass" not in str(data)
        resp = await admin.client.get(KEYS)  # no header at all
        assert resp.status == 401 and resp.content_type == "application/problem+json"
        resp = await admin.client.get("/api/health")
        assert resp.status == 200 and await resp.json() == {"status": "ok"}
        assert await admin.ok("GET", KEYS) == []  # `call` sends the right password
        assert (await admin.setting())["provider"] == "openai"


async def test_unexpected_errors_are_a_generic_500(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    class BrokenEvents:
        async def query_events(self, query: EventQuery) -> list[Any]:
            raise RuntimeError("database says sk-internal-detail")

    stores = await open_stores(Settings(data_dir=tmp_path))

    async def nothing() -> None:
        return None

    service = AdminService(
        stores.config,
        BrokenEvents(),
        MemoryCounters(),
        ProviderRegistry(),
        on_change=nothing,  # type: ignore[arg-type]
    )
    async with TestClient(TestServer(create_admin_app(service, admin_pass=""))) as client:
        with caplog.at_level(logging.ERROR, logger="bricksllm.admin"):
            resp = await client.get("/api/events")
        text = await resp.text()
        assert resp.status == 500 and resp.content_type == "application/problem+json"
        assert "/errors/internal" in text and "sk-internal-detail" not in text and "RuntimeError" not in text
        assert "RuntimeError" in caplog.text  # the operator gets the traceback in the log
        assert (await client.get("/api/health")).status == 200  # and the server keeps serving
    await stores.close()


async def test_configuration_survives_a_restart(tmp_path: Path) -> None:
    async with running_admin(tmp_path / "data") as first:
        setting = await first.setting(
            name="kept", allowedModels=["gpt-4o"], prices={"gpt-4o": {"input": 1, "output": 2}}
        )
        key = await first.key(setting["id"], tags=["t"], rateLimitOverTime=2, rateLimitUnit="m", ttl="2d")
        custom = await first.ok(
            "POST",
            CUSTOM,
            {
                "provider": "kept",
                "route_configs": [
                    {
                        "path": "/x",
                        "target_url": "http://127.0.0.1:9/x",
                        "model_location": "model",
                        "request_prompt_location": "prompt",
                        "response_completion_location": "text",
                    }
                ],
            },
        )
    async with running_admin(tmp_path / "data") as second:
        assert await second.ok("GET", SETTINGS) == [setting]
        assert await second.ok("GET", KEYS) == [key]
        assert await second.ok("GET", CUSTOM) == [custom]
        status, data = await second.call(
            "PUT", KEYS, {"name": "again", "key": "secret-1", "settingId": setting["id"]}
        )
        assert status == 400 and problem_fields(data) == ["key"]  # the stored hash still guards the secret


async def test_openapi_document(admin: Admin) -> None:
    doc = await admin.ok("GET", "/openapi.json")
    assert doc["openapi"] == "3.1.0"
    expected = {
        ("get", "/api/health"),
        ("put", KEYS),
        ("post", KEYS),
        ("get", KEYS),
        ("patch", KEYS + "/{keyId}"),
        ("delete", KEYS + "/{keyId}"),
        ("put", SETTINGS),
        ("post", SETTINGS),
        ("get", SETTINGS),
        ("patch", SETTINGS + "/{id}"),
        ("post", CUSTOM),
        ("get", CUSTOM),
        ("patch", CUSTOM + "/{id}"),
        ("get", "/api/events"),
        ("post", "/api/reporting/events"),
        ("get", "/api/reporting/keys/{keyId}"),
        ("get", "/api/reporting/keys"),
    }
    assert {(m, p) for p, ops in doc["paths"].items() for m in ops} == expected
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    schemas = doc["components"]["schemas"]

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            return ([node["$ref"]] if "$ref" in node else []) + [r for v in node.values() for r in refs(v)]
        return [r for v in node for r in refs(v)] if isinstance(node, list) else []

    for ref in refs(doc):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    create = doc["paths"][KEYS]["put"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    create_schema = schemas[create.rsplit("/", 1)[1]]
    assert {"name", "key", "settingId", "rateLimitOverTime", "allowedPaths"} <= set(
        create_schema["properties"]
    )
    assert (
        set(create_schema["required"]) == {"name", "key"} and create_schema["additionalProperties"] is False
    )
    key_out = doc["paths"][KEYS]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert key_out["type"] == "array"
    assert "key" not in schemas[key_out["items"]["$ref"].rsplit("/", 1)[1]]["properties"]
    setting_out = schemas["SettingOut"]["properties"]
    assert "settingKeys" in setting_out
    assert doc["paths"]["/api/health"]["get"]["security"] == []
    assert (
        "401" in doc["paths"][KEYS]["get"]["responses"]
        and "404" in doc["paths"][KEYS + "/{keyId}"]["patch"]["responses"]
    )
    events_ok = doc["paths"]["/api/events"]["get"]["responses"]["200"]
    assert events_ok["headers"]["X-Total-Count"]["schema"] == {"type": "integer"}
    event_params = {p["name"] for p in doc["paths"]["/api/events"]["get"]["parameters"]}
    assert {"model", "status", "returnCount"} <= event_params
    point = schemas["DataPointOut"]["properties"]
    assert {"latencyInMsMedian", "latencyInMs99th", "latencyInMs"} <= set(point)
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(doc)


async def test_docs_page_is_self_contained(admin: Admin) -> None:
    status, page = await admin.call("GET", "/docs")
    assert status == 200 and page.startswith("<!doctype html>")
    for path in (KEYS, SETTINGS, CUSTOM, "/api/reporting/events", "KeyCreate", "SettingOut"):
        assert path in page
    for external in ("<script", "<link", "src=", "//cdn", "https://", "http://"):
        assert external not in page
