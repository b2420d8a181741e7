"""The routes resource on the admin API: create, read, list, patch, delete, and every bad input
refused with a problem naming its field (nothing stored)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import Running

ROUTES = "/api/routes"


async def setup(gw: Running) -> tuple[str, str, str]:
    """(key id, openai setting id, azure setting id)"""
    openai_setting = await gw.create_setting("http://127.0.0.1:9")
    status, azure = await gw.admin(
        "PUT",
        "/api/provider-settings",
        {"provider": "azure", "setting": {"apikey": "a", "url": "http://127.0.0.1:9"}},
    )
    assert status == 200, azure
    key = await gw.create_key(openai_setting)
    return key["keyId"], openai_setting, azure["id"]


def route_body(key_id: str, azure_id: str, **changes: Any) -> dict[str, Any]:
    return {
        "name": "prod chat",
        "path": "/chat/prod",
        "keyIds": [key_id],
        "steps": [
            {"provider": "openai", "model": "gpt-4o-mini", "retries": 2, "retryInterval": "200ms",
             "timeout": "10s", "params": {"temperature": 0.1}},
            {"provider": "azure", "model": "prod-4o", "settingId": azure_id},
        ],
        "retryStrategy": "exponential",
        "cacheConfig": {"enabled": True, "ttl": "2h"},
        **changes,
    }  # fmt: skip


async def test_route_crud(gateway: Running) -> None:
    key_id, _, azure_id = await setup(gateway)
    status, created = await gateway.admin("POST", ROUTES, route_body(key_id, azure_id))
    assert status == 200, created
    assert created["path"] == "/chat/prod" and created["keyIds"] == [key_id]
    assert created["steps"][0] == {
        "provider": "openai", "model": "gpt-4o-mini", "settingId": "", "retries": 2, "retryInterval": "200ms",
        "timeout": "10s", "params": {"temperature": 0.1},
    }  # fmt: skip
    assert created["cacheConfig"] == {"enabled": True, "ttl": "2h"}
    rid = created["id"]
    assert (await gateway.admin("GET", f"{ROUTES}/{rid}")) == (200, created)
    assert (await gateway.admin("GET", ROUTES)) == (200, [created])
    status, patched = await gateway.admin(
        "PATCH", f"{ROUTES}/{rid}", {"name": "renamed", "cacheConfig": {"enabled": False}}
    )
    assert status == 200 and patched["name"] == "renamed" and patched["cacheConfig"]["enabled"] is False
    assert patched["steps"] == created["steps"] and patched["path"] == created["path"]
    assert (await gateway.admin("DELETE", f"{ROUTES}/{rid}"))[0] == 200
    for method in ("GET", "PATCH", "DELETE"):
        status, problem = await gateway.admin(
            method, f"{ROUTES}/{rid}", {"name": "x"} if method == "PATCH" else None
        )
        assert status == 404, (method, problem)


async def test_a_taken_path_is_a_conflict(gateway: Running) -> None:
    key_id, _, azure_id = await setup(gateway)
    assert (await gateway.admin("POST", ROUTES, route_body(key_id, azure_id)))[0] == 200
    status, problem = await gateway.admin("POST", ROUTES, route_body(key_id, azure_id, name="again"))
    assert status == 409 and problem["fields"] == ["path"]
    status, other = await gateway.admin("POST", ROUTES, route_body(key_id, azure_id, path="/other"))
    assert status == 200
    status, problem = await gateway.admin("PATCH", f"{ROUTES}/{other['id']}", {"path": "/chat/prod"})
    assert status == 409


BAD: list[tuple[dict[str, Any], str]] = [
    ({"steps": []}, "steps"),
    ({"keyIds": []}, "keyIds"),
    ({"keyIds": ["no-such-key"]}, "keyIds"),
    ({"path": "chat"}, "path"),
    ({"path": "/chat/../x"}, "path"),
    ({"path": "/chat/"}, "path"),
    ({"retryStrategy": "fibonacci"}, "retryStrategy"),
    ({"cacheConfig": {"enabled": True, "ttl": "soon"}}, "cacheConfig.ttl"),
    ({"cacheConfig": {"enabled": True, "ttl": "31d"}}, "cacheConfig.ttl"),
    ({"steps": [{"provider": "openai", "model": "m", "retryInterval": "often"}]}, "steps[0].retryInterval"),
    ({"steps": [{"provider": "openai", "model": "m", "timeout": "0s"}]}, "steps[0].timeout"),
    ({"steps": [{"provider": "openai", "model": "m", "retries": -1}]}, "steps[0].retries"),
    ({"steps": [{"provider": "openai", "model": "m", "settingId": "no-such"}]}, "steps[0].settingId"),
    ({"steps": [{"provider": "anthropic", "model": "claude-3-5-haiku-latest"}]}, "steps[0].provider"),
    ({"steps": [{"provider": "nope", "model": "m"}]}, "steps[0].provider"),
    ({"steps": [{"provider": "openai", "model": "m", "params": {"stream": True}}]}, "steps[0].params.stream"),
    ({"steps": [{"provider": "openai", "model": ""}]}, "steps[0].model"),
    ({"steps": [{"provider": "openai", "model": "m", "extra": 1}]}, "steps[0].extra"),
]


@pytest.mark.parametrize(("change", "field"), BAD)
async def test_bad_routes_are_refused_naming_the_field(
    gateway: Running, change: dict[str, Any], field: str
) -> None:
    key_id, _, azure_id = await setup(gateway)
    status, problem = await gateway.admin("POST", ROUTES, route_body(key_id, azure_id, **change))
    assert status == 400 and field in problem["fields"], problem
    assert (await gateway.admin("GET", ROUTES))[1] == []


async def test_a_setting_of_another_provider_is_refused_on_create_and_patch(gateway: Running) -> None:
    key_id, openai_id, azure_id = await setup(gateway)
    wrong = route_body(
        key_id, azure_id, steps=[{"provider": "azure", "model": "prod-4o", "settingId": openai_id}]
    )
    status, problem = await gateway.admin("POST", ROUTES, wrong)
    assert status == 400 and problem["fields"] == ["steps[0].settingId"] and "openai" in problem["detail"]
    status, created = await gateway.admin("POST", ROUTES, route_body(key_id, azure_id))
    assert status == 200
    status, problem = await gateway.admin("PATCH", f"{ROUTES}/{created['id']}", {"steps": wrong["steps"]})
    assert status == 400 and problem["fields"] == ["steps[0].settingId"]
    assert (await gateway.admin("GET", f"{ROUTES}/{created['id']}"))[1] == created


async def test_routes_are_in_the_openapi_document(gateway: Running) -> None:
    status, document = await gateway.admin("GET", "/openapi.json")
    assert status == 200
    assert {"get", "post"} <= set(document["paths"][ROUTES])
    assert {"get", "patch", "delete"} <= set(document["paths"][ROUTES + "/{id}"])
    assert "RouteCreate" in document["components"]["schemas"]


async def test_a_route_whose_key_was_deleted_can_still_be_edited(gateway: Running) -> None:
    key_id, openai_id, azure_id = await setup(gateway)
    other = await gateway.create_key(openai_id, secret="another-secret")
    status, created = await gateway.admin(
        "POST", ROUTES, route_body(key_id, azure_id, keyIds=[key_id, other["keyId"]])
    )
    assert status == 200
    assert (await gateway.admin("DELETE", f"/api/key-management/keys/{other['keyId']}"))[0] == 200
    status, patched = await gateway.admin("PATCH", f"{ROUTES}/{created['id']}", {"name": "renamed"})
    assert status == 200 and patched["name"] == "renamed"
    status, problem = await gateway.admin("PATCH", f"{ROUTES}/{created['id']}", {"keyIds": [other["keyId"]]})
    assert status == 400 and problem["fields"] == ["keyIds"]
