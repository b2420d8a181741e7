"""Which upstream HTTP client should the gateway use? Throughput of each, in one run, side by side.

    python bench/upstream_clients.py [--duration 4] [--rounds 3] [--clients fast,aiohttp,...]

Each client under test runs in its own process pinned to core 0 (threads included: the Rust
clients bring a runtime of their own) and drives 32 concurrent requests in a closed loop
against `mock_upstream.py` (pinned to core 1) for `--duration` seconds: non-stream chat
completions read whole ("json"), and SSE streams read chunk by chunk ("sse"). The figure is
completed responses per second; each round measures every client once per shape, in a rotated
order, and the ratio to the `fast` adapter is taken within the round (absolute numbers drift on
a shared machine, ratios measured together hold better). The table gives the median over rounds
and the spread (min-max) of the ratio, which says how noisy the run was.

Clients: the two adapters of the `Upstream` port (`fast`: asyncio Protocols + httptools + pools;
`aiohttp`), and the fast async clients on PyPI (`pyreqwest`, `rnet`, `aiosonic`, `curl_cffi`),
which live in `bench/.clients-venv` (created on first use with `pip install -e . <clients>`; kept
out of the project's dependencies). Every run stops by itself: a worker that overstays its bound
by 30 s is killed by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CLIENTS_VENV = BENCH / ".clients-venv"
CANDIDATES = ("pyreqwest", "rnet", "aiosonic", "curl_cffi")
PIP_NAMES = {"curl_cffi": "curl-cffi"}
ALL = ("fast", "aiohttp", *CANDIDATES)
CHAT = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
STREAM = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"stream":true}'
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench"}

Send = Callable[[bytes, bool], Awaitable[int]]  # (body, stream) -> bytes received


# --------------------------------------------------------------------------- the clients


async def _client(name: str, url: str, conns: int) -> tuple[Send, Callable[[], Awaitable[None]]]:
    if name in ("fast", "aiohttp"):
        from bricksllm.ports import UpstreamRequest

        if name == "fast":
            from bricksllm.upstream.fast import FastUpstream

            up: Any = FastUpstream(connections=conns)
        else:
            from bricksllm.upstream.aiohttp_client import AiohttpUpstream

            up = AiohttpUpstream(connections=conns)
        headers = tuple(HEADERS.items())

        async def send(body: bytes, stream: bool) -> int:
            r = await up.send(UpstreamRequest("POST", url, headers, body, 30.0))
            if r.status != 200:
                raise RuntimeError(r.status)
            if not stream:
                return len(await r.read(1 << 20))
            n = 0
            async for chunk in r.chunks():
                n += len(chunk)
            await r.aclose()
            return n

        return send, up.close
    if name == "pyreqwest":
        from pyreqwest.client import ClientBuilder

        pc = ClientBuilder().max_connections(conns).http1_only().build()

        async def send(body: bytes, stream: bool) -> int:
            rb = pc.post(url).headers(HEADERS).body_bytes(body)
            if not stream:
                r = await rb.build().send()
                return len(await r.bytes())
            n = 0
            async with rb.build_streamed() as r:
                while (chunk := await r.body_reader.read_chunk()) is not None:
                    n += len(chunk)
            return n

        return send, pc.close
    if name == "rnet":
        import rnet

        rc = rnet.Client()

        async def send(body: bytes, stream: bool) -> int:
            r = await rc.post(url, body=body, headers=HEADERS)
            if not stream:
                return len(await r.bytes())
            n = 0
            async with r.stream() as s:
                async for chunk in s:
                    n += len(chunk)
            return n

        async def close() -> None:
            return None

        return send, close
    if name == "aiosonic":
        import aiosonic
        from aiosonic.pools import PoolConfig

        pools = {":default": PoolConfig(size=conns, max_conn_requests=None)}
        connector = aiosonic.TCPConnector(pool_configs=pools)
        ac = aiosonic.HTTPClient(connector=connector)

        async def send(body: bytes, stream: bool) -> int:
            r = await ac.post(url, data=body, headers=HEADERS)
            if not stream:
                return len(await r.content())
            n = 0
            async for chunk in r.read_chunks():
                n += len(chunk)
            return n

        return send, ac.aclose
    if name == "curl_cffi":
        from curl_cffi.requests import AsyncSession

        cs = AsyncSession(max_clients=conns)

        async def send(body: bytes, stream: bool) -> int:
            if not stream:
                r = await cs.post(url, data=body, headers=HEADERS)
                return len(r.content)
            r = await cs.post(url, data=body, headers=HEADERS, stream=True)
            n = 0
            async for chunk in r.aiter_content():
                n += len(chunk)
            await r.aclose()
            return n

        return send, cs.close
    raise SystemExit(f"unknown client {name}")


async def _drive(name: str, url: str, shape: str, concurrency: int, duration: float) -> dict[str, Any]:
    send, close = await _client(name, url, concurrency)
    stream = shape == "sse"
    body = STREAM if stream else CHAT
    for _ in range(3):  # warm the pool and the code paths
        await asyncio.gather(*(send(body, stream) for _ in range(concurrency)))
    ok = errors = 0
    stop_at = time.perf_counter() + duration

    async def worker() -> None:
        nonlocal ok, errors
        while time.perf_counter() < stop_at:
            try:
                if await send(body, stream) > 0:
                    ok += 1
            except Exception:
                errors += 1

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    await close()
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return {"ok": ok, "errors": errors, "rps": ok / elapsed, "cpu_us": cpu / max(ok, 1) * 1e6}


def worker_main(args: argparse.Namespace) -> None:
    import uvloop

    result = uvloop.run(_drive(args.worker, args.url, args.shape, args.concurrency, args.duration))
    print(json.dumps(result))


# --------------------------------------------------------------------------- orchestration


def ensure_venv() -> Path:
    py = CLIENTS_VENV / "bin" / "python"
    if not py.exists():
        print(f"creating {CLIENTS_VENV} (once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(CLIENTS_VENV)], check=True)
        pkgs = [PIP_NAMES.get(c, c) for c in CANDIDATES]
        pip = [str(py), "-m", "pip", "install", "-q", "-e", str(REPO), *pkgs]
        subprocess.run(pip, check=True, timeout=900)
    return py


def run_worker(py: Path, name: str, url: str, shape: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [*_pin(0), str(py), __file__, "--worker", name, "--url", url, "--shape", shape]
    cmd += ["--concurrency", str(args.concurrency), "--duration", str(args.duration)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + 30)
    except subprocess.TimeoutExpired:
        return {"error": "timed out"}
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["?"])[-1][:200]}
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _pin(core: int) -> list[str]:
    return ["taskset", "-c", str(core)] if (os.cpu_count() or 1) >= 2 else []


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", default=",".join(ALL))
    p.add_argument("--duration", type=float, default=4.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--shape", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker_main(args)
        return 0
    if args.duration > 15:
        p.error("--duration is at most 15 s")
    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    cand_py = ensure_venv() if any(c in CANDIDATES for c in clients) else Path(sys.executable)
    sys.path.insert(0, str(BENCH))
    from procs import Children, free_port, wait_healthy

    work = Path(tempfile.mkdtemp(prefix="upstream-clients-"))
    children = Children(work)
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    try:
        port = free_port()
        mock = children.start(
            "mock", [sys.executable, str(BENCH / "mock_upstream.py"), "--port", str(port)], core=1
        )
        wait_healthy(mock, [f"http://127.0.0.1:{port}/health"], timeout=15)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        for rnd in range(args.rounds):
            order = clients[rnd % len(clients) :] + clients[: rnd % len(clients)]
            for shape in ("json", "sse"):
                for name in order:
                    py = cand_py if name in CANDIDATES else Path(sys.executable)
                    r = run_worker(py, name, url, shape, args)
                    r["round"] = rnd
                    results.setdefault((name, shape), []).append(r)
                    rps = f"{r['rps']:>9,.0f} req/s {r['cpu_us']:>6.0f} µs/req" if "rps" in r else r["error"]
                    print(f"round {rnd + 1} {shape:<4} {name:<10} {rps}", flush=True)
    finally:
        children.stop_all()
    print()
    print(table(results, clients, args))
    return 0


def table(
    results: dict[tuple[str, str], list[dict[str, Any]]], clients: list[str], args: argparse.Namespace
) -> str:
    lines = [
        f"c={args.concurrency}, {args.duration:g} s per measurement, {args.rounds} rounds; "
        "client on core 0, mock on core 1; median (ratio to `fast` in the same round: median, min-max)",
        "",
        "| client | json req/s | json vs fast | json µs/req | sse req/s | sse vs fast | sse µs/req |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for name in clients:
        cells = [name]
        for shape in ("json", "sse"):
            runs = results.get((name, shape), [])
            good = [r for r in runs if "rps" in r]
            if not good:
                cells += ["failed: " + (runs[0].get("error", "?") if runs else "not run"), "", ""]
                continue
            base = {r["round"]: r["rps"] for r in results.get(("fast", shape), []) if "rps" in r}
            ratios = [r["rps"] / base[r["round"]] for r in good if base.get(r["round"])]
            ratio = (
                f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})" if ratios else "-"
            )
            cells += [
                f"{statistics.median(r['rps'] for r in good):,.0f}",
                ratio,
                f"{statistics.median(r['cpu_us'] for r in good):.0f}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
