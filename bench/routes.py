"""Microbenchmark of a route call without HTTP: what serving through `/api/routes` costs on top
of the provider path, per call, in CPU on one core.

    .venv/bin/python bench/routes.py [--n 20000]

Same set-up as `bench/pipeline.py` (a governed key, in-process counters, an in-memory upstream
answering a chat completion or a stream), called at `/api/providers/openai/...` and through a
one-step route; then the route with its cache on (every call after the first is a hit), and a
two-step route whose first step answers 503 (one failover per call, the breaker off).
"""

from __future__ import annotations

import argparse
import asyncio
import time

from multidict import CIMultiDict
from pipeline import CHAT, PATH, STREAM, _answer, _Body, _Config, _NoStore

from bricksllm.domain.routes import Route, RouteStep
from bricksllm.ports import UpstreamRequest
from bricksllm.providers.registry import ProviderRegistry
from bricksllm.services.config_cache import ConfigIndex
from bricksllm.services.events import EventWriter
from bricksllm.services.exchange import Inbound, Reply
from bricksllm.services.limits import Limits
from bricksllm.services.proxy import ProxyService
from bricksllm.services.routes import ProxyFront, RouteService
from bricksllm.storage.memory_counters import MemoryCounters
from bricksllm.storage.memory_routes import MemoryBreaker, MemoryCache
from bricksllm.telemetry.metrics import NullMetrics
from bricksllm.upstream.fake import FakeResponse, FakeUpstream

STEP = RouteStep("openai", "gpt-4o-mini")
FAILING = RouteStep("openai", "gpt-4o-failing")


class _Routes(_Config):
    def __init__(self) -> None:
        super().__init__()
        snap = self.current
        routes = {
            "/plain": Route("r1", "plain", "/plain", 0, 0, ("k",), (STEP,)),
            "/cached": Route("r2", "cached", "/cached", 0, 0, ("k",), (STEP,), cache_enabled=True),
            "/failover": Route("r3", "failover", "/failover", 0, 0, ("k",), (FAILING, STEP)),
        }
        self.current = ConfigIndex(
            snap.version, snap.keys_by_hash, snap.keys_by_id, snap.settings, routes_by_path=routes
        )


def _upstream(request: UpstreamRequest) -> FakeResponse:
    if b"gpt-4o-failing" in request.body:  # type: ignore[operator]
        return FakeResponse(503, {"Content-Type": "application/json"}, [b'{"error":{"message":"down"}}'])
    return _answer(request)


async def _drain(reply: Reply) -> None:
    if reply.stream is not None:
        async for _chunk in reply.stream:
            pass


async def main(n: int) -> None:
    writer = EventWriter(_NoStore(), NullMetrics(), batch_size=10**9, max_buffer=10**9)  # type: ignore[arg-type]
    limits = Limits(MemoryCounters(), NullMetrics(), fail_open=False, clock=time.time)
    upstream = FakeUpstream(_upstream)
    config, registry = _Routes(), ProviderRegistry()
    proxy = ProxyService(config, limits, writer, registry, upstream, NullMetrics())
    routes = RouteService(
        proxy, config, limits, registry, upstream, MemoryBreaker(10**9, 1.0), MemoryCache(1000, 1 << 24),
        NullMetrics(),
    )  # fmt: skip
    front = ProxyFront(proxy, routes)
    headers = CIMultiDict({"Authorization": "Bearer sk-bench", "Content-Type": "application/json"})
    lanes = [
        ("provider path", PATH),
        ("route", "/api/routes/plain"),
        ("route, cache hit", "/api/routes/cached"),
        ("route, one failover", "/api/routes/failover"),
    ]
    for name, path in lanes:
        figures = []
        for kind, body in (("chat", CHAT), ("stream", STREAM)):
            await _drain(await front.handle(Inbound("POST", path, "", headers, _Body(body))))  # warm (cache)
            start = time.process_time()
            for _ in range(n):
                reply = await front.handle(Inbound("POST", path, "", headers, _Body(body)))
                await _drain(reply)
                assert reply.status == 200, (path, reply.status)
                upstream.requests.clear()
            figures.append(f"{kind} {(time.process_time() - start) / n * 1e6:.1f} µs/call")
        print(f"{name:22} " + "  ".join(figures))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    asyncio.run(main(parser.parse_args().n))
