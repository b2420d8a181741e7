"""The benchmark harness (bench/) as a smoke check, not a timed test: its short mode starts the
mock, the gateway and the load generators, gets answers through every scenario, writes its
report and leaves no process behind. No figure is asserted; slow numbers never fail here."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"


def _load(name: str) -> ModuleType:
    """A bench module by path, under a private name (bench/ is scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def test_short_run_serves_every_scenario_and_stops_its_children(tmp_path: Path) -> None:
    if importlib.util.find_spec("httptools") is None:
        # the mock upstream and the Python load generator need it: pip install -e '.[bench]'
        if os.environ.get("CI"):
            pytest.fail("httptools is not installed (the bench extra); CI must install it")
        pytest.skip("httptools is not installed (pip install -e '.[bench]')")
    proc = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--short", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    results = json.loads((tmp_path / "latest.json").read_text())
    rows = {s["id"]: s for s in results["scenarios"]}
    for sid in ("direct/chat c=32", "embedded/chat c=1", "embedded/chat c=32", "embedded/stream c=32"):
        assert rows[sid]["ok"] > 0, rows[sid]
        assert not rows[sid].get("errors"), rows[sid]
    assert rows["embedded/stream c=32"]["ttfb_ms"]["p50"] > 0
    assert rows["embedded/chat c=32"]["added_latency_ms"]["p50"] is not None
    embedded = results["lanes"]["embedded"]
    assert embedded["status"] == "ok" and embedded["cold_start_s"] > 0
    assert not _alive(embedded["pid"]), "the gateway outlived the harness"
    md = (tmp_path / "latest.md").read_text()
    assert "| embedded | chat c=32 |" in md


def test_report_computes_added_latency_against_direct_in_the_same_run() -> None:
    report = _load("report")

    def row(lane: str, name: str, rps: float, p50: float, p99: float, **kw: object) -> dict[str, object]:
        return {
            "id": f"{lane}/{name}",
            "lane": lane,
            "name": name,
            "tool": "wrk",
            "rps": rps,
            "ok": 100,
            "latency_ms": {"p50": p50, "p99": p99},
            **kw,
        }

    results = {
        "meta": {"started": "now", "mode": "short", "machine": "m", "method": "x", "commit": "c"},
        "lanes": {
            "direct": {"status": "ok"},
            "passthrough": {"status": "ok"},
            "embedded": {"status": "ok", "cold_start_s": 0.8},
        },
        "scenarios": [
            row("direct", "chat c=1", 50_000, 0.02, 0.05),
            row("direct", "chat c=32", 80_000, 0.4, 0.6),
            row("passthrough", "chat c=32", 8_000, 4.0, 9.0),
            row("embedded", "chat c=1", 3_000, 0.32, 1.05),
            row("embedded", "chat c=32", 5_000, 6.0, 20.0),
            row("embedded", "plain key chat c=32", 5_500, 5.0, 15.0, baseline="chat c=32"),
        ],
    }
    report.add_deltas(results)
    by = {s["id"]: s for s in results["scenarios"]}
    assert by["embedded/chat c=1"]["added_latency_ms"] == {"p50": 0.3, "p99": 1.0}
    assert by["embedded/plain key chat c=32"]["added_latency_ms"] == {"p50": 4.6, "p99": 14.4}
    assert "added_latency_ms" not in by["direct/chat c=1"]
    checks = {t: ok for t, _, ok in report.target_checks(results)}
    assert checks["embedded: governed req/s at c=32 >= 60% of the bare pass-through"] is True
    assert checks["embedded: added p50 at c=1 <= 0.5 ms"] is True
    assert checks["embedded: cold start <= 1.5 s"] is True
    older = json.loads(json.dumps(results))
    older["scenarios"][4]["rps"] = 4_000
    assert "| embedded/chat c=32 | 4,000 → 5,000 | +25% |" in report.compare(results, older)
    assert "| embedded | chat c=32 | wrk | 5,000 |" in report.markdown(results)
