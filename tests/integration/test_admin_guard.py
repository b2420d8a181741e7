"""The admin API refuses what a web page in the operator's browser could send it: form or
text/plain writes, other origins, and hostile Host names (DNS rebinding). Issue 11 item 10."""

from __future__ import annotations

import pytest

from bricksllm.settings import Settings
from tests.integration.conftest import GatewayFactory, Running

SETTING = '{"provider": "openai", "setting": {"apikey": "k"}}'


async def put(gw: Running, body: str, **headers: str) -> tuple[int, dict[str, object]]:
    async with gw.http.put(gw.admin_url + "/api/provider-settings", data=body, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


async def settings_count(gw: Running) -> int:
    return len((await gw.admin("GET", "/api/provider-settings"))[1])


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
async def test_writes_that_are_not_json_are_refused(gateway: Running, content_type: str) -> None:
    status, problem = await put(gateway, SETTING, **{"Content-Type": content_type})
    assert status == 415 and problem["type"] == "/errors/unsupported-media-type"
    assert await settings_count(gateway) == 0


async def test_other_origins_are_refused_and_the_same_origin_is_served(gateway: Running) -> None:
    json_type = {"Content-Type": "application/json"}
    status, problem = await put(gateway, SETTING, Origin="https://evil.example", **json_type)
    assert status == 403 and "cross-origin" in str(problem["detail"])
    status, _ = await put(gateway, SETTING, Origin="null", **json_type)
    assert status == 403
    assert await settings_count(gateway) == 0
    status, _ = await put(gateway, SETTING, Origin=gateway.admin_url, **json_type)
    assert status == 200


async def test_a_hostile_host_name_is_refused_on_loopback(gateway: Running) -> None:
    port = gateway.gateway.admin_port
    async with gateway.http.get(
        gateway.admin_url + "/api/key-management/keys", headers={"Host": f"rebind.evil.example:{port}"}
    ) as resp:
        assert resp.status == 403
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
        async with gateway.http.get(
            gateway.admin_url + "/api/key-management/keys", headers={"Host": host}
        ) as r:
            assert r.status == 200, host
    async with gateway.http.get(gateway.admin_url + "/api/health", headers={"Host": "anything"}) as resp:
        assert resp.status == 200  # load balancers probe with any name


async def test_allow_lists_extend_what_is_accepted(start_gateway: GatewayFactory, tmp_path: object) -> None:
    gw = await start_gateway(
        admin_allowed_hosts=("admin.internal",), admin_allowed_origins=("https://ops.example",)
    )
    status, _ = await put(
        gw,
        SETTING,
        Origin="https://ops.example",
        Host="admin.internal",
        **{"Content-Type": "application/json"},
    )
    assert status == 200


async def test_with_a_password_any_host_is_served(start_gateway: GatewayFactory) -> None:
    gw = await start_gateway(Settings(admin_pass="pw"))
    async with gw.http.get(
        gw.admin_url + "/api/key-management/keys", headers={"Host": "gateway.example", "X-API-KEY": "pw"}
    ) as resp:
        assert resp.status == 200


async def test_credentials_in_a_setting_url_are_refused(gateway: Running) -> None:
    body = {"provider": "openai", "setting": {"apikey": "k", "url": "https://user:PASSWORD@api.example"}}
    status, problem = await gateway.admin("PUT", "/api/provider-settings", body)
    assert status == 400 and problem["fields"] == ["setting.url"] and "PASSWORD" not in str(problem)
