"""The storage and process rows of the failure table: a database that comes up late, a SQLite file
that is locked or whose disk is full, and what SIGTERM and SIGKILL do to calls and events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bricksllm.errors import Unavailable
from bricksllm.settings import PostgresSettings, Settings
from tests.integration.conftest import GatewayFactory, Running
from tests.integration.mock_openai import MockOpenAI
from tests.integration.tcp_forwarder import TcpForwarder
from tests.integration.test_reliability import _free_port

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}


async def test_postgres_that_comes_up_late_is_waited_for(
    start_gateway: GatewayFactory, pg_settings: PostgresSettings, caplog: pytest.LogCaptureFixture
) -> None:
    fwd = TcpForwarder(pg_settings.hosts[0], pg_settings.port)
    await fwd.start()
    await fwd.cut()  # the port is known, nothing answers yet
    settings = Settings(postgres=replace(pg_settings, port=fwd.port), startup_timeout=20)
    with caplog.at_level(logging.WARNING, logger="bricksllm"):
        starting = asyncio.create_task(start_gateway(settings))
        await asyncio.sleep(1.0)
        assert not starting.done()
        await fwd.restore()
        gw: Running = await asyncio.wait_for(starting, 20)
    assert (await gw.admin("GET", "/api/provider-settings"))[0] == 200
    waits = [r.getMessage() for r in caplog.records if "the database" in r.getMessage()]
    assert len(waits) == 2 and "not available yet" in waits[0] and "recovered" in waits[1]  # once each
    await fwd.cut()


async def test_postgres_that_never_comes_up_fails_the_start_clearly(
    start_gateway: GatewayFactory, pg_settings: PostgresSettings
) -> None:
    dead = replace(pg_settings, port=_free_port())
    with pytest.raises(Unavailable, match="STARTUP_TIMEOUT"):
        await start_gateway(Settings(postgres=dead, startup_timeout=0.5))


async def test_a_locked_sqlite_file_delays_events_and_loses_none(
    start_gateway: GatewayFactory, mock_openai: MockOpenAI, tmp_path: Path
) -> None:
    gw = await start_gateway()
    await gw.create_key(await gw.create_setting(mock_openai.url))
    blocker = sqlite3.connect(gw.gateway.settings.sqlite_path, timeout=1, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another process holding the write lock
    try:
        for _ in range(3):  # the proxy keeps serving from memory
            await gw.openai().chat.completions.create(**CHAT)  # type: ignore[call-overload]
        status, problem = await gw.admin(
            "PUT", "/api/provider-settings", {"provider": "openai", "setting": {"apikey": "k"}}
        )
        assert status == 503 and problem["type"] == "/errors/unavailable"
        assert gw.gateway.events.pending == 3
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    await gw.flush_events()
    _, events = await gw.admin("GET", "/api/events")
    assert len(events) == 3
    with sqlite3.connect(gw.gateway.settings.sqlite_path) as check:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)


async def test_a_full_disk_delays_events_and_corrupts_nothing(
    mock_openai: MockOpenAI, tmp_path: Path
) -> None:
    """The gateway runs with a file-size limit (RLIMIT_FSIZE): once the SQLite file or its WAL would
    grow past it, every write fails as on a full disk; the limit is lifted later (space freed)."""
    admin_port, proxy_port = _free_port(), _free_port()
    data = tmp_path / "data"

    def limited() -> None:  # in the child, before exec: writes beyond 256 KB fail (EFBIG, no signal)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, resource.RLIM_INFINITY))

    env = {**os.environ, "EVENT_FLUSH_INTERVAL": "50ms", "SHUTDOWN_GRACE": "2s"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bricksllm.cli", "serve", "--host", "127.0.0.1",
        "--admin-port", str(admin_port), "--proxy-port", str(proxy_port), "--data-dir", str(data),
        env=env, preexec_fn=limited, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    admin, proxy = f"http://127.0.0.1:{admin_port}", f"http://127.0.0.1:{proxy_port}"
    try:
        async with aiohttp.ClientSession() as http:
            await _healthy(http, admin)
            upstream = {"provider": "openai", "setting": {"apikey": "k", "url": mock_openai.url}}
            setting = await _post(http, admin + "/api/provider-settings", upstream)
            await _post(
                http,
                admin + "/api/key-management/keys",
                {"name": "k", "key": "sk-disk", "settingId": setting["id"]},
            )
            headers = {"Authorization": "Bearer sk-disk", "X-CUSTOM-EVENT-ID": "x" * 200}
            served = 0
            for _ in range(1500):  # enough events to fill 256 KB
                async with http.post(
                    proxy + "/api/providers/openai/v1/chat/completions", json=CHAT, headers=headers
                ) as r:
                    served += r.status == 200
            assert served == 1500  # calls keep being served while the disk is "full"
            named = {"provider": "openai", "name": "during-the-outage", "setting": {"apikey": "k"}}
            async with http.put(admin + "/api/provider-settings", json=named) as r:
                written = r.status  # 503, or 200 when SQLite could reuse free pages: never half-done
                assert written in (200, 503)
            resource.prlimit(
                process.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
            )
            for _ in range(100):  # space is back: every buffered event gets written
                async with http.get(admin + "/api/events?limit=1000&returnCount=true") as r:
                    if int(r.headers.get("X-Total-Count", "0")) >= 1500:
                        break
                await asyncio.sleep(0.1)
            else:
                pytest.fail("the buffered events were not written after the disk had space again")
            async with http.get(admin + "/api/provider-settings") as r:
                names = [s["name"] for s in await r.json()]
            assert ("during-the-outage" in names) is (written == 200)
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)
    finally:
        if process.returncode is None:
            process.kill()
    with sqlite3.connect(data / "bricksllm.sqlite3") as check:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert check.execute("SELECT count(*) FROM events").fetchone() == (1500,)


async def _healthy(http: aiohttp.ClientSession, base: str) -> None:
    for _ in range(200):
        with contextlib.suppress(aiohttp.ClientError):
            async with http.get(base + "/api/health") as resp:
                if resp.status == 200:
                    return
        await asyncio.sleep(0.05)
    pytest.fail(f"{base} did not become healthy")


async def _post(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> dict[str, Any]:
    async with http.put(url, json=body) as resp:
        assert resp.status == 200, await resp.text()
        return dict(await resp.json())


@contextlib.asynccontextmanager
async def serve(data: Path, mock_url: str, **env: str) -> AsyncIterator[tuple[Any, str, str]]:
    admin_port, proxy_port = _free_port(), _free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bricksllm.cli", "serve", "--host", "127.0.0.1",
        "--admin-port", str(admin_port), "--proxy-port", str(proxy_port), "--data-dir", str(data),
        env={**os.environ, **env}, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    admin, proxy = f"http://127.0.0.1:{admin_port}", f"http://127.0.0.1:{proxy_port}"
    try:
        async with aiohttp.ClientSession() as http:
            await _healthy(http, admin)
            upstream = {"provider": "openai", "setting": {"apikey": "k", "url": mock_url}}
            setting = await _post(http, admin + "/api/provider-settings", upstream)
            await _post(
                http,
                admin + "/api/key-management/keys",
                {"name": "k", "key": "sk-p", "settingId": setting["id"]},
            )
        yield process, admin, proxy
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_sigterm_lets_a_stream_in_flight_finish_and_exits_0(
    mock_openai: MockOpenAI, tmp_path: Path
) -> None:
    async with serve(tmp_path / "data", mock_openai.url, SHUTDOWN_GRACE="10s") as (process, _, proxy):
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                proxy + "/api/providers/openai/v1/chat/completions",
                json={**CHAT, "stream": True},
                headers={"Authorization": "Bearer sk-p", "x-mock": "slow-300"},  # ~1.5 s of stream
            ) as resp,
        ):
            first = await resp.content.readline()
            process.send_signal(signal.SIGTERM)  # mid-stream
            rest = await resp.read()
        assert first.startswith(b"data: ") and rest.rstrip().endswith(b"data: [DONE]")
        _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()[-1500:]
    assert b"stopped cleanly" in err


async def test_sigkill_loses_at_most_the_last_flush_interval(mock_openai: MockOpenAI, tmp_path: Path) -> None:
    """SIGKILL cannot be handled: what was queued but not yet written is lost, at most the calls of
    the last flush interval (200 ms by default) plus the batch being written; everything older
    (here: made more than 300 ms before the kill) is in the database."""
    data = tmp_path / "data"
    async with serve(data, mock_openai.url, EVENT_FLUSH_INTERVAL="200ms") as (process, _, proxy):
        sent = 0
        async with aiohttp.ClientSession() as http:
            loop = asyncio.get_running_loop()
            start = loop.time()
            last_second = 0
            while loop.time() - start < 2.0:
                async with http.post(proxy + "/api/providers/openai/v1/chat/completions", json=CHAT,
                                     headers={"Authorization": "Bearer sk-p"}) as resp:  # fmt: skip
                    assert resp.status == 200
                sent += 1
                if loop.time() - start >= 1.7 and not last_second:
                    last_second = sent  # calls made in the last 300 ms may be lost
        process.kill()
        await process.communicate()  # reads stderr (a line per request) to its end, or wait() never returns
    with sqlite3.connect(data / "bricksllm.sqlite3") as check:
        (recorded,) = check.execute("SELECT count(*) FROM events").fetchone()
    assert last_second <= recorded <= sent, (recorded, sent, last_second)


async def test_a_flood_of_idle_connections_never_takes_the_admin_port_down(
    mock_openai: MockOpenAI, tmp_path: Path
) -> None:
    """With 256 file descriptors, 300 idle connections on the proxy port: the excess is answered
    503 and closed, idle ones are closed after PROXY_HEADER_TIMEOUT, and the admin port answers
    (reads and writes) throughout."""

    def few_files() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    admin_port, proxy_port = _free_port(), _free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bricksllm.cli", "serve", "--host", "127.0.0.1",
        "--admin-port", str(admin_port), "--proxy-port", str(proxy_port),
        "--data-dir", str(tmp_path / "data"),
        env={**os.environ, "PROXY_HEADER_TIMEOUT": "1s"}, preexec_fn=few_files,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    admin = f"http://127.0.0.1:{admin_port}"
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        async with aiohttp.ClientSession() as http:
            await _healthy(http, admin)
            for _ in range(300):
                idle.append(await asyncio.open_connection("127.0.0.1", proxy_port))
            refused = 0
            for reader, _ in idle[100:]:  # beyond the cap of (256 - 64) / 2 = 96: a 503, then closed
                with contextlib.suppress(ConnectionError):
                    refused += (await asyncio.wait_for(reader.read(), 5)).startswith(b"HTTP/1.1 503")
            assert refused == 200
            async with http.get(admin + "/api/health") as resp:
                assert resp.status == 200
            await _post(
                http, admin + "/api/provider-settings", {"provider": "openai", "setting": {"apikey": "k"}}
            )
            closed = 0
            for reader, _ in idle[:96]:  # admitted but silent: closed by the header timeout
                with contextlib.suppress(ConnectionError):
                    closed += await asyncio.wait_for(reader.read(), 5) == b""
            assert closed == 96
            async with http.get(f"http://127.0.0.1:{proxy_port}/api/health") as resp:
                assert resp.status == 200  # and the proxy serves again
    finally:
        for _, writer in idle:
            writer.close()
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), 20)
        if process.returncode is None:
            process.kill()
