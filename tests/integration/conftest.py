"""Integration fixtures: the whole gateway built from Settings (as `bricksllm serve` does) on free
loopback ports, a mock OpenAI upstream, and helpers to configure keys through the admin API."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from bricksllm.app import Gateway
from bricksllm.ports import Metrics
from bricksllm.settings import Settings
from tests.integration.mock_anthropic import MockAnthropic
from tests.integration.mock_azure import MockAzure
from tests.integration.mock_base import start_mock
from tests.integration.mock_custom import MockCustom
from tests.integration.mock_openai import MockOpenAI
from tests.integration.mock_scripted import ScriptedOpenAI


@pytest.fixture
async def mock_openai() -> AsyncIterator[MockOpenAI]:
    mock = MockOpenAI()
    runner = await start_mock(mock)
    yield mock
    await runner.cleanup()


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedOpenAI]:
    """An OpenAI mock whose answers a test scripts call by call (routes: retries, failover)."""
    mock = ScriptedOpenAI()
    runner = await start_mock(mock)
    yield mock
    await runner.cleanup()


@pytest.fixture
async def mock_deepinfra() -> AsyncIterator[MockOpenAI]:
    """OpenAI's wire format mounted where DeepInfra serves it (`/v1/openai/...`)."""
    mock = MockOpenAI(base="/v1/openai")
    runner = await start_mock(mock)
    yield mock
    await runner.cleanup()


@pytest.fixture
async def mock_anthropic() -> AsyncIterator[MockAnthropic]:
    mock = MockAnthropic()
    runner = await start_mock(mock)
    yield mock
    await runner.cleanup()


@pytest.fixture
async def mock_azure() -> AsyncIterator[MockAzure]:
    mock = MockAzure()
    runner = await start_mock(mock)
    yield mock
    await runner.cleanup()


@pytest.fixture
async def mock_custom() -> AsyncIterator[MockCustom]:
    mock = MockCustom()
    runner = await start_mock(mock)
    yield mock
    await runner.cleanup()


@dataclass
class Running:
    gateway: Gateway
    http: aiohttp.ClientSession
    clients: list[Any] = field(default_factory=list)

    def openai(self, key: str = "my-secret-key", **kw: Any) -> openai.AsyncOpenAI:
        """An official OpenAI SDK client pointed at this gateway (closed with the gateway)."""
        client = openai.AsyncOpenAI(api_key=key, base_url=self.openai_base, max_retries=0, **kw)
        self.clients.append(client)
        return client

    async def close(self) -> None:
        for client in self.clients:
            await client.close()
        await self.http.close()
        await self.gateway.stop()

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway.admin_port}"

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway.proxy_port}"

    @property
    def openai_base(self) -> str:
        return f"{self.proxy_url}/api/providers/openai/v1"

    async def admin(self, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        async with self.http.request(method, self.admin_url + path, json=body, **kw) as resp:
            data = await resp.json(content_type=None) if resp.content_length != 0 else None
            return resp.status, data

    async def create_setting(self, upstream_url: str, **extra: Any) -> str:
        body = {
            "provider": "openai",
            "setting": {"apikey": "sk-upstream-secret", "url": upstream_url},
            **extra,
        }
        status, data = await self.admin("PUT", "/api/provider-settings", body)
        assert status == 200, data
        return str(data["id"])

    async def create_key(
        self, setting_id: str, secret: str = "my-secret-key", **extra: Any
    ) -> dict[str, Any]:
        body = {"name": "test key", "key": secret, "settingId": setting_id, "tags": ["t1"], **extra}
        status, data = await self.admin("PUT", "/api/key-management/keys", body)
        assert status == 200, data
        return dict(data)

    async def flush_events(self) -> None:
        while self.gateway.events.pending:
            assert await self.gateway.events.flush()


GatewayFactory = Callable[..., Any]

# BRICKSLLM_TEST_STACK=aiohttp runs the gateways of these tests on the aiohttp server and client
# instead of the fast ones (the test command runs the proxy tests once more that way).
STACK: dict[str, str] = (
    {"proxy_server": "aiohttp", "upstream_client": "aiohttp"}
    if os.environ.get("BRICKSLLM_TEST_STACK") == "aiohttp"
    else {}
)


@pytest.fixture
async def start_gateway(tmp_path: Path) -> AsyncIterator[GatewayFactory]:
    """Start gateways (several may share one data dir / database); all are stopped afterwards."""
    started: list[Running] = []

    async def start(
        settings: Settings | None = None,
        *,
        clock: Callable[[], float] | None = None,
        metrics: Metrics | None = None,
        **overrides: Any,
    ) -> Running:
        base = settings or Settings(data_dir=tmp_path / "data")
        s = base.with_overrides(
            host="127.0.0.1", admin_port=0, proxy_port=0, event_flush_interval=0.05, **STACK, **overrides
        )
        gw = Gateway(s, clock=clock or time.time, metrics=metrics)
        await gw.start()
        running = Running(gw, aiohttp.ClientSession())
        started.append(running)
        return running

    yield start
    for r in reversed(started):
        await r.close()  # closing twice is harmless


def mid_minute_clock() -> Callable[[], float]:
    """A running clock that starts 10 s into a UTC minute, so a test's requests share one window."""
    t0 = time.time()
    start = (int(t0) // 60 + 1) * 60 + 10
    return lambda: start + (time.time() - t0)


@pytest.fixture
async def gateway(start_gateway: GatewayFactory) -> Running:
    return await start_gateway(clock=mid_minute_clock())
