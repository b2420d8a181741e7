"""A whole gateway and a mock OpenAI upstream served from a background thread, for tests that
drive it synchronously (a browser, schemathesis) instead of from the test's event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import openai

from bricksllm.app import Gateway
from bricksllm.settings import Settings
from tests.integration.mock_base import start_mock
from tests.integration.mock_openai import MockOpenAI

T = TypeVar("T")


class Served:
    """A gateway and a mock OpenAI upstream on a private event loop in a background thread."""

    def __init__(self, data_dir: Path, **overrides: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="gateway", daemon=True)
        self.settings = Settings(data_dir=data_dir).with_overrides(
            host="127.0.0.1", admin_port=0, proxy_port=0, event_flush_interval=0.05, **overrides
        )
        self.mock = MockOpenAI()
        self.gateway = Gateway(self.settings)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        self.thread.start()

        async def start() -> None:
            self._mock_runner = await start_mock(self.mock)
            await self.gateway.start()

        self.run(start())

    def stop(self) -> None:
        async def stop() -> None:
            await self.gateway.stop()
            await self._mock_runner.cleanup()

        try:
            self.run(stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.gateway.admin_port}"

    @property
    def ui(self) -> str:
        return f"{self.origin}/ui/"

    def openai(self, secret: str) -> openai.OpenAI:
        base = f"http://127.0.0.1:{self.gateway.proxy_port}/api/providers/openai/v1"
        return openai.OpenAI(api_key=secret, base_url=base, max_retries=0)

    def flush_events(self) -> None:
        async def flush() -> None:
            while self.gateway.events.pending:
                assert await self.gateway.events.flush()

        self.run(flush())
