"""How `bricksllm serve --workers N` scales on this machine: the same load against 1 and 2 workers.

    .venv/bin/python bench/workers.py [--duration 6] [--warmup 1] [--workers 1,2]

The gateway runs on PostgreSQL + Redis (a private schema and key prefix, removed afterwards:
`--workers` > 1 needs shared counters) with the benchmark's governed key (rate and spend limits,
every call counted, priced, reserved, settled and recorded). Nothing is pinned: the workers, the
mock upstream, the Python load generator, PostgreSQL and Redis share the machine's cores, as they
would on a small host, so the figure is what a second worker buys here, not the ceiling of two
free cores. For each worker count, after the workers all know the key: chat c=32 and stream c=32,
req/s, the CPU the gateway's processes (supervisor and workers) spent per request and in all, and
how busy the whole machine was (200 % on two cores: saturated).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lanes as L
import loadgen
import procstat
from procs import Children, free_port, request_json

SCENARIOS = (("chat c=32", False), ("stream c=32", True))


def _every_worker_serves(target: L.Target, probes: int = 40, timeout: float = 30) -> None:
    """New connections are spread over the workers by the kernel: wait for `probes` successes in a
    row, so that every worker has seen the key (config changes reach them within a second)."""
    deadline, row = time.monotonic() + timeout, 0
    while row < probes:
        if time.monotonic() > deadline:
            raise RuntimeError("not every worker serves the bench key")
        status, _ = request_json(
            "POST", target.chat_url, L.CHAT_BODY, {"Authorization": target.auth}, timeout=5
        )
        row = row + 1 if status == 200 else 0
        if status != 200:
            time.sleep(0.1)


def measure(target: L.Target, stream: bool, args: argparse.Namespace) -> dict[str, Any]:
    url, auth = target.chat_url, target.auth
    loadgen.run_python(url, concurrency=32, duration=args.warmup, auth=auth, stream=stream)
    cpu0, busy0 = procstat.cpu_seconds(target.process.pid) or 0.0, procstat.machine_busy_seconds()
    res = loadgen.run_python(url, concurrency=32, duration=args.duration, auth=auth, stream=stream)
    cpu, busy1 = (procstat.cpu_seconds(target.process.pid) or 0.0) - cpu0, procstat.machine_busy_seconds()
    seconds = res.duration_s or args.duration
    return {
        "rps": round(res.rps),
        "errors": res.error_count,
        "p50_ms": round(res.to_json()["latency_ms"]["p50"], 2),
        "cpu_us_per_req": round(cpu / res.ok * 1e6) if res.ok else None,
        "gateway_cpu_percent": round(cpu / seconds * 100),
        "machine_busy_percent": round((busy1[0] - busy0[0]) / seconds * 100) if busy0 and busy1 else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--workers", default="1,2")
    args = parser.parse_args()
    if (why := L.production_unreachable()) is not None:
        print(f"skipped: {why}")
        return 1
    work = Path(tempfile.mkdtemp(prefix="bricksllm-workers-"))
    children = Children(work)
    results: dict[int, dict[str, dict[str, Any]]] = {}
    try:
        port = free_port()
        L.start_mock(children, "mock", port, core=None)
        upstreams = L.Upstreams(fast=f"http://127.0.0.1:{port}", slow=None)
        for n in (int(x) for x in args.workers.split(",")):
            with L.production_backends() as env:
                target = L.start_gateway(
                    children, f"workers-{n}", L.gateway_bin(None), upstreams, work / f"data-{n}", None,
                    extra_env=env, extra_args=("--workers", str(n)),
                )  # fmt: skip
                _every_worker_serves(target)
                results[n] = {name: measure(target, stream, args) for name, stream in SCENARIOS}
                children.stop(target.process)
            for name, row in results[n].items():
                print(f"workers={n} {name:<12} {row['rps']:>7,} req/s  p50 {row['p50_ms']:.2f} ms  "
                      f"gateway cpu {row['cpu_us_per_req']} µs/req ({row['gateway_cpu_percent']} % of a core)"
                      f"  machine busy {row['machine_busy_percent']} % ({os.cpu_count()} cores)"
                      f"  errors {row['errors']}",
                      flush=True)  # fmt: skip
    finally:
        children.stop_all()
    if 1 in results and 2 in results:
        for name, _ in SCENARIOS:
            print(f"scaling {name}: {results[2][name]['rps'] / results[1][name]['rps']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
