"""Admin API over HTTP: keys (create, validate, list with filters, patch, delete)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.admin_harness import KEYS, T0, Admin, problem_fields, running_admin
from tests.unit.test_admin_schemas import KEY_FIELDS


@pytest.fixture
async def admin(tmp_path: Path) -> AsyncIterator[Admin]:
    async with running_admin(tmp_path) as a:
        yield a


@pytest.fixture
async def setting_id(admin: Admin) -> str:
    return str((await admin.setting())["id"])


@pytest.mark.parametrize("method", ["PUT", "POST"])
async def test_create_key_returns_the_configuration_but_never_the_secret(
    admin: Admin, setting_id: str, method: str
) -> None:
    body = {
        "name": "spike's developer key",
        "key": "abcdef12345",
        "tags": ["org-tag-12345"],
        "settingId": setting_id,
        "costLimitInUsd": 5.5,
        "costLimitInUsdOverTime": 2,
        "costLimitInUsdUnit": "d",
        "rateLimitOverTime": 2,
        "rateLimitUnit": "m",
        "ttl": "2d",
        "allowedPaths": [{"path": "/api/providers/openai/v1/chat/completions", "method": "post"}],
    }
    created = await admin.ok(method, KEYS, body)
    assert set(created) == KEY_FIELDS
    assert uuid.UUID(created["keyId"]).version == 4
    assert created["createdAt"] == created["updatedAt"] == T0
    assert created["costLimitInUsd"] == 5.5 and created["costLimitInUsdOverTime"] == 2.0
    assert created["allowedPaths"] == [
        {"path": "/api/providers/openai/v1/chat/completions", "method": "POST"}
    ]
    assert created["ttl"] == "2d" and created["revoked"] is False and created["settingIds"] == []
    stored = await admin.stores.config.get_key(created["keyId"])
    assert stored is not None
    assert stored.key_hash == hashlib.sha256(b"abcdef12345").hexdigest()
    assert stored.ttl_seconds == 2 * 86400
    assert stored.cost_limit_micros == 5_500_000 and stored.cost_limit_over_time_micros == 2_000_000
    assert "abcdef12345" not in admin.bodies[-1]
    assert admin.changes  # the proxy snapshot was told


async def test_create_key_accepts_both_setting_fields_nulls_and_every_unit(
    admin: Admin, setting_id: str
) -> None:
    other = (await admin.setting(provider="anthropic"))["id"]
    created = await admin.key(setting_id, settingIds=[other], revokedReason=None, ttl="1h30m")
    assert created["settingId"] == setting_id and created["settingIds"] == [other]
    stored = await admin.stores.config.get_key(created["keyId"])
    assert stored is not None and stored.ttl_seconds == 5400
    only_ids = await admin.key("", secret="s-ids", settingId=None, settingIds=[setting_id])
    assert only_ids["settingId"] == "" and only_ids["settingIds"] == [setting_id]
    for i, unit in enumerate(["m", "h", "d", "mo"]):
        await admin.key(setting_id, secret=f"c{i}", costLimitInUsdOverTime=1, costLimitInUsdUnit=unit)
    for i, unit in enumerate(["s", "m", "h", "d"]):
        await admin.key(setting_id, secret=f"r{i}", rateLimitOverTime=1, rateLimitUnit=unit)
    no_limits = await admin.key(
        setting_id, secret="zero", costLimitInUsd=0, rateLimitOverTime=0, rateLimitUnit=""
    )
    assert no_limits["rateLimitOverTime"] == 0 and no_limits["rateLimitUnit"] == ""


BAD_KEYS: list[tuple[dict[str, Any], str]] = [
    ({"name": None}, "name"),
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": 5}, "name"),
    ({"key": None}, "key"),
    ({"key": ""}, "key"),
    ({"key": 12345}, "key"),
    ({"tags": [""]}, "tags[0]"),
    ({"tags": ["ok", " "]}, "tags[1]"),
    ({"tags": "t"}, "tags"),
    ({"settingId": None}, "settingId"),
    ({"settingId": ""}, "settingId"),
    ({"settingId": "no-such-setting"}, "settingId"),
    ({"settingIds": ["no-such-setting"]}, "settingIds"),
    ({"settingIds": [""]}, "settingIds[0]"),
    ({"costLimitInUsd": -1}, "costLimitInUsd"),
    ({"costLimitInUsd": "1"}, "costLimitInUsd"),
    ({"costLimitInUsd": 1e12}, "costLimitInUsd"),
    ({"costLimitInUsdOverTime": -0.5, "costLimitInUsdUnit": "d"}, "costLimitInUsdOverTime"),
    ({"costLimitInUsdUnit": "s", "costLimitInUsdOverTime": 1}, "costLimitInUsdUnit"),
    ({"costLimitInUsdUnit": "d"}, "costLimitInUsdOverTime"),
    ({"costLimitInUsdUnit": "d", "costLimitInUsdOverTime": 0}, "costLimitInUsdOverTime"),
    ({"costLimitInUsdOverTime": 2}, "costLimitInUsdUnit"),
    ({"rateLimitOverTime": -1, "rateLimitUnit": "m"}, "rateLimitOverTime"),
    ({"rateLimitOverTime": 1.5, "rateLimitUnit": "m"}, "rateLimitOverTime"),
    ({"rateLimitOverTime": "2", "rateLimitUnit": "m"}, "rateLimitOverTime"),
    ({"rateLimitOverTime": True, "rateLimitUnit": "m"}, "rateLimitOverTime"),
    ({"rateLimitOverTime": 2, "rateLimitUnit": "mo"}, "rateLimitUnit"),
    ({"rateLimitUnit": "m"}, "rateLimitOverTime"),
    ({"rateLimitOverTime": 2}, "rateLimitUnit"),
    ({"ttl": "2x"}, "ttl"),
    ({"ttl": "0s"}, "ttl"),
    ({"ttl": "-1h"}, "ttl"),
    ({"ttl": 5}, "ttl"),
    ({"allowedPaths": [{"path": "", "method": "POST"}]}, "allowedPaths[0].path"),
    ({"allowedPaths": [{"path": "api/x", "method": "POST"}]}, "allowedPaths[0].path"),
    ({"allowedPaths": [{"path": "/x", "method": ""}]}, "allowedPaths[0].method"),
    ({"allowedPaths": [{"path": "/x"}]}, "allowedPaths[0].method"),
    ({"allowedPaths": [{"path": "/x", "method": "GET", "extra": 1}]}, "allowedPaths[0].extra"),
    ({"allowedPaths": {"path": "/x"}}, "allowedPaths"),
    ({"revoked": "yes"}, "revoked"),
    ({"unknownField": 1}, "unknownField"),
    ({"keyId": "mine"}, "keyId"),
]


@pytest.mark.parametrize(("change", "field"), BAD_KEYS, ids=[f"{f}-{i}" for i, (_, f) in enumerate(BAD_KEYS)])
async def test_create_key_rejects_each_bad_field_by_name(
    admin: Admin, setting_id: str, change: dict[str, Any], field: str
) -> None:
    body = {"name": "k", "key": "the-secret", "settingId": setting_id, **change}
    body = {k: v for k, v in body.items() if v is not None}
    status, data = await admin.call("PUT", KEYS, body)
    assert status == 400, data
    assert data["type"] == "/errors/validation" and data["status"] == 400 and data["instance"] == KEYS
    assert field in problem_fields(data)
    assert field.split("[")[0].split(".")[0] in data["detail"]
    assert await admin.stores.config.list_keys() == []
    assert len(admin.changes) == 1  # only the setting was written


async def test_duplicate_secret_is_a_400_naming_key_without_echoing_it(admin: Admin, setting_id: str) -> None:
    await admin.key(setting_id, secret="dup-secret-value")
    status, data = await admin.call(
        "PUT", KEYS, {"name": "b", "key": "dup-secret-value", "settingId": setting_id}
    )
    assert status == 400 and problem_fields(data) == ["key"]
    assert "dup-secret-value" not in str(data)
    assert len(await admin.stores.config.list_keys()) == 1


async def test_list_keys_filters(admin: Admin, setting_id: str) -> None:
    anthropic = (await admin.setting(provider="anthropic"))["id"]
    a = await admin.key(setting_id, secret="a", tags=["team-a", "prod"])
    b = await admin.key(setting_id, secret="b", tags=["team-a"])
    c = await admin.key(anthropic, secret="c", tags=["prod"])
    d = await admin.key(setting_id, secret="d", settingIds=[anthropic])

    async def ids(query: str) -> list[str]:
        return sorted(k["keyId"] for k in await admin.ok("GET", KEYS + query))

    every = sorted(k["keyId"] for k in (a, b, c, d))
    assert await ids("") == every
    assert await ids("?tag=team-a") == sorted([a["keyId"], b["keyId"]])
    assert await ids("?tags=team-a&tags=prod") == [a["keyId"]]
    assert await ids("?tags=team-a,prod") == [a["keyId"]]
    assert await ids("?tag=prod&tags=team-a") == [a["keyId"]]
    assert await ids(f"?keyIds={a['keyId']}&keyIds={c['keyId']}") == sorted([a["keyId"], c["keyId"]])
    assert await ids(f"?keyIds={b['keyId']},{d['keyId']}") == sorted([b["keyId"], d["keyId"]])
    assert await ids("?provider=anthropic") == sorted([c["keyId"], d["keyId"]])
    assert await ids("?provider=openai&tag=prod") == [a["keyId"]]
    assert await ids("?provider=azure") == []
    assert await ids("?tag=nobody") == []
    assert await ids("?keyIds=unknown") == []
    listed = await admin.ok("GET", KEYS + "?tag=team-a")
    assert all("key" not in k for k in listed)


async def test_patch_key_merges_and_validates_the_result(admin: Admin, setting_id: str) -> None:
    created = await admin.key(
        setting_id, tags=["x"], rateLimitOverTime=2, rateLimitUnit="m", costLimitInUsd=0.25
    )
    path = f"{KEYS}/{created['keyId']}"
    admin.now[0] = T0 + 60
    patched = await admin.ok("PATCH", path, {"name": "renamed", "tags": ["y", "z"], "rateLimitOverTime": 5})
    assert patched["name"] == "renamed" and patched["tags"] == ["y", "z"]
    assert patched["rateLimitOverTime"] == 5 and patched["rateLimitUnit"] == "m"  # unit kept from the store
    assert patched["costLimitInUsd"] == 0.25
    assert patched["createdAt"] == T0 and patched["updatedAt"] == T0 + 60

    relimited = await admin.ok(
        "PATCH",
        path,
        {
            "rateLimitOverTime": 100,
            "rateLimitUnit": "h",
            "costLimitInUsdOverTime": 1.5,
            "costLimitInUsdUnit": "mo",
        },
    )
    assert (relimited["rateLimitOverTime"], relimited["rateLimitUnit"]) == (100, "h")
    assert (relimited["costLimitInUsdOverTime"], relimited["costLimitInUsdUnit"]) == (1.5, "mo")
    stored = await admin.stores.config.get_key(created["keyId"])
    assert stored is not None and stored.cost_limit_over_time_micros == 1_500_000

    cleared = await admin.ok(
        "PATCH",
        path,
        {"rateLimitOverTime": 0, "rateLimitUnit": "", "costLimitInUsdOverTime": 0, "costLimitInUsdUnit": ""},
    )
    assert cleared["rateLimitUnit"] == "" and cleared["costLimitInUsdUnit"] == ""

    paths = await admin.ok(
        "PATCH", path, {"allowedPaths": [{"path": "/api/x", "method": "get"}], "ttl": "15m"}
    )
    assert paths["allowedPaths"] == [{"path": "/api/x", "method": "GET"}] and paths["ttl"] == "15m"
    stored = await admin.stores.config.get_key(created["keyId"])
    assert stored is not None and stored.ttl_seconds == 900
    emptied = await admin.ok("PATCH", path, {"allowedPaths": [], "ttl": ""})
    assert emptied["allowedPaths"] == [] and emptied["ttl"] == ""

    other = (await admin.setting(provider="anthropic"))["id"]
    moved = await admin.ok("PATCH", path, {"settingId": other, "settingIds": [setting_id]})
    assert moved["settingId"] == other and moved["settingIds"] == [setting_id]
    assert await admin.ok("PATCH", path, {}) == {**moved, "updatedAt": T0 + 60}


BAD_PATCHES: list[tuple[dict[str, Any], str]] = [
    ({"rateLimitOverTime": 0}, "rateLimitOverTime"),  # the stored unit "m" would be left without an amount
    ({"rateLimitUnit": ""}, "rateLimitUnit"),  # the stored amount 2 would be left without a unit
    ({"rateLimitUnit": "w"}, "rateLimitUnit"),
    ({"costLimitInUsdUnit": "d"}, "costLimitInUsdOverTime"),
    ({"costLimitInUsdOverTime": 3}, "costLimitInUsdUnit"),
    ({"costLimitInUsd": -2}, "costLimitInUsd"),
    ({"name": ""}, "name"),
    ({"tags": [""]}, "tags[0]"),
    ({"settingId": "missing"}, "settingId"),
    ({"settingIds": ["missing"]}, "settingIds"),
    ({"settingId": "", "settingIds": []}, "settingId"),
    ({"ttl": "forever"}, "ttl"),
    ({"allowedPaths": [{"path": "x", "method": "GET"}]}, "allowedPaths[0].path"),
    ({"revoked": 1}, "revoked"),
    ({"key": "new-secret"}, "key"),
    ({"keyId": "other"}, "keyId"),
]


@pytest.mark.parametrize(("change", "field"), BAD_PATCHES, ids=[f for _, f in BAD_PATCHES])
async def test_patch_key_rejects_bad_merged_values(
    admin: Admin, setting_id: str, change: dict[str, Any], field: str
) -> None:
    created = await admin.key(setting_id, rateLimitOverTime=2, rateLimitUnit="m")
    status, data = await admin.call("PATCH", f"{KEYS}/{created['keyId']}", change)
    assert status == 400, data
    assert field in problem_fields(data)
    assert await admin.ok("GET", KEYS) == [created]  # nothing changed


async def test_revoke_and_unrevoke(admin: Admin, setting_id: str) -> None:
    created = await admin.key(setting_id)
    path = f"{KEYS}/{created['keyId']}"
    revoked = await admin.ok("PATCH", path, {"revoked": True, "revokedReason": "leaked"})
    assert revoked["revoked"] is True and revoked["revokedReason"] == "leaked"
    stored = await admin.stores.config.get_key(created["keyId"])
    assert stored is not None and stored.revoked
    still = await admin.ok("PATCH", path, {"name": "other"})
    assert still["revoked"] is True and still["revokedReason"] == "leaked"
    restored = await admin.ok("PATCH", path, {"revoked": False})
    assert restored["revoked"] is False and restored["revokedReason"] == ""


async def test_patch_and_delete_unknown_key_are_404(admin: Admin) -> None:
    for method, body in (("PATCH", {"name": "x"}), ("DELETE", None)):
        status, data = await admin.call(method, f"{KEYS}/does-not-exist", body)
        assert status == 404 and data["type"] == "/errors/not-found"
        assert data["instance"] == f"{KEYS}/does-not-exist"
    assert admin.changes == []


async def test_delete_key(admin: Admin, setting_id: str) -> None:
    created = await admin.key(setting_id)
    writes = len(admin.changes)
    assert await admin.ok("DELETE", f"{KEYS}/{created['keyId']}") == {}
    assert len(admin.changes) == writes + 1
    assert await admin.ok("GET", KEYS) == []
    status, _ = await admin.call("DELETE", f"{KEYS}/{created['keyId']}")
    assert status == 404
    # the secret can be reused once its key is gone
    await admin.key(setting_id)
