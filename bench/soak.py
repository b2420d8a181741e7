"""Soak: a long run of the full governed path, watching the gateway's resources and its records.

    python bench/soak.py [--backend embedded|pg] [--requests 100000] [--minutes 20]
                         [--sample-every 10] [--json-concurrency 24] [--stream-concurrency 8]
                         [--stream-share 0.25] [--idle-after 35] [--out bench/results]

Starts the mock upstream and `bricksllm serve` (the embedded SQLite default, or PostgreSQL +
Redis in a private schema and key prefix with `--backend pg`), configured like the benchmark's
governed key (rate limit, total and daily spend limits: every call is rate-counted, priced,
spend-checked and recorded). Then drives it with two load generators at once, non-stream chat
completions and `"stream": true` ones, in segments of `--sample-every` seconds until
`--requests` responses or `--minutes`, whichever comes first. The gateway's resident memory,
open file descriptors and threads are sampled before the load, in the middle of every segment
(under load), after it, and `--idle-after` seconds later (idle keep-alive connections expired).
(Its asyncio task count is not exposed by the gateway, so it is not reported.) At the end the
events stored, read from the admin API (`GET /api/events` with `returnCount=true`, header
`X-Total-Count`), must equal the responses the clients received; how many were still to be
written when the load stopped, and how long that took, says whether the writer keeps up.

Prints a table, writes `<out>/soak-<backend>-<stamp>.json`. Exit status 0 when every call was
answered, with no error, and every one has its event; 1 otherwise. Every child process is
stopped by PID on the way out (bench/procs.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lanes as L
import loadgen
import procstat
from procs import Children, free_port

REPO = Path(__file__).resolve().parent.parent
EVENTS_SETTLE_S = 60.0  # longest wait, after the load, for the last events to be written


def open_fds(root: int) -> int | None:
    """File descriptors open in the process tree (sockets, database files, pipes)."""
    total, seen = 0, False
    for pid in procstat.tree_pids(root):
        with contextlib.suppress(OSError):
            total += len(os.listdir(f"/proc/{pid}/fd"))
            seen = True
    return total if seen else None


def threads(root: int) -> int | None:
    total, seen = 0, False
    for pid in procstat.tree_pids(root):
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("Threads:"):
                    total += int(line.split()[1])
                    seen = True
    return total if seen else None


def sample(pid: int, t: float, requests: int, phase: str) -> dict[str, Any]:
    return {
        "phase": phase,
        "t_s": round(t, 1),
        "requests": requests,
        "rss_mb": procstat.memory(pid).rss_mb,
        "fds": open_fds(pid),
        "threads": threads(pid),
        "asyncio_tasks": None,  # not exposed by the gateway
    }


def event_count(admin_url: str) -> int:
    req = urllib.request.Request(f"{admin_url}/api/events?limit=1&returnCount=true")
    with urllib.request.urlopen(req, timeout=30) as resp:
        total = resp.headers.get("X-Total-Count")
    if total is None:
        raise RuntimeError("GET /api/events?returnCount=true answered without X-Total-Count")
    return int(total)


def settled_count(admin_url: str) -> int:
    """The event count once the writer has flushed what was pending (two equal reads 1 s apart)."""
    last = event_count(admin_url)
    for _ in range(30):
        time.sleep(1.0)
        now = event_count(admin_url)
        if now == last:
            return now
        last = now
    return last


def wait_events(admin_url: str, expected: int) -> int:
    """The event count once it reaches `expected`, or once it has stopped growing for a while."""
    deadline = time.monotonic() + EVENTS_SETTLE_S
    last, last_change = event_count(admin_url), time.monotonic()
    while last < expected and time.monotonic() < deadline and time.monotonic() - last_change < 15:
        time.sleep(0.5)
        now = event_count(admin_url)
        if now != last:
            last, last_change = now, time.monotonic()
    return last


@contextlib.contextmanager
def backend_env(backend: str) -> Iterator[dict[str, str]]:
    if backend == "embedded":
        yield {}
        return
    missing = L.production_unreachable()
    if missing:
        raise SystemExit(f"--backend pg: {missing}")
    with L.production_backends() as env:
        yield env


def soak(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    children = Children(work)
    try:
        with backend_env(args.backend) as env:
            mock_port = free_port()
            L.start_mock(children, "mock", mock_port, core=None)
            upstreams = L.Upstreams(fast=f"http://127.0.0.1:{mock_port}", slow=None)
            binary = L.gateway_bin(args.gateway_bin)
            target = L.start_gateway(
                children, args.backend, binary, upstreams, work / "data", core=None, extra_env=env
            )
            assert target.admin_url is not None
            return drive(args, target)
    finally:
        children.stop_all()


def drive(args: argparse.Namespace, target: L.Target) -> dict[str, Any]:
    pid = target.process.pid
    baseline_events = settled_count(target.admin_url or "")  # the set-up's own calls
    samples = [sample(pid, 0.0, 0, "start")]
    totals: dict[str, dict[str, Any]] = {
        kind: {"requests": 0, "ok": 0, "errors": {}, "segments": 0} for kind in ("json", "stream")
    }
    started = time.monotonic()
    bound = args.minutes * 60

    def run(kind: str, seconds: float, budget: int) -> loadgen.LoadResult:
        return loadgen.run_python(
            target.chat_url,
            concurrency=args.stream_concurrency if kind == "stream" else args.json_concurrency,
            duration=seconds,
            auth=target.auth,
            stream=kind == "stream",
            max_requests=budget,
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        while True:
            done = sum(t["requests"] for t in totals.values())
            remaining, elapsed = args.requests - done, time.monotonic() - started
            if remaining <= 0 or elapsed >= bound:
                break
            seconds = max(1.0, min(args.sample_every, bound - elapsed))
            budgets = {
                "stream": max(1, math.ceil(remaining * args.stream_share)),
                "json": max(1, math.ceil(remaining * (1 - args.stream_share))),
            }
            futures = {kind: pool.submit(run, kind, seconds, budgets[kind]) for kind in budgets}
            time.sleep(seconds / 2)
            samples.append(sample(pid, time.monotonic() - started, done, "load"))
            for kind, future in futures.items():
                result = future.result()
                t = totals[kind]
                t["requests"] += result.requests
                t["ok"] += result.ok
                t["segments"] += 1
                for name, n in result.errors.items():
                    t["errors"][name] = t["errors"].get(name, 0) + n
            if target.process.proc.poll() is not None:
                raise RuntimeError(f"the gateway exited:\n{target.process.log_tail()}")
            done = sum(t["requests"] for t in totals.values())
            print(f"  {time.monotonic() - started:6.0f} s  {done:>8,} responses", flush=True)
    load_s = time.monotonic() - started
    responses = sum(t["requests"] for t in totals.values())
    # how far the event writer is behind when the load stops (it should keep up, not catch up)
    behind = baseline_events + responses - event_count(target.admin_url or "")
    caught_up = time.monotonic()
    events = wait_events(target.admin_url or "", baseline_events + responses) - baseline_events
    caught_up_s = time.monotonic() - caught_up
    samples.append(sample(pid, time.monotonic() - started, responses, "end"))
    if args.idle_after > 0:  # idle pooled connections expire: what stays open is a leak
        time.sleep(args.idle_after)
        samples.append(sample(pid, time.monotonic() - started, responses, "idle"))
    errors = {f"{k}:{n}": c for k, t in totals.items() for n, c in t["errors"].items()}
    return {
        "meta": {
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "backend": args.backend,
            "requests_bound": args.requests,
            "minutes_bound": args.minutes,
            "concurrency": {"json": args.json_concurrency, "stream": args.stream_concurrency},
            "stream_share": args.stream_share,
            "machine": f"{os.cpu_count()} cores, shared",
        },
        "load_s": round(load_s, 1),
        "responses": responses,
        "ok": sum(t["ok"] for t in totals.values()),
        "rps": round(responses / load_s, 1) if load_s else 0.0,
        "by_kind": totals,
        "errors": errors,
        "events_stored": events,
        "events_match": events == responses,
        "events_behind_at_end": behind,
        "events_caught_up_s": round(caught_up_s, 1),
        "gateway_log_errors": target.process.log_errors(),
        "gateway_pid": pid,
        "samples": samples,
    }


def table(r: dict[str, Any]) -> str:
    lines = [
        f"soak on {r['meta']['backend']}: {r['responses']:,} responses in {r['load_s']} s "
        f"({r['rps']:,} req/s), {r['ok']:,} ok; json {r['by_kind']['json']['requests']:,} / "
        f"stream {r['by_kind']['stream']['requests']:,}; errors {r['errors'] or 'none'}",
        f"events stored {r['events_stored']:,} == responses {r['responses']:,}: {r['events_match']}"
        f" ({r['events_behind_at_end']:,} still to write when the load stopped,"
        f" written in {r['events_caught_up_s']} s)",
        "",
        "| phase | t (s) | responses | RSS (MB) | open fds | threads |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for s in r["samples"]:
        lines.append(
            f"| {s['phase']} | {s['t_s']} | {s['requests']:,} | {s['rss_mb']} | {s['fds']} | {s['threads']} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=("embedded", "pg"), default="embedded")
    p.add_argument("--requests", type=int, default=100_000, help="stop after this many responses")
    p.add_argument("--minutes", type=float, default=20.0, help="or after this long, whichever first")
    p.add_argument("--sample-every", type=float, default=10.0, help="seconds per load segment / sample")
    p.add_argument("--json-concurrency", type=int, default=24)
    p.add_argument("--stream-concurrency", type=int, default=8)
    p.add_argument("--stream-share", type=float, default=0.25, help="share of the requests that stream")
    p.add_argument(
        "--idle-after",
        type=float,
        default=35.0,
        help="one more sample this long after the load (0: none); past UPSTREAM_KEEPALIVE_EXPIRY (30 s)",
    )
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    p.add_argument("--gateway-bin", default=None, help="the bricksllm executable (default: the venv's)")
    args = p.parse_args(argv)
    if args.requests < 1 or args.minutes <= 0 or args.sample_every <= 0:
        p.error("--requests, --minutes and --sample-every must be positive")
    if not 0 < args.stream_share < 1:
        p.error("--stream-share must be between 0 and 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bricksllm-soak-") as tmp:
        work = Path(tmp)
        try:
            result = soak(args, work)
        except Exception as exc:  # the gateway failed to start or died: say so, exit 1
            print(f"soak failed: {exc}", file=sys.stderr)
            return 1
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = args.out / f"soak-{args.backend}-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"written: {path}")
    clean = result["events_match"] and not result["errors"] and result["ok"] == result["responses"]
    return 0 if clean and result["responses"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
