"""Regression tests for the reliability issue's defects 5, 7, 8 and 12: upstream answers cut
short, refused callers filling the database, outages flooding the logs, secrets in logs and
error messages, and a shutdown that reports lost events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from dataclasses import replace

import aiohttp
import openai
import pytest

from bricksllm.settings import PostgresSettings, RedisSettings, Settings
from bricksllm.telemetry.metrics import InMemoryMetrics
from tests.integration.conftest import GatewayFactory, Running
from tests.integration.mock_openai import MockOpenAI
from tests.integration.tcp_forwarder import TcpForwarder
from tests.integration.test_hostile_input import raw_request

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}


async def test_an_upstream_that_cuts_a_json_answer_short_is_a_502(
    gateway: Running, mock_openai: MockOpenAI
) -> None:
    await gateway.create_key(await gateway.create_setting(mock_openai.url))
    with pytest.raises(openai.InternalServerError) as caught:
        await gateway.openai().chat.completions.create(**CHAT, extra_headers={"x-mock": "truncated-json"})  # type: ignore[call-overload]
    assert caught.value.status_code == 502
    await gateway.flush_events()
    _, events = await gateway.admin("GET", "/api/events")
    assert [e["status"] for e in events] == [502] and events[0]["cost_in_usd"] == 0


async def test_refused_callers_cannot_fill_the_database(start_gateway: GatewayFactory) -> None:
    metrics = InMemoryMetrics()
    gw = await start_gateway(metrics=metrics)
    long = "/api/providers/openai/v1/" + "x" * 6000
    head = f"GET {long} HTTP/1.1\r\nHost: x\r\nX-CUSTOM-EVENT-ID: {'c' * 6000}\r\n".encode()
    assert (await raw_request(gw.gateway.proxy_port, head))[0] == 401
    for _ in range(400):  # a burst without a key: only a bounded number is recorded
        async with gw.http.get(gw.proxy_url + "/api/providers/openai/v1/models") as resp:
            assert resp.status == 401
    await gw.flush_events()
    _, events = await gw.admin("GET", "/api/events?limit=1000")
    assert 100 <= len(events) < 300
    assert metrics.counts["events.anonymous_not_recorded"] == 401 - len(events)
    stored = next(e for e in events if e["custom_id"])
    assert len(stored["path"]) == 1024 and len(stored["custom_id"]) == 256


async def test_a_database_outage_is_logged_once_not_per_retry(
    start_gateway: GatewayFactory, pg_settings: PostgresSettings, mock_openai: MockOpenAI,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    fwd = TcpForwarder(pg_settings.hosts[0], pg_settings.port)
    await fwd.start()
    gw = await start_gateway(Settings(postgres=replace(pg_settings, port=fwd.port)))
    await gw.create_key(await gw.create_setting(mock_openai.url))
    await fwd.cut()
    with caplog.at_level(logging.WARNING, logger="bricksllm"):
        for _ in range(5):
            await gw.openai().chat.completions.create(**CHAT)  # type: ignore[call-overload]
        await asyncio.sleep(2.5)  # retries of the writer, the refresher (1 s) and the listener (1 s)
        started = [r.getMessage() for r in caplog.records]
        # the writer, the refresher and the listener each say it once, without a traceback
        assert len(started) == 3 and not any(r.exc_info for r in caplog.records), started
        assert any(m.startswith("events cannot be written (") for m in started)
        await fwd.start()
        await gw.flush_events()
        await asyncio.sleep(1.5)
    ended = [r.getMessage() for r in caplog.records[3:]]
    assert any(m.startswith("events cannot be written no more: recovered after") for m in ended), ended
    await fwd.cut()


async def test_an_unreachable_counter_store_is_not_named_in_errors(
    start_gateway: GatewayFactory, redis_settings: RedisSettings, mock_openai: MockOpenAI
) -> None:
    fwd = TcpForwarder(redis_settings.hosts[0], redis_settings.port)
    await fwd.start()
    gw = await start_gateway(redis=replace(redis_settings, port=fwd.port))
    key = await gw.create_key(await gw.create_setting(mock_openai.url), costLimitInUsd=1)
    await fwd.cut()
    status, problem = await gw.admin("GET", f"/api/reporting/keys/{key['keyId']}")
    assert status == 503 and str(fwd.port) not in str(problem) and "127.0.0.1" not in str(problem)


async def test_an_oversized_header_is_never_echoed_nor_logged(
    gateway: Running, caplog: pytest.LogCaptureFixture
) -> None:
    secret_prefix = "sk-live-TOPSECRET"
    admin_head = f"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Big: {secret_prefix}{'a' * 9000}\r\n".encode()
    proxy_head = f"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Big: {secret_prefix}{'a' * 70_000}\r\n".encode()
    with caplog.at_level(logging.DEBUG):
        status, _ = await raw_request(gateway.gateway.admin_port, admin_head)  # aiohttp: 8 KB per line
        assert status == 400
        status, answer = await raw_request(gateway.gateway.proxy_port, proxy_head)  # 64 KB of headers
        assert status == 431 and secret_prefix.encode() not in answer
        assert b'"code":"request_headers_too_large"' in answer
        await asyncio.sleep(0.05)
    assert all(secret_prefix not in r.getMessage() and not r.exc_info for r in caplog.records)
    assert any("unparseable HTTP request" in r.getMessage() for r in caplog.records)


async def test_sigterm_exits_non_zero_and_says_how_many_events_were_lost(
    pg_settings: PostgresSettings,
) -> None:
    fwd = TcpForwarder(pg_settings.hosts[0], pg_settings.port)
    await fwd.start()
    env = {
        **os.environ, "POSTGRESQL_HOSTS": "127.0.0.1", "POSTGRESQL_PORT": str(fwd.port),
        "POSTGRESQL_DB_NAME": pg_settings.db_name, "POSTGRESQL_USERNAME": pg_settings.username,
        "POSTGRESQL_SCHEMA": pg_settings.schema, "SHUTDOWN_GRACE": "1s",
    }  # fmt: skip
    admin_port, proxy_port = _free_port(), _free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bricksllm.cli", "serve", "--host", "127.0.0.1",
        "--admin-port", str(admin_port), "--proxy-port", str(proxy_port),
        env=env, stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"http://127.0.0.1:{proxy_port}/api/health") as resp:
                        if resp.status == 200:
                            break
                await asyncio.sleep(0.05)
            await fwd.cut()  # the database goes away; refused calls are still recorded (buffered)
            for _ in range(3):
                async with http.get(f"http://127.0.0.1:{proxy_port}/api/providers/openai/v1/models") as resp:
                    assert resp.status == 401
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
    assert process.returncode == 1
    assert "3 events were lost" in err.decode()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
