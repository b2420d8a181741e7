"""Microbenchmark of the proxy pipeline without HTTP: what the gateway's own work costs per call.

    .venv/bin/python bench/pipeline.py [--n 20000]

`ProxyService.handle` runs whole (authenticate, resolve, read and parse the body, admit with
in-process counters, forward to an in-memory upstream, meter the answer, price, settle, queue
the event) for a governed key (rate and spend limits), non-streamed and streamed; the figure is
µs of CPU per call on one core, without the HTTP server and client that surround it in production.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator, Sequence

from multidict import CIMultiDict

from bricksllm.domain.models import Event, Key, ProviderSetting, hash_secret
from bricksllm.ports import ConfigSnapshot, UpstreamRequest
from bricksllm.providers.registry import ProviderRegistry
from bricksllm.services.config_cache import ConfigIndex
from bricksllm.services.events import EventWriter
from bricksllm.services.exchange import Inbound
from bricksllm.services.limits import Limits
from bricksllm.services.proxy import ProxyService
from bricksllm.services.spend_estimate import Estimator
from bricksllm.storage.memory_counters import MemoryCounters
from bricksllm.telemetry.metrics import NullMetrics
from bricksllm.upstream.fake import FakeResponse, FakeUpstream

CHAT = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
STREAM = b'{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}'
ANSWER = (
    b'{"id":"c","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":'
    b'{"role":"assistant","content":"hello"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}'
)
EVENTS = [
    b'data: {"id":"c","model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"hel"}}]}\n\n',
    b'data: {"id":"c","model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"lo"}}]}\n\n',
    b'data: {"id":"c","model":"gpt-4o-mini","choices":[],'
    b'"usage":{"prompt_tokens":10,"completion_tokens":5}}\n\n',
    b"data: [DONE]\n\n",
]
PATH = "/api/providers/openai/v1/chat/completions"


class _Config:
    """A fixed snapshot: one governed key (rate and spend limits) and its setting."""

    def __init__(self) -> None:
        key = Key(
            key_id="k", name="bench", key_hash=hash_secret("sk-bench"), created_at=0, updated_at=0,
            setting_id="s", rate_limit_over_time=10**9, rate_limit_unit="m", cost_limit_micros=10**12,
        )  # fmt: skip
        setting = ProviderSetting(
            id="s", provider="openai", created_at=0, updated_at=0, setting={"apikey": "x"}
        )
        self.current = ConfigIndex.build(ConfigSnapshot(1, [key], [setting], []))


class _NoStore:
    async def insert_events(self, events: Sequence[Event]) -> None:
        return None


class _Body:
    def __init__(self, body: bytes) -> None:
        self.content_length = len(body)
        self._body = body

    async def read(self, limit: int) -> bytes:
        return self._body

    async def chunks(self) -> AsyncIterator[bytes]:
        yield self._body


def _answer(request: UpstreamRequest) -> FakeResponse:
    if b'"stream":true' in request.body:  # type: ignore[operator]
        return FakeResponse(200, {"Content-Type": "text/event-stream"}, EVENTS)
    return FakeResponse(
        200, {"Content-Type": "application/json", "Content-Length": str(len(ANSWER))}, [ANSWER]
    )


async def main(n: int) -> None:
    writer = EventWriter(_NoStore(), NullMetrics(), batch_size=10**9, max_buffer=10**9)  # type: ignore[arg-type]
    estimator = Estimator()
    estimator.warm_up()  # as the gateway does at start-up
    limits = Limits(MemoryCounters(), NullMetrics(), fail_open=False, clock=time.time, estimator=estimator)
    upstream = FakeUpstream(_answer)
    service = ProxyService(_Config(), limits, writer, ProviderRegistry(), upstream, NullMetrics())
    headers = CIMultiDict({"Authorization": "Bearer sk-bench", "Content-Type": "application/json"})
    results = []
    for name, body in (("chat", CHAT), ("stream", STREAM)):
        start = time.process_time()
        for _ in range(n):
            reply = await service.handle(Inbound("POST", PATH, "", headers, _Body(body)))
            if reply.stream is not None:
                async for _chunk in reply.stream:
                    pass
            upstream.requests.clear()
        results.append(f"{name} {(time.process_time() - start) / n * 1e6:.1f} µs/call")
    assert reply.status == 200 and writer.pending == 2 * n, (reply.status, writer.pending)
    print("  ".join(results))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    asyncio.run(main(parser.parse_args().n))
