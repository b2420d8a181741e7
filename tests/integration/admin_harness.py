"""The admin app alone, over real HTTP on loopback, on a real SQLite store in a temporary dir.

`running_admin` builds the stores with `open_stores`, the `AdminService` with in-memory counters
and a settable clock, and serves `create_admin_app` on a free port. Every response body the
tests receive is kept in `Admin.bodies`, so a test can assert that no secret ever left.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from aiohttp.test_utils import TestClient, TestServer

from bricksllm.http.admin_app import create_admin_app
from bricksllm.providers.registry import ProviderRegistry
from bricksllm.services.admin import AdminService
from bricksllm.settings import Settings
from bricksllm.storage.memory_counters import MemoryCounters
from bricksllm.storage.sql import SqlStores, open_stores

T0 = 1_700_000_000
KEYS = "/api/key-management/keys"
SETTINGS = "/api/provider-settings"
CUSTOM = "/api/custom/providers"


@dataclass
class Admin:
    client: TestClient[Any, Any]
    stores: SqlStores
    counters: MemoryCounters
    now: list[float]
    changes: list[int] = field(default_factory=list)
    bodies: list[str] = field(default_factory=list)
    password: str = ""

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | str | IO[bytes] | None = None,
        **kw: Any,
    ) -> tuple[int, Any]:
        """Send a request (JSON `body`, or `raw` bytes); return status and decoded JSON (or text)."""
        headers = dict(kw.pop("headers", {}))
        if self.password and "X-API-KEY" not in headers:
            headers["X-API-KEY"] = self.password
        data = raw if raw is not None else None
        if raw is not None:  # malformed JSON, still declared as JSON (anything else is a 415)
            headers.setdefault("Content-Type", "application/json")
        resp = await self.client.request(
            method, path, json=body if raw is None else None, data=data, headers=headers, **kw
        )
        text = await resp.text()
        self.bodies.append(text)
        if resp.content_type in {"application/json", "application/problem+json"}:
            return resp.status, json.loads(text)
        return resp.status, text

    async def ok(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        status, data = await self.call(method, path, body, **kw)
        assert status == 200, data
        return data

    async def setting(self, **body: Any) -> dict[str, Any]:
        body = {"provider": "openai", "setting": {"apikey": "sk-test"}, **body}
        return dict(await self.ok("PUT", SETTINGS, body))

    async def key(self, setting_id: str, secret: str = "secret-1", **body: Any) -> dict[str, Any]:
        body = {"name": "k", "key": secret, "settingId": setting_id, **body}
        return dict(await self.ok("PUT", KEYS, body))


@asynccontextmanager
async def running_admin(data_dir: Path, *, admin_pass: str = "") -> AsyncIterator[Admin]:
    stores = await open_stores(Settings(data_dir=data_dir))
    counters = MemoryCounters()
    now = [float(T0)]
    changes: list[int] = []

    async def on_change() -> None:
        changes.append(await stores.config.version())

    service = AdminService(
        stores.config, stores.events, counters, ProviderRegistry(), on_change=on_change, clock=lambda: now[0]
    )
    client: TestClient[Any, Any] = TestClient(TestServer(create_admin_app(service, admin_pass=admin_pass)))
    await client.start_server()
    try:
        yield Admin(client, stores, counters, now, changes, password=admin_pass)
    finally:
        await client.close()
        await stores.close()


def problem_fields(data: Any) -> list[str]:
    assert isinstance(data, dict) and data["type"].startswith("/errors/"), data
    return list(data.get("fields", []))
