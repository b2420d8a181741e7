"""Microbenchmark of the proxy pipeline without HTTP: what the gateway's own work costs per call.

    .venv/bin/python bench/pipeline.py [--n 20000] [--observed]

`ProxyService.handle` runs whole (authenticate, resolve, read and parse the body, admit with
in-process counters, forward to an in-memory upstream, meter the answer, price, settle, queue
the event) for a governed key (rate and spend limits), non-streamed and streamed; the figure is
µs of CPU per call on one core, without the HTTP server and client that surround it in production.
`--observed` runs it twice, with metrics off and then on (statsd with DogStatsD tags to a UDP
socket of this process, and the Prometheus registry), and prints what the metrics cost.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import time
from collections.abc import AsyncIterator, Sequence

from multidict import CIMultiDict

from bricksllm.domain.models import Event, Key, ProviderSetting, hash_secret
from bricksllm.ports import ConfigSnapshot, Metrics, UpstreamRequest
from bricksllm.providers.registry import ProviderRegistry
from bricksllm.services.config_cache import ConfigIndex
from bricksllm.services.events import EventWriter
from bricksllm.services.exchange import Inbound
from bricksllm.services.limits import Limits
from bricksllm.services.proxy import ProxyService
from bricksllm.services.proxy_record import Observer
from bricksllm.services.spend_estimate import Estimator
from bricksllm.storage.memory_counters import MemoryCounters
from bricksllm.telemetry.hub import Telemetry
from bricksllm.telemetry.metrics import NullMetrics
from bricksllm.telemetry.observer import MetricsObserver
from bricksllm.telemetry.prometheus import PrometheusSink
from bricksllm.telemetry.statsd import StatsdSink
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


async def main(n: int, metrics: Metrics, observers: Sequence[Observer] = ()) -> list[float]:
    writer = EventWriter(_NoStore(), metrics, batch_size=10**9, max_buffer=10**9)  # type: ignore[arg-type]
    limits = Limits(MemoryCounters(), metrics, fail_open=False, clock=time.time, estimator=Estimator())
    upstream = FakeUpstream(_answer)
    service = ProxyService(
        _Config(), limits, writer, ProviderRegistry(), upstream, metrics, observers=observers
    )
    headers = CIMultiDict({"Authorization": "Bearer sk-bench", "Content-Type": "application/json"})
    results: list[float] = []
    for body in (CHAT, STREAM):
        start = time.process_time()
        for i in range(n):
            reply = await service.handle(Inbound("POST", PATH, "", headers, _Body(body)))
            if reply.stream is not None:
                async for _chunk in reply.stream:
                    pass
            upstream.requests.clear()
            if i % 16 == 0:
                await asyncio.sleep(0)  # a loop tick now and then: statsd flushes once a tick
        results.append((time.process_time() - start) / n * 1e6)
    assert reply.status == 200 and writer.pending == 2 * n, (reply.status, writer.pending)
    return results


async def observed(n: int, rounds: int = 5) -> None:
    """Off and on in turn, `rounds` times; the quickest run of each is kept (the machine's noise
    only ever adds time)."""
    offs, ons = [], []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        for _ in range(rounds):
            offs.append(await main(n, NullMetrics()))
            statsd = StatsdSink(f"127.0.0.1:{rx.getsockname()[1]}", datadog=True)
            telemetry = Telemetry(statsd, PrometheusSink())
            ons.append(await main(n, telemetry, [MetricsObserver(telemetry)]))
            telemetry.close()
    for i, name in enumerate(("chat", "stream")):
        a, b = min(r[i] for r in offs), min(r[i] for r in ons)
        print(f"{name}: off {a:.1f} µs/call, on {b:.1f} µs/call (+{b - a:.1f} µs, {b / a - 1:+.1%})")
    print(f"best of {rounds} rounds of {n} calls each; statsd datagrams sent in the last round {statsd.sent}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--observed", action="store_true", help="metrics off, then on: their cost")
    args = parser.parse_args()
    if args.observed:
        asyncio.run(observed(args.n // 4))
    else:
        chat, stream = asyncio.run(main(args.n, NullMetrics()))
        print(f"chat {chat:.1f} µs/call  stream {stream:.1f} µs/call")
