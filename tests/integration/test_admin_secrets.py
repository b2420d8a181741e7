"""No secret leaves the admin API: provider credentials and key secrets are absent from every
response body (successes and errors, every endpoint) and from every log record."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from tests.integration.admin_harness import CUSTOM, KEYS, SETTINGS, running_admin

OPENAI_KEY = "sk-LEAKCHECK-openai-1111"
ROTATED_KEY = "sk-LEAKCHECK-rotated-2222"
AZURE_KEY = "az-LEAKCHECK-azure-3333"
AWS_ID = "AKIA-LEAKCHECK-4444"
AWS_SECRET = "aws-LEAKCHECK-secret-5555"
CUSTOM_TOKEN = "tok-LEAKCHECK-custom-6666"
KEY_SECRET = "key-LEAKCHECK-client-7777"
OTHER_KEY_SECRET = "key-LEAKCHECK-client-8888"
SECRETS = [OPENAI_KEY, ROTATED_KEY, AZURE_KEY, AWS_ID, AWS_SECRET, CUSTOM_TOKEN, KEY_SECRET, OTHER_KEY_SECRET]

ROUTE = {
    "path": "/chat",
    "target_url": "https://llm.example/v1/chat",
    "model_location": "model",
    "request_prompt_location": "messages.#.content",
    "response_completion_location": "choices.#.text",
}


async def test_no_response_or_log_contains_a_secret(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # INFO is the default level; bricksllm's own loggers are checked at DEBUG too. (aiosqlite's
    # DEBUG records carry SQL parameters, so the driver loggers must never run at DEBUG.)
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="bricksllm")
    async with running_admin(tmp_path) as a:
        # settings: create (PUT and POST), failures that carry secrets, patch, list, get by id
        openai = await a.ok("PUT", SETTINGS, {"provider": "openai", "setting": {"apikey": OPENAI_KEY}})
        azure = await a.ok(
            "POST", SETTINGS, {"provider": "azure", "setting": {"apikey": AZURE_KEY, "resourceName": "res"}}
        )
        bedrock = await a.ok(
            "PUT",
            SETTINGS,
            {
                "provider": "bedrock",
                "setting": {
                    "awsAccessKeyId": AWS_ID,
                    "awsSecretAccessKey": AWS_SECRET,
                    "awsRegion": "eu-west-1",
                },
            },
        )
        await a.ok(
            "POST", CUSTOM, {"provider": "mine", "route_configs": [ROUTE], "authentication_param": "token"}
        )
        custom = await a.ok("PUT", SETTINGS, {"provider": "mine", "setting": {"token": CUSTOM_TOKEN}})
        for bad in (
            {"provider": "nope", "setting": {"apikey": OPENAI_KEY}},
            {"provider": "openai", "setting": {"apikey": OPENAI_KEY, "url": "gopher://x"}},
            {"provider": "openai", "setting": {"apikey": OPENAI_KEY}, "extra": AWS_SECRET},
            {"provider": "azure", "setting": {"apikey": AZURE_KEY}},
            {"provider": "mine", "setting": {"apikey": CUSTOM_TOKEN}},
        ):
            status, _ = await a.call("PUT", SETTINGS, bad)
            assert status == 400
        await a.ok("PATCH", f"{SETTINGS}/{openai['id']}", {"setting": {"apikey": ROTATED_KEY}})
        status, _ = await a.call(
            "PATCH", f"{SETTINGS}/{azure['id']}", {"setting": {"apikey": AZURE_KEY, "resourceName": ""}}
        )
        assert status == 400
        status, _ = await a.call("PATCH", f"{SETTINGS}/missing", {"setting": {"apikey": ROTATED_KEY}})
        assert status == 404
        await a.ok("GET", SETTINGS)
        ids = ",".join(s["id"] for s in (openai, azure, bedrock, custom))
        assert len(await a.ok("GET", f"{SETTINGS}?ids={ids}")) == 4

        # keys: create, duplicate, invalid, malformed, patch, list, spend, delete
        key = await a.ok(
            "PUT", KEYS, {"name": "k", "key": KEY_SECRET, "settingId": openai["id"], "tags": ["t"]}
        )
        await a.ok(
            "POST", KEYS, {"name": "k2", "key": OTHER_KEY_SECRET, "settingIds": [azure["id"], custom["id"]]}
        )
        for bad_key in (
            {"name": "dup", "key": KEY_SECRET, "settingId": openai["id"]},
            {"name": "", "key": KEY_SECRET, "settingId": openai["id"]},
            {"name": "x", "key": KEY_SECRET, "settingId": "missing"},
            {"name": "x", "key": KEY_SECRET, "settingId": openai["id"], "rateLimitUnit": "m"},
            {"name": "x", "key": [KEY_SECRET], "settingId": openai["id"]},
        ):
            status, _ = await a.call("PUT", KEYS, bad_key)
            assert status == 400
        status, _ = await a.call("PUT", KEYS, raw=f'{{"name": "x", "key": "{KEY_SECRET}",'.encode())
        assert status == 400
        status, _ = await a.call(
            "PUT", KEYS, raw=io.BytesIO(f'{{"key": "{KEY_SECRET}", "pad": "{"p" * 2**20}"}}'.encode())
        )
        assert status == 413
        path = f"{KEYS}/{key['keyId']}"
        await a.ok("PATCH", path, {"revoked": True, "revokedReason": "rotating"})
        status, _ = await a.call("PATCH", path, {"key": OTHER_KEY_SECRET})
        assert status == 400
        for query in ("", "?tag=t", f"?keyIds={key['keyId']}", "?provider=openai", "?provider=azure"):
            await a.ok("GET", KEYS + query)
        await a.ok("GET", f"/api/reporting/keys/{key['keyId']}")
        await a.ok("GET", "/api/events")
        await a.ok("POST", "/api/reporting/events", {"start": 0, "end": 60, "increment": 60})
        await a.ok("GET", CUSTOM)
        await a.ok("GET", "/openapi.json")
        await a.ok("GET", "/docs")
        await a.ok("DELETE", path)

        assert len(a.bodies) > 35
        for body in a.bodies:
            for secret in SECRETS:
                assert secret not in body
        stored = await a.stores.config.get_setting(openai["id"])
        assert stored is not None and stored.setting["apikey"] == ROTATED_KEY  # kept, just never shown
    for secret in SECRETS:
        assert secret not in caplog.text
