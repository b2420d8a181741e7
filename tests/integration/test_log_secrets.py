"""A whole `bricksllm serve` process, with everything it prints captured (DEBUG level): every line
is JSON when stderr is not a terminal, start-up and shutdown included, and nowhere is there a
key secret, a provider credential, the admin password or a prompt — unless LOG_BODIES is on,
and then only the prompt, in the request lines of a key that captures it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.mock_openai import MockOpenAI

ADMIN_PASS = "admin-pass-SECRET-1b7c"
CLIENT_SECRET = "bk-client-SECRET-9f2e"
WRONG_SECRET = "bk-wrong-SECRET-44aa"
UPSTREAM_KEY = "sk-upstream-SECRET-d00d"
ROTATED_KEY = "sk-rotated-SECRET-beef"
PROMPT = "PROMPT-TEXT the launch code is 7731"
SECRETS = (ADMIN_PASS, CLIENT_SECRET, WRONG_SECRET, UPSTREAM_KEY, ROTATED_KEY)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _flow(http: aiohttp.ClientSession, admin: str, proxy: str, upstream: str) -> None:
    """Keys, a setting with a credential, admin reads and writes, proxied calls and streams."""
    auth = {"X-API-KEY": ADMIN_PASS}

    async def call(method: str, path: str, body: Any = None) -> Any:
        async with http.request(method, admin + path, json=body, headers=auth) as r:
            assert r.status == 200, await r.text()
            return await r.json()

    credentials = {"apikey": UPSTREAM_KEY, "url": upstream}
    setting = await call("PUT", "/api/provider-settings", {"provider": "openai", "setting": credentials})
    key = await call(
        "PUT",
        "/api/key-management/keys",
        {"name": "k", "key": CLIENT_SECRET, "settingId": setting["id"], "shouldLogRequest": True,
         "shouldLogResponse": True},
    )  # fmt: skip
    await call("PATCH", f"/api/provider-settings/{setting['id']}", {"setting": {"apikey": ROTATED_KEY}})
    await call("GET", "/api/key-management/keys")
    await call("GET", "/api/provider-settings")
    async with http.get(admin + "/api/events", headers={"X-API-KEY": WRONG_SECRET}) as r:
        assert r.status == 401
    await asyncio.sleep(1.2)  # the proxy's configuration refresh (IN_MEMORY_DB_UPDATE_INTERVAL)
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT}]}
    base = proxy + "/api/providers/openai/v1/chat/completions"
    for headers, body in (
        ({"Authorization": f"Bearer {CLIENT_SECRET}"}, chat),
        ({"api-key": CLIENT_SECRET}, {**chat, "stream": True}),
        ({"x-api-key": CLIENT_SECRET, "x-mock": "echo"}, chat),  # the prompt comes back in the answer
    ):
        async with http.post(base, json=body, headers=headers) as r:
            assert r.status == 200, await r.text()
            await r.read()
    async with http.post(base, json=chat, headers={"Authorization": f"Bearer {WRONG_SECRET}"}) as r:
        assert r.status == 401
    await asyncio.sleep(0.5)  # events flushed
    events = await call("GET", f"/api/events?keyIds={key['keyId']}&includeBodies=true")
    assert len(events) == 3 and all(PROMPT in e["request_body"] for e in events)  # captured: stored


@pytest.mark.parametrize("log_bodies", [False, True])
async def test_nothing_secret_is_printed(tmp_path: Path, mock_openai: MockOpenAI, log_bodies: bool) -> None:
    admin_port, proxy_port = _free_port(), _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("LOG_", "POSTGRESQL_", "REDIS_"))},
        "ADMIN_PASS": ADMIN_PASS, "LOG_LEVEL": "DEBUG", "LOG_BODIES": str(log_bodies).lower(),
        "BRICKSLLM_DATA_DIR": str(tmp_path / "data"), "EVENT_FLUSH_INTERVAL": "50ms",
    }  # fmt: skip
    out_path, err_path = tmp_path / "stdout", tmp_path / "stderr"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bricksllm.cli", "serve", "--host", "127.0.0.1",
            "--admin-port", str(admin_port), "--proxy-port", str(proxy_port),
            env=env, stdout=out, stderr=err,
        )  # fmt: skip
    try:
        async with aiohttp.ClientSession() as http:
            admin, proxy = f"http://127.0.0.1:{admin_port}", f"http://127.0.0.1:{proxy_port}"
            for _ in range(200):
                assert process.returncode is None, err_path.read_text()
                try:
                    async with http.get(admin + "/api/health") as r1, http.get(proxy + "/api/health") as r2:
                        if r1.status == r2.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.05)
            await _flow(http, admin, proxy, mock_openai.url)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        if process.returncode is None:
            process.kill()
    printed = out_path.read_text() + err_path.read_text()
    for secret in SECRETS:
        assert secret not in printed, secret
    lines = [json.loads(line) for line in err_path.read_text().splitlines()]  # every line is JSON
    assert out_path.read_text() == ""
    messages = [line["message"] for line in lines]
    assert any(m.startswith("proxy on http://127.0.0.1:") for m in messages)
    assert "stopped cleanly: every event was written" in messages
    requests = [line for line in lines if line["logger"] == "bricksllm.requests"]
    assert [r["status"] for r in requests] == [200, 200, 200, 401]
    admin_lines = [line for line in lines if line["logger"] == "bricksllm.admin.access"]
    assert len(admin_lines) >= 8 and {"/api/provider-settings/{id}", "/api/events"} <= {
        a["route"] for a in admin_lines
    }
    if log_bodies:  # the captured bodies are in the lines of the key that captures them
        assert all(PROMPT in r["request_body"] for r in requests[:3])
        assert PROMPT in requests[2]["response_body"]  # the echoed answer
        assert "request_body" in requests[3] and requests[3]["request_body"] == ""  # no key: nothing
        outside = [line for line in lines if line["logger"] != "bricksllm.requests"]
        assert PROMPT not in json.dumps(outside)
    else:
        assert PROMPT not in printed
        assert all("request_body" not in r for r in requests)
