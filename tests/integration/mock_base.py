"""What every mock upstream shares: the record of requests it received, its loopback port, and
how it is started. Each mock (OpenAI, Anthropic, Azure, a custom provider) subclasses `MockServer`
with the routes and wire format of its provider."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    raw_path: str = ""  # path and query exactly as received

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class MockServer:
    requests: list[Recorded] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def last(self, path_suffix: str = "") -> Recorded:
        for r in reversed(self.requests):
            if r.path.endswith(path_suffix):
                return r
        raise AssertionError(f"no request to {path_suffix}")

    async def record(self, request: web.Request) -> bytes:
        """Keep the request as received (its body read whole) for the test's assertions."""
        body = await request.read()
        self.requests.append(
            Recorded(
                request.method,
                request.path,
                request.query_string,
                dict(request.headers),
                body,
                request.raw_path,
            )
        )
        return body

    def app(self) -> web.Application:
        raise NotImplementedError


async def start_mock(mock: MockServer) -> web.AppRunner:
    """Serve the mock on a free loopback port (`mock.port`); the caller cleans the runner up."""
    runner = web.AppRunner(mock.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    mock.port = runner.addresses[0][1]
    return runner
