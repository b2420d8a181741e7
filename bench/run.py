"""The benchmark harness: one command that measures the gateway reproducibly on this machine.

    python bench/run.py [--short] [--with-litellm] [--compare previous.json] [--out bench/results]

Starts the mock upstream (core 1), then each lane's server under test (core 0), waits for it to
be healthy (cold start), configures it through its admin API, and runs the scenarios with wrk
(non-stream) or the Python client (streams: TTFB), the load generator also on core 1. Each
scenario is bounded in time (warm-up + measurement <= 20 s). Writes `<out>/bench-<stamp>.json`
and `.md` (and `latest.json`/`latest.md`). Every child process is stopped by PID on the way out.

Exit status: 0 when every bricksllm lane served its scenarios (slow numbers never fail a run);
1 when the gateway failed to start, to be configured, or to serve (no success, or > 1 % errors).
See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lanes as L
import loadgen
import observed as O
import procstat
import profiling as prof
import report
from procs import Child, Children, free_port

REPO = Path(__file__).resolve().parent.parent
MAX_SCENARIO_S = 20.0
GATEWAY_LANES = ("embedded", "postgres", "observed")
BACKEND_COMMS = ("postgres", "redis-server")  # watched (CPU per request), never signalled
PROFILED = ("chat c=32", "stream c=32")  # scenarios sampled with py-spy under --profile
NOISY_PERCENT = 10.0  # a run during which other processes took more than this (% of a core) is redone


@dataclass(frozen=True)
class Scenario:
    name: str
    concurrency: int
    stream: bool = False
    key: str = "governed"  # governed | plain | slow
    max_requests: int = 0  # stop after this many (the Python client); 0: run for the duration
    duration: float | None = None  # overrides the run's duration (the 100k scenario)
    baseline: str | None = None  # direct scenario to subtract (default: same name)


def plan(short: bool) -> dict[str, list[Scenario]]:
    if short:
        base = [Scenario("chat c=1", 1), Scenario("chat c=32", 32), Scenario("stream c=32", 32, stream=True)]
        return {
            "direct": base,
            "passthrough": base,
            "raw": base,
            "embedded": base,
            "postgres": [Scenario("chat c=32", 32)],
            "litellm": base,
            "observed": base,
        }
    core = [
        Scenario("chat c=1", 1),
        Scenario("chat c=32", 32),
        Scenario("chat c=128", 128),
        Scenario("stream c=1", 1, stream=True),
        Scenario("stream c=32", 32, stream=True),
    ]
    slow = [
        # 256 requests in flight on a 100 ms upstream: connection pooling, not CPU, is tested
        Scenario("slow upstream c=256", 256, key="slow"),
        # a paced stream (first chunk after 110 ms, then one every 10 ms): relayed as it arrives?
        Scenario("paced stream c=32", 32, stream=True, key="slow"),
    ]
    return {
        "direct": [*core, *slow],
        "passthrough": [*core, *slow],
        "raw": [*core, *slow],
        "embedded": [
            *core,
            Scenario("plain key chat c=32", 32, key="plain", baseline="chat c=32"),
            *slow,
            Scenario("100k requests c=64", 64, max_requests=100_000, duration=MAX_SCENARIO_S - 1.5),
        ],
        "postgres": [*core, *slow],
        "litellm": core,
        "observed": [sc for sc in core if sc.name in O.SCENARIOS],
    }


# --------------------------------------------------------------------------- measuring


def measure(
    target: L.Target, sc: Scenario, args: argparse.Namespace, load_core: int | None, children: Children
) -> dict[str, Any]:
    url, auth = target.chat_url, target.auth
    proc: Child | None = target.process
    if sc.key == "plain":
        url, auth = url, target.plain_auth or ""
    elif sc.key == "slow":
        if not target.slow_url:
            raise RuntimeError("no slow upstream configured for this lane")
        url, auth = target.slow_url, target.slow_auth or ""
        if target.lane in ("direct", "passthrough", "raw"):
            proc = None  # a separate process served it; its CPU is not the one we watch
    duration = min(sc.duration or args.duration, MAX_SCENARIO_S - args.warmup)
    use_wrk = not sc.stream and not sc.max_requests and args.loadgen != "python" and loadgen.have_wrk()

    warm = None
    if args.warmup > 0:
        warm = loadgen.run_python(
            url, concurrency=sc.concurrency, duration=args.warmup, auth=auth, stream=sc.stream, core=load_core
        )
    pid = proc.pid if proc else None
    live = [c.pid for c in children.children]
    backends = procstat.pids_by_comm(BACKEND_COMMS) if target.lane == "postgres" else []
    busy0, own0 = procstat.machine_busy_seconds(), procstat.own_cpu_seconds(live)
    back0 = procstat.cpu_of(backends)
    cpu0 = procstat.cpu_seconds(pid) if pid else None
    spy = None
    if args.py_spy and proc is not None and target.lane != "direct" and sc.name in PROFILED:
        profile_path = args.out / f"profile-{args.stamp}-{target.lane}-{sc.name.replace(' ', '_')}.txt"
        spy = (prof.start(args.py_spy, proc.pid, duration - 0.5, profile_path, load_core), profile_path)
    try:
        if use_wrk:
            res = loadgen.run_wrk(
                url, concurrency=sc.concurrency, duration=duration, auth=auth, core=load_core
            )
        else:
            res = loadgen.run_python(
                url,
                concurrency=sc.concurrency,
                duration=duration,
                auth=auth,
                stream=sc.stream,
                max_requests=sc.max_requests,
                core=load_core,
            )
    finally:
        if spy is not None:
            prof.finish(spy[0], timeout=15)
    cpu1 = procstat.cpu_seconds(pid) if pid else None
    busy1, own1 = procstat.machine_busy_seconds(), procstat.own_cpu_seconds(live)
    back1 = procstat.cpu_of(backends)
    backend_cpu = sum(v - back0.get(p, 0.0) for p, v in back1.items())
    mem = procstat.memory(pid) if pid else procstat.Memory(None, None)
    cpu = (cpu1 - cpu0) if cpu0 is not None and cpu1 is not None else None
    noise = None
    if busy0 is not None and busy1 is not None:
        # CPU the machine spent on anything but this benchmark's processes, plus hypervisor steal
        noise = max(0.0, (busy1[0] - busy0[0]) - (own1 - own0) - backend_cpu) + (busy1[1] - busy0[1])
    if proc is target.process:
        target.served += res.ok + (warm.ok if warm else 0)
    out = res.to_json()
    out.update(
        cpu_s=round(cpu, 3) if cpu is not None else None,
        cpu_us_per_req=round(cpu / res.ok * 1e6, 1) if cpu is not None and res.ok else None,
        backend_cpu_us_per_req=round(backend_cpu / res.ok * 1e6, 1) if backends and res.ok else None,
        cpu_percent=round(cpu / res.duration_s * 100, 1) if cpu is not None and res.duration_s else None,
        peak_rss_mb=mem.peak_rss_mb,
        rss_mb=mem.rss_mb,
        # CPU that other processes (and the hypervisor) took during the run: the noise indicator
        others_percent=round(noise / res.duration_s * 100, 1)
        if noise is not None and res.duration_s
        else None,
        served_so_far=target.served,  # requests this server process has answered since it started
    )
    if spy is not None and spy[1].exists():
        package = {"passthrough": "passthrough.py", "litellm": "litellm/"}.get(target.lane, "bricksllm/")
        out["profile"] = {"file": spy[1].name, **prof.summarise(spy[1], package)}
    return out


def served(s: dict[str, Any]) -> bool:
    """The gateway served a scenario: some successes and at most 1 % errors."""
    if s.get("error") or not s.get("ok"):
        return False
    errors = sum((s.get("errors") or {}).values())
    return errors <= 0.01 * (s["ok"] + errors)


def run_lane(
    lane: str,
    scenarios: list[Scenario],
    start: Any,
    results: dict[str, Any],
    args: argparse.Namespace,
    load_core: int | None,
    children: Children,
) -> None:
    """Start the lane's server (a callable returning a Target), run its scenarios, record."""
    print(f"== {lane}", flush=True)
    info: dict[str, Any] = {"status": "ok"}
    results["lanes"][lane] = info
    try:
        target = start()
    except Exception as exc:
        info["status"] = f"failed to start: {exc}"
        print(f"   {lane} failed to start: {exc}", flush=True)
        return
    info["pid"] = target.process.pid
    info["cold_start_s"] = round(target.cold_start_s, 3) if target.cold_start_s is not None else None
    info["rss_mb_idle"] = procstat.memory(target.process.pid).rss_mb  # after start-up and set-up
    if target.cold_start_s is not None:
        print(
            f"   cold start {target.cold_start_s:.2f} s, idle RSS {info['rss_mb_idle']} MB"
            f" (pid {target.process.pid})",
            flush=True,
        )
    for sc in scenarios:
        row: dict[str, Any] = {
            "id": f"{lane}/{sc.name}",
            "lane": lane,
            "name": sc.name,
            "baseline": sc.baseline,
            "stream": sc.stream,
            "key": sc.key,
        }
        best: dict[str, Any] | None = None
        for attempt in range(1 + args.noisy_retries):
            try:
                m = measure(target, sc, args, load_core, children)
            except Exception as exc:
                best = {"error": str(exc), "ok": 0}
                break
            m["attempts"] = attempt + 1
            if best is None or (m.get("others_percent") or 0) < (best.get("others_percent") or 0):
                best = m
            noise = m.get("others_percent") or 0
            if noise <= NOISY_PERCENT or attempt == args.noisy_retries:
                break
            print(f"   {sc.name:<22} noisy run (others {noise:.0f} % of a core): measuring again", flush=True)
        row.update(best or {})
        results["scenarios"].append(row)
        _print_row(row)
        if target.process.proc.poll() is not None:
            info["status"] = f"exited with {target.process.proc.returncode} during {sc.name}"
            print(f"   {lane}: server died:\n{target.process.log_tail()}", flush=True)
            break
    info["rss_mb_end"] = procstat.memory(target.process.pid).rss_mb
    info["requests_served"] = target.served
    if lane != "direct":
        info["log_error_lines"] = target.process.log_errors()
        if info["log_error_lines"]:
            print(
                f"   {lane}: {info['log_error_lines']} error lines in its log:\n{target.process.log_tail(15)}"
            )


def _print_row(r: dict[str, Any]) -> None:
    if r.get("error"):
        print(f"   {r['name']:<22} FAILED: {r['error'][:300]}", flush=True)
        return
    lat = r.get("latency_ms") or {}
    ttfb = r.get("ttfb_ms") or {}
    extra = f" ttfb p50 {ttfb.get('p50', 0):.2f} ms" if ttfb else ""
    cpu = f" cpu {r['cpu_us_per_req']:.0f} µs/req" if r.get("cpu_us_per_req") else ""
    rss = f"  rss {r['peak_rss_mb']:.0f} MB" if r.get("peak_rss_mb") else ""
    noise = f"  others {r['others_percent']:.0f} %" if r.get("others_percent") else ""
    errs = sum((r.get("errors") or {}).values())
    print(
        f"   {r['name']:<22} {r['rps']:>9,.0f} req/s"
        f"  p50 {lat.get('p50', 0):.2f} p99 {lat.get('p99', 0):.2f} ms"
        f"{extra}{cpu}{rss}  n={r['ok']:,}{noise}" + (f" errors={errs}" if errs else ""),
        flush=True,
    )


# --------------------------------------------------------------------------- main


def start_lane(
    lane: str,
    children: Children,
    mock: Child,
    upstreams: L.Upstreams,
    work: Path,
    args: argparse.Namespace,
    server_core: int | None,
    backend_env: dict[str, str],
) -> L.Target:
    if lane == "direct":
        return L.direct_target(mock, upstreams)
    if lane in ("passthrough", "raw"):
        return L.start_passthrough(children, upstreams, server_core, lane)
    if lane == "litellm":
        return L.start_litellm(children, upstreams, work, server_core)
    binary = L.gateway_bin(args.gateway_bin)
    if lane == "observed":  # the embedded gateway with statsd + /metrics (+ --observed-env) on
        return O.start(children, binary, upstreams, work, server_core, args)
    return L.start_gateway(
        children, lane, binary, upstreams, work / f"data-{lane}", server_core, extra_env=backend_env
    )


def stop_servers(children: Children) -> None:
    """Every child but the mock upstreams, which serve all lanes."""
    for child in list(children.children):
        if not child.name.startswith("mock"):
            children.stop(child)


def machine_meta(args: argparse.Namespace, pinned: bool) -> dict[str, Any]:
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"], capture_output=True, text=True
    ).stdout.strip()
    wrk = "Python client only"
    if loadgen.have_wrk() and args.loadgen != "python":
        version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split()
        wrk = " ".join(version[:2]) if version else "wrk"
    method = (
        "Servers under test pinned to core 0; mock upstream and load generator on core 1. "
        if pinned
        else "Not pinned (fewer than 2 cores or no taskset). "
    ) + f"{args.warmup:g} s warm-up + {args.duration:g} s per scenario; load generator: {wrk}; loopback only."
    return {
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "mode": "short" if args.short else "full",
        "machine": f"{os.cpu_count()} CPUs ({cpu_model or platform.machine()}), "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}",
        "method": method,
        "commit": (commit or "?") + ("+dirty" if dirty else ""),
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "pinned": pinned,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--short", action="store_true", help="CI smoke: ~2 s per scenario, fewer scenarios")
    p.add_argument("--with-litellm", action="store_true", help="also measure LiteLLM's proxy (own venv)")
    p.add_argument("--compare", type=Path, help="a previous result JSON to compare against")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results", help="where to write JSON + md")
    p.add_argument(
        "--lanes",
        help="comma-separated subset of direct,passthrough,raw,embedded,postgres,litellm,observed "
        "(default: full = all but litellm; short = direct,embedded; --with-litellm adds litellm)",
    )
    p.add_argument("--duration", type=float, help="measured seconds per scenario (default 6, short 2)")
    p.add_argument("--warmup", type=float, help="warm-up seconds per scenario (default 1, short 0.3)")
    p.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    p.add_argument("--gateway-bin", help="the bricksllm executable (default: the one beside this Python)")
    p.add_argument(
        "--profile",
        action="store_true",
        help=f"sample the servers under test with py-spy during {', '.join(PROFILED)} (slightly slows them)",
    )
    p.add_argument("--py-spy", dest="py_spy_path", help="the py-spy executable (default: on PATH)")
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    p.add_argument("--observed-env", action="append", metavar="NAME=VALUE", help="env of the observed lane")
    p.add_argument(
        "--noisy-retries",
        type=int,
        help=f"re-measure a scenario up to N times while other processes took > {NOISY_PERCENT:.0f} %% of a "
        "core during it; the quietest attempt is kept (default: 2, short 0)",
    )
    a = p.parse_args(argv)
    a.duration = a.duration if a.duration is not None else (2.0 if a.short else 6.0)
    a.warmup = a.warmup if a.warmup is not None else (0.3 if a.short else 1.0)
    a.noisy_retries = max(0, a.noisy_retries if a.noisy_retries is not None else (0 if a.short else 2))
    if a.duration + a.warmup > MAX_SCENARIO_S:
        p.error(f"--duration + --warmup must stay within {MAX_SCENARIO_S:.0f} s")
    if a.loadgen == "wrk" and not loadgen.have_wrk():
        p.error("--loadgen wrk: wrk is not installed (apt-get install -y wrk)")
    a.py_spy = None
    if a.profile:
        a.py_spy = prof.find_py_spy(a.py_spy_path)
        if a.py_spy is None:
            p.error("--profile needs py-spy (pip install py-spy, or --py-spy PATH)")
    if a.lanes:
        a.lanes = [x.strip() for x in a.lanes.split(",") if x.strip()]
    else:
        full = ["direct", "passthrough", "raw", "embedded", "postgres"]
        a.lanes = ["direct", "embedded"] if a.short else full
        if a.with_litellm:
            a.lanes.append("litellm")
    a.observed_env, a.state = O.parse_env(a.observed_env), {}
    unknown = set(a.lanes) - {"direct", "passthrough", "raw", "embedded", "postgres", "litellm", "observed"}
    if unknown:
        p.error(f"unknown lanes: {', '.join(sorted(unknown))}")
    if "direct" not in a.lanes:
        a.lanes.insert(0, "direct")  # the baseline of every added-latency figure
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    pinned = not args.no_pin and (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
    args.pinned = pinned
    server_core, load_core = (0, 1) if pinned else (None, None)
    if pinned:
        os.sched_setaffinity(0, {1})  # the harness itself stays off the gateway's core
    scenarios = plan(args.short)
    results: dict[str, Any] = {"meta": machine_meta(args, pinned), "lanes": {}, "scenarios": []}
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bricksllm-bench-"))
    children = Children(work)

    def on_signal(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    failed_gateway = False
    t_start = time.monotonic()
    try:
        fast_port = free_port()
        mock = L.start_mock(children, "mock", fast_port, load_core)
        slow = None
        if any(sc.key == "slow" for lane in args.lanes for sc in scenarios[lane]):
            slow_port = free_port()
            L.start_mock(children, "mock-slow", slow_port, load_core, delay_ms=100, chunk_delay_ms=10)
            slow = f"http://127.0.0.1:{slow_port}"
        upstreams = L.Upstreams(fast=f"http://127.0.0.1:{fast_port}", slow=slow)

        for lane in args.lanes:
            with contextlib.ExitStack() as stack:
                backend_env: dict[str, str] = {}
                if lane == "postgres":
                    why = L.production_unreachable()
                    if why:
                        results["lanes"][lane] = {"status": f"skipped: {why}"}
                        print(f"== postgres skipped: {why}", flush=True)
                        continue
                    backend_env = stack.enter_context(L.production_backends())
                # stop the lane's servers before the next lane, so that they never share core 0
                stack.callback(stop_servers, children)
                start = functools.partial(
                    start_lane, lane, children, mock, upstreams, work, args, server_core, backend_env
                )
                run_lane(lane, scenarios[lane], start, results, args, load_core, children)
                if lane == "observed":
                    O.finish(args.state, results, args.observed_env)
            if lane in GATEWAY_LANES:
                info = results["lanes"][lane]
                rows = [s for s in results["scenarios"] if s["lane"] == lane]
                if info["status"] != "ok" or not rows or not all(served(s) for s in rows):
                    failed_gateway = True
    except KeyboardInterrupt as exc:
        print(f"interrupted ({exc}); stopping children", flush=True)
        failed_gateway = True
    except Exception:
        traceback.print_exc()
        failed_gateway = True
    finally:
        children.stop_all()
        shutil.rmtree(work, ignore_errors=True)

    results["meta"]["wall_s"] = round(time.monotonic() - t_start, 1)
    if "litellm" in args.lanes:
        results["meta"]["litellm"] = L.litellm_version()
    report.add_deltas(results)
    results["observability_cost"] = O.ratios(results)
    md = report.markdown(results) + O.summary(results)
    if args.compare:
        try:
            md += "\n" + report.compare(results, json.loads(args.compare.read_text()))
        except (OSError, ValueError, KeyError) as exc:
            md += f"\n(could not compare with {args.compare}: {exc})\n"
    stamp = args.stamp
    js = json.dumps(results, indent=2)
    for name in (f"bench-{stamp}", "latest"):
        (args.out / f"{name}.json").write_text(js)
        (args.out / f"{name}.md").write_text(md)
    print()
    print(md)
    print(f"wrote {args.out / f'bench-{stamp}.json'} and .md ({results['meta']['wall_s']} s)")
    if failed_gateway:
        print("FAILED: the gateway did not serve every scenario (see above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
