"""Load generators: wrk (preferred for plain POSTs) and a fast Python client (streams, fallback).

Both run as a child process, pinned to a core by the caller, bounded by a duration (and
optionally a request count), and come back as the same `LoadResult`.

The Python client is a raw asyncio Protocol with httptools (uvloop when installed), one
keep-alive connection per unit of concurrency, closed loop. It is the only one of the two that
sees a response's first body byte, so it measures time to first byte (TTFB) for SSE streams:
the time from writing the request to the first chunk of the response body. Run it directly:

    python bench/loadgen.py --url http://127.0.0.1:8002/api/providers/openai/v1/chat/completions \
        --auth "Bearer bench-key" --concurrency 32 --duration 5 --stream
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

BENCH_DIR = Path(__file__).resolve().parent
WRK_SCRIPT = BENCH_DIR / "wrk_post.lua"
CHAT_BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
STREAM_BODY = {**CHAT_BODY, "stream": True}


@dataclass
class LoadResult:
    tool: str
    concurrency: int
    duration_s: float
    requests: int  # responses received (any status)
    ok: int  # 2xx responses (streams: complete, ending in [DONE])
    errors: dict[str, int] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)  # p50, p90, p99, p99.9, mean, max
    ttfb_ms: dict[str, float] | None = None

    @property
    def rps(self) -> float:
        return self.ok / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["rps"] = round(self.rps, 1)
        return d


def percentiles(values: list[float]) -> dict[str, float]:
    """Nearest-rank percentiles in milliseconds of values given in seconds."""
    if not values:
        return {}
    v = sorted(values)
    n = len(v)

    def at(p: float) -> float:
        return round(v[min(n - 1, max(0, round(p / 100 * n + 0.5) - 1))] * 1000, 3)

    return {
        "p50": at(50),
        "p90": at(90),
        "p99": at(99),
        "p99.9": at(99.9),
        "mean": round(sum(v) / n * 1000, 3),
        "max": round(v[-1] * 1000, 3),
    }


def taskset_prefix(core: int | None) -> list[str]:
    if core is None or shutil.which("taskset") is None:
        return []
    return ["taskset", "-c", str(core)]


# --------------------------------------------------------------------------- wrk


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(
    url: str,
    *,
    concurrency: int,
    duration: float,
    auth: str = "",
    body: dict[str, Any] | None = None,
    core: int | None = None,
) -> LoadResult:
    """One wrk run (one thread, `concurrency` connections); killed if it overstays its bound."""
    env = {
        **os.environ,
        "BENCH_BODY": json.dumps(body or CHAT_BODY, separators=(",", ":")),
        "BENCH_AUTH": auth,
    }
    secs = max(1, round(duration))
    cmd = [
        *taskset_prefix(core),
        "wrk",
        "-t1",
        f"-c{concurrency}",
        f"-d{secs}s",
        "--timeout",
        "10s",
        "-s",
        str(WRK_SCRIPT),
        url,
    ]
    out = _run_bounded(cmd, env, secs + 15)
    line = next((ln for ln in out.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{out[-2000:]}")
    s = json.loads(line[len("BENCH_JSON ") :])
    e = s["errors"]
    lat = s["latency_us"]
    pct = lat["percentiles"]
    return LoadResult(
        tool="wrk",
        concurrency=concurrency,
        duration_s=s["duration_us"] / 1e6,
        requests=s["requests"],
        ok=max(0, s["requests"] - e["status"]),
        errors={k: v for k, v in e.items() if v},
        latency_ms={
            "p50": pct["50"] / 1000,
            "p90": pct["90"] / 1000,
            "p99": pct["99"] / 1000,
            "p99.9": pct["99.9"] / 1000,
            "mean": round(lat["mean"] / 1000, 3),
            "max": lat["max"] / 1000,
        },
    )


def _run_bounded(cmd: list[str], env: dict[str, str], timeout: float) -> str:
    """Run a child to completion; kill it (by its PID) if it runs past `timeout` seconds."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise RuntimeError(f"{cmd[0]} overran its {timeout:.0f} s bound and was killed") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{out[-2000:]}")
    return out


def run_python(
    url: str,
    *,
    concurrency: int,
    duration: float,
    auth: str = "",
    stream: bool = False,
    body: dict[str, Any] | None = None,
    max_requests: int = 0,
    core: int | None = None,
) -> LoadResult:
    """The Python client below, as a child process (so it can be pinned away from the gateway)."""
    payload = body or (STREAM_BODY if stream else CHAT_BODY)
    cmd = [
        *taskset_prefix(core),
        sys.executable,
        str(Path(__file__).resolve()),
        "--url",
        url,
        "--concurrency",
        str(concurrency),
        "--duration",
        str(duration),
        "--max-requests",
        str(max_requests),
        "--body",
        json.dumps(payload, separators=(",", ":")),
        "--auth",
        auth,
    ]
    if stream:
        cmd.append("--stream")
    out = _run_bounded(cmd, dict(os.environ), duration + 20)
    d = json.loads(out.strip().splitlines()[-1])
    d.pop("rps", None)
    return LoadResult(**d)


# --------------------------------------------------------------------------- the Python client


class _Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 client connection; one request in flight at a time."""

    def __init__(self, check_done: bool) -> None:
        import httptools

        self.parser = httptools.HttpResponseParser(self)
        self.check_done = check_done
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.first_body: float = 0.0
        self.done_at: float = 0.0
        self.tail = b""
        self.status = 0
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed"))

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except Exception as exc:  # a malformed response
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_exception(exc)
            if self.transport is not None:
                self.transport.close()

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        if not self.first_body:
            self.first_body = time.perf_counter()
        if self.check_done:
            self.tail = (self.tail + body)[-64:]

    def on_message_complete(self) -> None:
        self.done_at = time.perf_counter()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def send(self, request: bytes) -> asyncio.Future[None]:
        assert self.transport is not None
        self.first_body = 0.0
        self.tail = b""
        self.status = 0
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.waiter


async def _client(
    url: str, concurrency: int, duration: float, body: bytes, auth: str, stream: bool, max_requests: int
) -> LoadResult:
    u = urlsplit(url)
    host, port = u.hostname or "127.0.0.1", u.port or 80
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    head = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        "Accept: text/event-stream" if stream else "Accept: application/json",
        f"Content-Length: {len(body)}",
    ]
    if auth:
        head.append(f"Authorization: {auth}")
    request = ("\r\n".join(head) + "\r\n\r\n").encode() + body

    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    ttfbs: list[float] = []
    errors: dict[str, int] = {}
    counts: dict[str, Any] = {"requests": 0, "ok": 0, "last": 0.0}
    start = time.perf_counter()
    deadline = start + duration
    per_request_timeout = 10.0

    def err(kind: str) -> None:
        errors[kind] = errors.get(kind, 0) + 1

    async def worker() -> None:
        conn: _Conn | None = None
        while time.perf_counter() < deadline and not (max_requests and counts["requests"] >= max_requests):
            if conn is None or conn.closed:
                try:
                    _, proto = await loop.create_connection(lambda: _Conn(stream), host, port)
                    conn = proto
                except OSError:
                    err("connect")
                    await asyncio.sleep(0.05)
                    continue
            t0 = time.perf_counter()
            try:
                await asyncio.wait_for(conn.send(request), per_request_timeout)
            except TimeoutError:
                err("timeout")
                if conn.transport is not None:
                    conn.transport.close()
                conn = None
                continue
            except Exception:
                err("read")
                conn = None
                continue
            t1 = conn.done_at  # taken in the protocol callback: no event-loop scheduling delay
            counts["requests"] += 1
            counts["last"] = t1
            if not 200 <= conn.status < 300:
                err("status")
                continue
            if stream and b"[DONE]" not in conn.tail:
                err("incomplete_stream")
                continue
            counts["ok"] += 1
            latencies.append(t1 - t0)
            if conn.first_body:
                ttfbs.append(conn.first_body - t0)
        if conn is not None and conn.transport is not None:
            conn.transport.close()

    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    _, pending = await asyncio.wait(tasks, timeout=duration + per_request_timeout + 1)
    for t in pending:
        t.cancel()
    elapsed = (counts["last"] or time.perf_counter()) - start
    return LoadResult(
        tool="python",
        concurrency=concurrency,
        duration_s=round(elapsed, 4),
        requests=counts["requests"],
        ok=counts["ok"],
        errors=errors,
        latency_ms=percentiles(latencies),
        ttfb_ms=percentiles(ttfbs) if stream else None,
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True)
    p.add_argument("--concurrency", "-c", type=int, default=32)
    p.add_argument("--duration", "-d", type=float, default=5.0)
    p.add_argument("--max-requests", type=int, default=0, help="stop after this many responses (0: none)")
    p.add_argument("--stream", action="store_true", help="send stream:true and measure TTFB")
    p.add_argument("--body", default="", help="JSON body (default: a one-message chat completion)")
    p.add_argument("--auth", default="", help='Authorization header value, e.g. "Bearer bench-key"')
    a = p.parse_args(argv)
    body = a.body.encode() if a.body else json.dumps(STREAM_BODY if a.stream else CHAT_BODY).encode()
    duration = min(a.duration, 60.0)  # a hard bound whatever the caller asks
    coro = _client(a.url, a.concurrency, duration, body, a.auth, a.stream, a.max_requests)
    try:
        import uvloop

        result = uvloop.run(coro)
    except ImportError:
        result = asyncio.run(coro)
    print(json.dumps(result.to_json()))


if __name__ == "__main__":
    main()
