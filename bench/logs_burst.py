"""A burst of request log lines into a slow log reader, with and without the queue.

    python bench/logs_burst.py [--lines 20000] [--reader-kbps 2000]

The log output is a pipe drained by a thread at `--reader-kbps` (a slow terminal, a log shipper
that falls behind). The event loop emits `--lines` request lines (the real `RequestLogger` and
JSON formatter) in batches of 100, yielding between batches, while a ticker measures how late
the loop wakes up. `direct` writes from the event loop (a plain StreamHandler); `queue` is the
gateway's set-up (`telemetry.logs.configure`: a deque and a writer thread writing batches). Prints, per mode,
the event loop's cost per line, the worst loop stall and the time until the reader had it all.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import os
import threading
import time

from bricksllm.domain.models import Event
from bricksllm.services.proxy_record import Outcome
from bricksllm.telemetry.logs import JsonFormatter, configure
from bricksllm.telemetry.request_log import RequestLogger

OUTCOME = Outcome(
    Event(
        id="e", created_at=0, key_id="6f1c2d7e-0b3a-4e59-9d1f-2a8b7c6d5e4f", provider="openai",
        model="gpt-4o-mini", status=200, path="/api/providers/openai/v1/chat/completions", method="POST",
        cost_micros=94, prompt_token_count=8, completion_token_count=7, latency_in_ms=12,
        correlation_id="3f6c0e9a5b1d4c7e8a2f9b0c1d2e3f4a",
    ),
    True, route="/api/providers/openai/v1/chat/completions", upstream_ms=10.5, overhead_ms=1.2,
)  # fmt: skip


def slow_pipe(kbps: int) -> tuple[io.TextIOWrapper, threading.Thread, list[int]]:
    read_fd, write_fd = os.pipe()
    received = [0, 0]  # bytes, lines

    def drain() -> None:
        with os.fdopen(read_fd, "rb") as pipe:
            while chunk := pipe.read1(4096) if hasattr(pipe, "read1") else pipe.read(4096):
                received[0] += len(chunk)
                received[1] += chunk.count(b"\n")
                time.sleep(len(chunk) / (kbps * 1024))

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    return io.TextIOWrapper(os.fdopen(write_fd, "wb"), line_buffering=True), reader, received


async def burst(lines: int) -> tuple[float, float]:
    """(event loop seconds spent emitting, worst loop stall in seconds)."""
    observer = RequestLogger()
    worst = [0.0]
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            worst[0] = max(worst[0], time.perf_counter() - before - 0.001)

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    spent = 0.0
    for _ in range(lines // 100):
        started = time.perf_counter()
        for _ in range(100):
            observer.observe(OUTCOME)
        spent += time.perf_counter() - started
        await asyncio.sleep(0)
    stop.set()
    await tick
    return spent, worst[0]


def run(mode: str, lines: int, kbps: int) -> None:
    stream, reader, received = slow_pipe(kbps)
    root = logging.getLogger()
    started = time.perf_counter()
    if mode == "queue":
        configured = configure("INFO", "json", stream)
        spent, worst = asyncio.run(burst(lines))
        configured.close(timeout=120)  # waits until the listener has written everything
    else:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        spent, worst = asyncio.run(burst(lines))
        root.removeHandler(handler)
    written = time.perf_counter() - started
    stream.close()
    reader.join()
    drained = time.perf_counter() - started
    print(
        f"{mode:6} {lines} lines ({received[1]} written, the rest dropped), "
        f"{received[0] / received[1]:.0f} B each: "
        f"event loop {spent / lines * 1e6:.1f} µs/line, "
        f"worst loop stall {worst * 1000:.1f} ms, handed over in {written:.2f} s, read in {drained:.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--reader-kbps", type=int, default=2000)
    args = parser.parse_args()
    for mode in ("direct", "queue"):
        run(mode, args.lines, args.reader_kbps)


if __name__ == "__main__":
    main()
