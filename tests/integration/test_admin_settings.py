"""Admin API over HTTP: provider settings and custom providers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bricksllm.domain.models import ModelPrice
from tests.integration.admin_harness import CUSTOM, SETTINGS, T0, Admin, problem_fields, running_admin


@pytest.fixture
async def admin(tmp_path: Path) -> AsyncIterator[Admin]:
    async with running_admin(tmp_path) as a:
        yield a


SETTING_FIELDS = {
    "id",
    "provider",
    "name",
    "allowedModels",
    "prices",
    "setting",
    "settingKeys",
    "createdAt",
    "updatedAt",
}
ROUTE = {
    "path": "/chat/completions",
    "target_url": "https://api.openai.com/v1/chat/completions",
    "model_location": "model",
    "request_prompt_location": "messages.#.content",
    "response_completion_location": "choices.#.message.content",
}


@pytest.mark.parametrize("method", ["PUT", "POST"])
async def test_create_setting_hides_credentials(admin: Admin, method: str) -> None:
    body = {
        "provider": "azure",
        "name": "prod azure",
        "allowedModels": ["gpt-4o"],
        "setting": {
            "apikey": "az-key",
            "resourceName": "my-res",
            "apiVersion": "2024-06-01",
            "url": "https://proxy.example/openai",
            "clientSecret": "other-credential",
        },
        "prices": {
            "gpt-4o": {"input": 2.5, "output": 10, "cachedInput": 1.25},
            "gpt-4o-mini": {"input": 0.15, "output": 0.6},
        },
    }
    created = await admin.ok(method, SETTINGS, body)
    assert set(created) == SETTING_FIELDS
    assert created["setting"] == {
        "url": "https://proxy.example/openai",
        "resourceName": "my-res",
        "apiVersion": "2024-06-01",
    }
    assert created["settingKeys"] == ["apiVersion", "apikey", "clientSecret", "resourceName", "url"]
    assert created["prices"] == {
        "gpt-4o": {"input": 2.5, "output": 10.0, "cachedInput": 1.25, "cacheWrite": None},
        "gpt-4o-mini": {"input": 0.15, "output": 0.6, "cachedInput": None, "cacheWrite": None},
    }
    assert created["name"] == "prod azure" and created["allowedModels"] == ["gpt-4o"]
    assert created["createdAt"] == created["updatedAt"] == T0
    assert "az-key" not in admin.bodies[-1] and "other-credential" not in admin.bodies[-1]
    stored = await admin.stores.config.get_setting(created["id"])
    assert stored is not None and stored.setting["apikey"] == "az-key"
    assert stored.prices["gpt-4o"] == ModelPrice(2.5, 10.0, 1.25)


@pytest.mark.parametrize(
    ("provider", "setting"),
    [
        ("openai", {"apikey": "k"}),
        ("OpenAI", {"apikey": "k"}),
        ("anthropic", {"apikey": "k"}),
        ("deepinfra", {"apikey": "k"}),
        ("azure", {"apikey": "k", "resourceName": "r"}),
        ("vllm", {"url": "http://127.0.0.1:8000"}),
        ("bedrock", {"awsAccessKeyId": "a", "awsSecretAccessKey": "s", "awsRegion": "us-east-1"}),
    ],
)
async def test_every_builtin_provider_with_its_required_keys(
    admin: Admin, provider: str, setting: dict[str, str]
) -> None:
    created = await admin.ok("PUT", SETTINGS, {"provider": provider, "setting": setting})
    assert created["provider"] == provider.lower()
    assert created["settingKeys"] == sorted(setting)


BAD_SETTINGS: list[tuple[dict[str, Any], str]] = [
    ({"provider": None}, "provider"),
    ({"provider": ""}, "provider"),
    ({"provider": "mistral"}, "provider"),
    ({"provider": 1}, "provider"),
    ({"setting": None}, "setting"),
    ({"setting": {}}, "setting.apikey"),
    ({"setting": {"apikey": ""}}, "setting.apikey"),
    ({"setting": {"apikey": 123}}, "setting.apikey"),
    ({"setting": "sk-abc"}, "setting"),
    ({"provider": "azure", "setting": {"apikey": "k"}}, "setting.resourceName"),
    ({"provider": "vllm", "setting": {"apikey": "k"}}, "setting.url"),
    ({"provider": "bedrock", "setting": {"awsAccessKeyId": "a"}}, "setting.awsSecretAccessKey"),
    ({"setting": {"apikey": "k", "url": "ftp://files.example"}}, "setting.url"),
    ({"setting": {"apikey": "k", "url": "not a url"}}, "setting.url"),
    ({"setting": {"apikey": "k", "url": "http://"}}, "setting.url"),
    ({"name": 5}, "name"),
    ({"allowedModels": [""]}, "allowedModels[0]"),
    ({"allowedModels": "gpt-4o"}, "allowedModels"),
    ({"prices": {"gpt-4o": {"input": -1, "output": 1}}}, "prices.gpt-4o.input"),
    ({"prices": {"gpt-4o": {"input": 1}}}, "prices.gpt-4o.output"),
    ({"prices": {"gpt-4o": {"input": 1, "output": 1, "cachedInput": -0.1}}}, "prices.gpt-4o.cachedInput"),
    ({"prices": {"gpt-4o": {"input": 1, "output": 1, "batch": 1}}}, "prices.gpt-4o.batch"),
    ({"prices": {"gpt-4o": 2}}, "prices.gpt-4o"),
    ({"costMap": {}}, "costMap"),
]


@pytest.mark.parametrize(
    ("change", "field"), BAD_SETTINGS, ids=[f"{f}-{i}" for i, (_, f) in enumerate(BAD_SETTINGS)]
)
async def test_create_setting_rejects_each_bad_field(
    admin: Admin, change: dict[str, Any], field: str
) -> None:
    body = {
        k: v for k, v in {"provider": "openai", "setting": {"apikey": "k"}, **change}.items() if v is not None
    }
    status, data = await admin.call("PUT", SETTINGS, body)
    assert status == 400, data
    assert data["type"] == "/errors/validation"
    assert field in problem_fields(data)
    assert await admin.stores.config.list_settings() == []


async def test_patch_setting_merges_the_setting_map(admin: Admin) -> None:
    created = await admin.setting(
        provider="azure",
        setting={"apikey": "old", "resourceName": "r1"},
        name="n",
        allowedModels=["a"],
        prices={"a": {"input": 1, "output": 2}},
    )
    path = f"{SETTINGS}/{created['id']}"
    admin.now[0] = T0 + 5
    patched = await admin.ok("PATCH", path, {"setting": {"apikey": "new", "url": "https://gw.example"}})
    assert patched["setting"] == {"url": "https://gw.example", "resourceName": "r1"}
    assert patched["settingKeys"] == ["apikey", "resourceName", "url"]
    assert patched["name"] == "n" and patched["allowedModels"] == ["a"] and patched["provider"] == "azure"
    assert patched["updatedAt"] == T0 + 5 and patched["createdAt"] == T0
    stored = await admin.stores.config.get_setting(created["id"])
    assert stored is not None and stored.setting == {
        "apikey": "new",
        "resourceName": "r1",
        "url": "https://gw.example",
    }

    replaced = await admin.ok(
        "PATCH", path, {"name": "m", "allowedModels": ["b", "c"], "prices": {}, "setting": {"url": ""}}
    )
    assert replaced["name"] == "m" and replaced["allowedModels"] == ["b", "c"] and replaced["prices"] == {}
    assert replaced["settingKeys"] == ["apikey", "resourceName"]  # "" removes an entry

    for change, field in [
        ({"setting": {"resourceName": ""}}, "setting.resourceName"),
        ({"setting": {"url": "file:///etc/passwd"}}, "setting.url"),
        ({"provider": "openai"}, "provider"),
        ({"allowedModels": [""]}, "allowedModels[0]"),
        ({"prices": {"x": {"input": "1", "output": 1}}}, "prices.x.input"),
        ({"id": "other"}, "id"),
    ]:
        status, data = await admin.call("PATCH", path, change)
        assert status == 400 and field in problem_fields(data), (change, data)
    assert (await admin.ok("GET", SETTINGS))[0] == replaced


async def test_patch_unknown_setting_is_404(admin: Admin) -> None:
    status, data = await admin.call("PATCH", f"{SETTINGS}/nope", {"name": "x"})
    assert status == 404 and data["type"] == "/errors/not-found"


async def test_get_settings_all_or_by_ids(admin: Admin) -> None:
    created = []
    for i, name in enumerate("abc"):
        admin.now[0] = T0 + i  # listed in creation order
        created.append(await admin.setting(name=name))
    a, b, c = created
    assert [s["name"] for s in await admin.ok("GET", SETTINGS)] == ["a", "b", "c"]
    assert [s["name"] for s in await admin.ok("GET", f"{SETTINGS}?ids={a['id']}&ids={c['id']}")] == ["a", "c"]
    assert [s["name"] for s in await admin.ok("GET", f"{SETTINGS}?ids={b['id']},{a['id']}")] == ["b", "a"]
    status, data = await admin.call("GET", f"{SETTINGS}?ids={a['id']}&ids=missing")
    assert status == 404 and "missing" in data["detail"]


async def test_setting_for_a_custom_provider_needs_its_authentication_param(admin: Admin) -> None:
    await admin.ok(
        "POST", CUSTOM, {"provider": "bricks", "route_configs": [ROUTE], "authentication_param": "token"}
    )
    await admin.ok("POST", CUSTOM, {"provider": "open", "route_configs": [ROUTE]})
    status, data = await admin.call("PUT", SETTINGS, {"provider": "bricks", "setting": {"apikey": "x"}})
    assert status == 400 and problem_fields(data) == ["setting.token"]
    created = await admin.ok("PUT", SETTINGS, {"provider": "bricks", "setting": {"token": "t-123"}})
    assert created["settingKeys"] == ["token"] and created["setting"] == {}
    assert (await admin.ok("PUT", SETTINGS, {"provider": "open", "setting": {}}))["provider"] == "open"


# ------------------------------------------------------------------ custom providers


async def test_create_and_list_custom_providers(admin: Admin) -> None:
    stream = {
        **ROUTE,
        "path": "/stream",
        "stream_location": "stream",
        "stream_end_word": "[DONE]",
        "stream_response_completion_location": "choices.#.delta.content",
        "stream_max_empty_messages": 10,
    }
    created = await admin.ok(
        "POST",
        CUSTOM,
        {"provider": "Bricks", "route_configs": [ROUTE, stream], "authentication_param": "apikey"},
    )
    assert set(created) == {
        "id",
        "created_at",
        "updated_at",
        "provider",
        "route_configs",
        "authentication_param",
    }
    assert created["provider"] == "bricks" and created["authentication_param"] == "apikey"
    assert created["created_at"] == created["updated_at"] == T0
    assert created["route_configs"][0] == {
        **ROUTE,
        "stream_location": "",
        "stream_end_word": "",
        "stream_response_completion_location": "",
        "stream_max_empty_messages": 0,
    }
    assert created["route_configs"][1] == stream
    assert await admin.ok("GET", CUSTOM) == [created]


BAD_PROVIDERS: list[tuple[dict[str, Any], str]] = [
    ({"provider": None}, "provider"),
    ({"provider": ""}, "provider"),
    ({"provider": "my provider"}, "provider"),
    ({"provider": "openai"}, "provider"),
    ({"provider": "Bedrock"}, "provider"),
    ({"provider": "Taken"}, "provider"),
    ({"route_configs": None}, "route_configs"),
    ({"route_configs": []}, "route_configs"),
    ({"route_configs": [{**ROUTE, "path": None}]}, "route_configs[0].path"),
    ({"route_configs": [{**ROUTE, "path": "chat"}]}, "route_configs[0].path"),
    ({"route_configs": [{**ROUTE, "path": "/a b"}]}, "route_configs[0].path"),
    ({"route_configs": [ROUTE, {**ROUTE, "target_url": "https://x.example"}]}, "route_configs[1].path"),
    ({"route_configs": [{**ROUTE, "target_url": None}]}, "route_configs[0].target_url"),
    ({"route_configs": [{**ROUTE, "target_url": "ftp://x.example"}]}, "route_configs[0].target_url"),
    ({"route_configs": [{**ROUTE, "model_location": None}]}, "route_configs[0].model_location"),
    ({"route_configs": [{**ROUTE, "model_location": ""}]}, "route_configs[0].model_location"),
    (
        {"route_configs": [{**ROUTE, "request_prompt_location": None}]},
        "route_configs[0].request_prompt_location",
    ),
    (
        {"route_configs": [{**ROUTE, "response_completion_location": None}]},
        "route_configs[0].response_completion_location",
    ),
    ({"route_configs": [{**ROUTE, "stream_location": "stream"}]}, "route_configs[0].stream_end_word"),
    (
        {"route_configs": [{**ROUTE, "stream_location": "stream", "stream_end_word": "[DONE]"}]},
        "route_configs[0].stream_response_completion_location",
    ),
    (
        {"route_configs": [{**ROUTE, "stream_max_empty_messages": -1}]},
        "route_configs[0].stream_max_empty_messages",
    ),
    (
        {"route_configs": [{**ROUTE, "stream_max_empty_messages": "3"}]},
        "route_configs[0].stream_max_empty_messages",
    ),
    ({"route_configs": [{**ROUTE, "targetUrl": "x"}]}, "route_configs[0].targetUrl"),
    ({"authentication_param": "api key"}, "authentication_param"),
    ({"authentication_param": 1}, "authentication_param"),
    ({"id": "mine"}, "id"),
]


@pytest.mark.parametrize(
    ("change", "field"), BAD_PROVIDERS, ids=[f"{f}-{i}" for i, (_, f) in enumerate(BAD_PROVIDERS)]
)
async def test_create_custom_provider_rejects_each_bad_field(
    admin: Admin, change: dict[str, Any], field: str
) -> None:
    await admin.ok("POST", CUSTOM, {"provider": "taken", "route_configs": [ROUTE]})
    body = {k: v for k, v in {"provider": "new", "route_configs": [ROUTE], **change}.items() if v is not None}
    body["route_configs"] = [
        {k: v for k, v in rc.items() if v is not None} for rc in body.get("route_configs", [])
    ]
    if change.get("route_configs", 0) is None:
        del body["route_configs"]
    status, data = await admin.call("POST", CUSTOM, body)
    assert status == 400, data
    assert field in problem_fields(data)
    assert len(await admin.ok("GET", CUSTOM)) == 1


async def test_patch_custom_provider_merges_route_configs_by_path(admin: Admin) -> None:
    second = {**ROUTE, "path": "/embeddings", "target_url": "https://api.openai.com/v1/embeddings"}
    created = await admin.ok("POST", CUSTOM, {"provider": "bricks", "route_configs": [ROUTE, second]})
    path = f"{CUSTOM}/{created['id']}"
    admin.now[0] = T0 + 7
    patched = await admin.ok(
        "PATCH",
        path,
        {
            "route_configs": [
                {"path": "/chat/completions", "target_url": "https://other.example/v1/chat"},
                {**ROUTE, "path": "/responses", "target_url": "https://api.openai.com/v1/responses"},
            ],
            "authentication_param": "apikey",
        },
    )
    assert [rc["path"] for rc in patched["route_configs"]] == [
        "/chat/completions",
        "/embeddings",
        "/responses",
    ]
    assert patched["route_configs"][0]["target_url"] == "https://other.example/v1/chat"
    assert patched["route_configs"][0]["model_location"] == "model"  # untouched fields kept
    assert patched["route_configs"][1]["target_url"] == second["target_url"]
    assert patched["authentication_param"] == "apikey" and patched["provider"] == "bricks"
    assert patched["updated_at"] == T0 + 7 and patched["created_at"] == T0
    kept = await admin.ok(
        "PATCH", path, {"route_configs": [{"path": "/embeddings", "stream_max_empty_messages": 3}]}
    )
    assert kept["authentication_param"] == "apikey"
    assert kept["route_configs"][1]["stream_max_empty_messages"] == 3

    for change, field in [
        (
            {"route_configs": [{"path": "/new", "target_url": "https://x.example"}]},
            "route_configs[3].model_location",
        ),
        (
            {"route_configs": [{"path": "/chat/completions", "target_url": "nope"}]},
            "route_configs[0].target_url",
        ),
        (
            {"route_configs": [{"path": "/chat/completions", "stream_location": "s"}]},
            "route_configs[0].stream_end_word",
        ),
        ({"route_configs": [{"target_url": "https://x.example"}]}, "route_configs[0].path"),
        ({"authentication_param": "a b"}, "authentication_param"),
        ({"provider": "renamed"}, "provider"),
    ]:
        status, data = await admin.call("PATCH", path, change)
        assert status == 400 and field in problem_fields(data), (change, data)
    assert await admin.ok("GET", CUSTOM) == [kept]

    status, data = await admin.call("PATCH", f"{CUSTOM}/missing", {"authentication_param": "x"})
    assert status == 404 and data["type"] == "/errors/not-found"
