"""The `observed` lane: the embedded gateway with its observability on, to compare with the
`embedded` lane (the same gateway with it off). Issue 9's target: governed throughput with
statsd and JSON logs on at least 90 % of the same run with both off.

On: `STATS_ENABLED=true` (DogStatsD tags) towards a UDP listener in this harness that counts the
packets and lines it receives (so the datagrams really leave and are really received),
`METRICS_PORT` (the Prometheus registry filled on every request; scraped and parsed once at
the end of the lane), plus any `--observed-env NAME=VALUE` given to `run.py` (e.g.
`LOG_FORMAT=json`).
"""

from __future__ import annotations

import socket
import threading
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lanes as L
from procs import Children, free_port

SCENARIOS = ("chat c=1", "chat c=32", "stream c=32")  # the embedded lane's names: compared 1:1


@dataclass
class UdpCounter:
    """Counts the datagrams (and statsd lines) sent to it, on a thread of its own."""

    port: int = 0
    packets: int = 0
    lines: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> UdpCounter:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.2)
        self.port = sock.getsockname()[1]

        def run() -> None:
            with sock:
                while not self._stop.is_set():
                    try:
                        data = sock.recv(65536)
                    except TimeoutError:
                        continue
                    self.packets += 1
                    self.lines += data.count(b"\n") + 1

        threading.Thread(target=run, name="udp-counter", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()


@dataclass
class Observed:
    udp: UdpCounter
    metrics_port: int
    target: L.Target | None = None


def parse_env(pairs: list[str] | None) -> dict[str, str]:
    env = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"--observed-env {pair!r}: expected NAME=VALUE")
        env[name] = value
    return env


def start(
    children: Children, binary: str, upstreams: L.Upstreams, work: Path, core: int | None, args: Any
) -> L.Target:
    """The gateway of the lane; `args.observed_env` is added to its env, `args.state` keeps what
    `finish` needs."""
    extra, state = args.observed_env, args.state
    udp = UdpCounter().start()
    metrics_port = free_port()
    env = {
        "STATS_ENABLED": "true",
        "STATS_PROVIDER": "datadog",
        "STATS_ADDRESS": f"127.0.0.1:{udp.port}",
        "METRICS_PORT": str(metrics_port),
        **extra,
    }
    state["observed"] = Observed(udp, metrics_port)
    target = L.start_gateway(
        children, "observed", binary, upstreams, work / "data-observed", core, extra_env=env
    )
    state["observed"].target = target
    return target


def finish(state: dict[str, Any], results: dict[str, Any], extra: dict[str, str]) -> None:
    """Before the lane's gateway stops: scrape /metrics once, stop the UDP counter, record what
    was received."""
    observed: Observed | None = state.get("observed")
    if observed is None:
        return
    info = results["lanes"].setdefault("observed", {})
    info["env"] = {"STATS_ENABLED": "true", "STATS_PROVIDER": "datadog", "METRICS_PORT": "on", **extra}
    try:
        from prometheus_client.parser import text_string_to_metric_families

        with urllib.request.urlopen(f"http://127.0.0.1:{observed.metrics_port}/metrics", timeout=5) as r:
            text = r.read().decode()
        total = sum(
            s.value
            for f in text_string_to_metric_families(text)
            if f.name == "bricksllm_proxy_requests"
            for s in f.samples
            if s.name.endswith("_total")
        )
        info["prometheus_requests_counted"] = int(total)
    except Exception as exc:  # the gateway may be gone; the figure is then missing, said so
        info["prometheus_requests_counted"] = f"scrape failed: {exc}"
    observed.udp.stop()
    info["statsd_packets_received"] = observed.udp.packets
    info["statsd_lines_received"] = observed.udp.lines


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    """observed / embedded req/s (and CPU per request) for each scenario both lanes ran."""
    rows = {(s["lane"], s["name"]): s for s in results["scenarios"] if s.get("ok")}
    out: dict[str, Any] = {}
    for name in SCENARIOS:
        on, off = rows.get(("observed", name)), rows.get(("embedded", name))
        if not on or not off or not off.get("rps"):
            continue
        entry = {"rps_on": on["rps"], "rps_off": off["rps"], "rps_ratio": round(on["rps"] / off["rps"], 3)}
        if on.get("cpu_us_per_req") and off.get("cpu_us_per_req"):
            entry["cpu_us_per_req_on"] = on["cpu_us_per_req"]
            entry["cpu_us_per_req_off"] = off["cpu_us_per_req"]
        out[name] = entry
    return out


def summary(results: dict[str, Any]) -> str:
    cost = results.get("observability_cost") or {}
    if not cost:
        return ""
    info = results["lanes"].get("observed", {})
    lines = [
        "",
        "## Observability cost (observed vs embedded)",
        "",
        f"Observed lane env: {info.get('env')}; statsd packets received: "
        f"{info.get('statsd_packets_received')} ({info.get('statsd_lines_received')} lines); "
        f"requests counted by the Prometheus scrape: {info.get('prometheus_requests_counted')}.",
        "",
        "| scenario | req/s off | req/s on | on / off | CPU µs/req off / on |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, e in cost.items():
        cpu = f"{e.get('cpu_us_per_req_off', '-')} / {e.get('cpu_us_per_req_on', '-')}"
        lines.append(f"| {name} | {e['rps_off']:,.0f} | {e['rps_on']:,.0f} | {e['rps_ratio']:.1%} | {cpu} |")
    return "\n".join(lines) + "\n"
