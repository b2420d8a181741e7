"""The soak benchmark (bench/soak.py) as a smoke check with a tiny count: it drives the gateway
with JSON and streamed calls, samples its resources, finds one event per response and stops
every process it started. No figure is asserted."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        os.kill(pid, 0)
        return "zombie" not in status.read_text().lower()
    except (ProcessLookupError, FileNotFoundError):
        return False


def test_a_tiny_soak_records_every_call_and_leaves_nothing_behind(tmp_path: Path) -> None:
    if importlib.util.find_spec("httptools") is None:
        if os.environ.get("CI"):
            pytest.fail("httptools is not installed (the bench extra); CI must install it")
        pytest.skip("httptools is not installed (pip install -e '.[bench]')")
    cmd = [
        sys.executable,
        str(REPO / "bench" / "soak.py"),
        "--requests",
        "400",
        "--sample-every",
        "1",
        "--idle-after",
        "1",
    ]
    proc = subprocess.run([*cmd, "--out", str(tmp_path)], capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    (written,) = tmp_path.glob("soak-embedded-*.json")
    result = json.loads(written.read_text())
    assert result["responses"] >= 400 and result["ok"] == result["responses"]
    assert result["by_kind"]["json"]["ok"] > 0 and result["by_kind"]["stream"]["ok"] > 0
    assert result["events_stored"] == result["responses"] and result["events_match"]
    phases = [s["phase"] for s in result["samples"]]
    assert phases[0] == "start" and phases[-2:] == ["end", "idle"] and "load" in phases
    assert all(s["rss_mb"] and s["fds"] for s in result["samples"])
    assert not _alive(result["gateway_pid"]), "the gateway outlived the soak"
    assert "| end |" in proc.stdout
