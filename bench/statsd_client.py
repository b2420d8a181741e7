"""Why the statsd sender is hand-written: `datadog`'s DogStatsd (buffered, flushed once per
batch as the gateway would per loop tick) against `telemetry.statsd.StatsdSink`, in µs per
metric line, with a listener and with nothing listening. A governed request sends ~8 lines and
costs ~170 µs of CPU in all (bench/baseline.json, embedded chat c=32), so the issue's 5 % budget
is ~1 µs a line.

    python bench/statsd_client.py            (needs `pip install -e '.[bench]'` for datadog)

Then what the gateway's metrics cost per finished request, as the proxy pays it: the observer
turning one `Outcome` into its figures, with statsd only, Prometheus only, and both.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable

from bricksllm.telemetry.hub import Telemetry
from bricksllm.telemetry.statsd import StatsdSink

N = 20_000  # simulated requests
LINES = 8  # lines a request (requests, latency, overhead, upstream, 2 x tokens, cost, batch)
TAGS = {"provider": "openai", "model": "gpt-4o", "route": "/api/providers/openai/v1/chat/completions"}


def per_line(send_request: Callable[[int], None], flush: Callable[[], None]) -> float:
    """Both clients flushed as often (every 4 requests, as if every loop tick under load)."""
    t = time.perf_counter()
    for i in range(N):
        send_request(i)
        if i % 4 == 3:  # ~4 requests end in one loop tick under load
            flush()
    flush()
    return (time.perf_counter() - t) / (N * LINES) * 1e6


def datadog(port: int) -> float:
    from datadog.dogstatsd.base import DogStatsd

    client = DogStatsd(
        host="127.0.0.1", port=port, disable_buffering=False, flush_interval=0, disable_telemetry=True
    )
    tags = [f"{k}:{v}" for k, v in TAGS.items()]

    def request(i: int) -> None:
        status = [*tags, "status:200"]
        client.increment("bricksllm.proxy.requests", 1, tags=status)
        client.timing("bricksllm.proxy.latency", 12.5, tags=status)
        client.timing("bricksllm.proxy.overhead", 0.4, tags=tags)
        client.timing("bricksllm.proxy.upstream_latency", 12.1, tags=status)
        client.increment("bricksllm.proxy.tokens", 11, tags=[*tags, "type:prompt"])
        client.increment("bricksllm.proxy.tokens", 7, tags=[*tags, "type:completion"])
        client.increment("bricksllm.proxy.cost_micros", 94, tags=tags)
        client.histogram("bricksllm.events.batch_size", 4)

    return per_line(request, client.flush)


def handwritten(port: int) -> float:
    """As the gateway does it: `Series` made once per tag set, values gathered per tick."""
    hub = Telemetry(StatsdSink(f"127.0.0.1:{port}", datadog=True), None)
    status = {**TAGS, "status": "200"}
    series = [
        (hub.series("proxy.requests", "counter", status), 1),
        (hub.series("proxy.latency", "timing", status), 12.5),
        (hub.series("proxy.overhead", "timing", TAGS), 0.4),
        (hub.series("proxy.upstream_latency", "timing", status), 12.1),
        (hub.series("proxy.tokens", "counter", {**TAGS, "type": "prompt"}), 11),
        (hub.series("proxy.tokens", "counter", {**TAGS, "type": "completion"}), 7),
        (hub.series("proxy.cost_micros", "counter", TAGS), 94),
        (hub.series("events.batch_size", "histogram", {}), 4),
    ]

    def request(i: int) -> None:
        for s, value in series:
            s.add(value)

    async def run() -> float:  # on a loop, as in the gateway: `add` schedules, `flush` sends
        return per_line(request, hub.flush)

    return asyncio.run(run())


def per_outcome(statsd: bool, prometheus: bool, port: int) -> float:
    from bricksllm.domain.models import Event
    from bricksllm.services.proxy_record import Outcome
    from bricksllm.telemetry.observer import MetricsObserver
    from bricksllm.telemetry.prometheus import PrometheusSink

    event = Event(
        id="x", created_at=0, key_id="k", tags=(), provider="openai", model="gpt-4o", status=200, path="/p",
        method="POST", cost_micros=94, prompt_token_count=11, completion_token_count=7, latency_in_ms=3,
        custom_id="", action="", pii_entities=(),
    )  # fmt: skip
    outcome = Outcome(event, True, "", "/api/providers/openai/v1/chat/completions", 2.5, None, 0.4)
    sink = StatsdSink(f"127.0.0.1:{port}", datadog=True) if statsd else None
    hub = Telemetry(sink, PrometheusSink() if prometheus else None)  # batches every 0.1 s
    observer = MetricsObserver(hub)

    async def run() -> float:
        best = float("inf")
        for _ in range(5):  # the quickest of 5 rounds: the machine's noise only adds time
            start = time.process_time()
            for i in range(N):
                observer.observe(outcome)
                if i % 4 == 3:
                    await asyncio.sleep(0)  # a loop tick now and then, as under load
            hub.flush()  # what is still pending is part of the cost
            best = min(best, (time.process_time() - start) / N * 1e6)
        return best

    return asyncio.run(run())


def main() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        port = rx.getsockname()[1]
        listening = {"datadog DogStatsd": datadog(port), "bricksllm": handwritten(port)}
    nobody = {"datadog DogStatsd": datadog(port), "bricksllm": handwritten(port)}  # port now closed
    print(f"{'client':<20} {'listener µs/line':>17} {'nobody µs/line':>15} {'% of a 170 µs request':>22}")
    for name in listening:
        share = listening[name] * LINES / 170 * 100
        print(f"{name:<20} {listening[name]:>17.2f} {nobody[name]:>15.2f} {share:>21.1f}%")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        port = rx.getsockname()[1]
        print(f"\n{'outlets on':<20} {'µs per request':>17} {'% of a 170 µs request':>22}")
        for name, on in (("statsd", (True, False)), ("Prometheus", (False, True)), ("both", (True, True))):
            cost = per_outcome(*on, port)
            print(f"{name:<20} {cost:>17.2f} {cost / 170 * 100:>21.1f}%")


if __name__ == "__main__":
    main()
