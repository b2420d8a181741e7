"""Microbenchmark of the proxy pipeline without HTTP: what the gateway's own work costs per
request (authenticate, admit with in-process counters, price, finish with the event queued).

    .venv/bin/python bench/pipeline.py [--n 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence

from bricksllm.domain.models import Event, Key, ProviderSetting, hash_secret
from bricksllm.domain.pricing import PriceTable
from bricksllm.ports import ConfigSnapshot
from bricksllm.providers.openai import OpenAIProvider
from bricksllm.services.config_cache import ConfigIndex
from bricksllm.services.events import EventWriter
from bricksllm.services.proxy import Call, ProxyService
from bricksllm.storage.memory_counters import MemoryCounters
from bricksllm.telemetry.metrics import NullMetrics

BODY = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
RESPONSE = {"model": "gpt-4o-mini", "usage": {"prompt_tokens": 10, "completion_tokens": 5}}
PATH = "/api/providers/openai/v1/chat/completions"


class _Config:
    """A fixed snapshot: one governed key (rate and spend limits) and its setting."""

    def __init__(self) -> None:
        key = Key(
            key_id="k",
            name="bench",
            key_hash=hash_secret("sk-bench"),
            created_at=0,
            updated_at=0,
            setting_id="s",
            rate_limit_over_time=10**9,
            rate_limit_unit="m",
            cost_limit_micros=10**12,
        )
        setting = ProviderSetting(
            id="s", provider="openai", created_at=0, updated_at=0, setting={"apikey": "x"}
        )
        self.current = ConfigIndex.build(ConfigSnapshot(1, [key], [setting], []))


class _NoStore:
    async def insert_events(self, events: Sequence[Event]) -> None:
        return None


async def main(n: int) -> None:
    writer = EventWriter(_NoStore(), NullMetrics(), batch_size=10**9, max_buffer=10**9)  # type: ignore[arg-type]
    service = ProxyService(_Config(), MemoryCounters(), writer, [OpenAIProvider()],  # type: ignore[arg-type]
                           PriceTable.load_default(), NullMetrics())  # fmt: skip
    headers = {"Authorization": "Bearer sk-bench"}
    timings: dict[str, float] = {}
    call = Call("POST", PATH, "")
    start = time.perf_counter()
    for _ in range(n):
        call = Call("POST", PATH, "")
        service.authenticate(call, headers)
    timings["authenticate"] = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(n):
        await service.admit(call, BODY, "application/json")
    timings["admit"] = time.perf_counter() - start
    assert call.op is not None
    usage = OpenAIProvider().usage(call.op, RESPONSE)
    start = time.perf_counter()
    for _ in range(n):
        micros = service.price(call, usage, RESPONSE)
    timings["price"] = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(n):
        await service.finish(call, 200, usage, micros)
    timings["finish"] = time.perf_counter() - start
    total = sum(timings.values())
    print(
        "  ".join(f"{k} {v / n * 1e6:.1f} µs" for k, v in timings.items())
        + f"  total {total / n * 1e6:.1f} µs"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    asyncio.run(main(parser.parse_args().n))
