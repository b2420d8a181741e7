"""Child processes of one harness run, and the small HTTP helpers used to drive them.

Every child is started in its own session (so a server that forks workers can be stopped as a
group), recorded by PID, and stopped by that PID when the run ends, however it ends: SIGTERM,
a short grace period, then SIGKILL. Nothing is ever killed by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from loadgen import taskset_prefix


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    started_at: float  # time.perf_counter() just before the process was created
    log_file: BinaryIO

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def log_errors(self) -> int:
        """Lines of its log that look like errors (tracebacks, ERROR/CRITICAL records)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return 0
        return sum(1 for ln in text.splitlines() if "Traceback" in ln or " ERROR " in ln or "CRITICAL" in ln)


class Children:
    """Owns the harness's child processes; `stop_all()` (also on exit) stops each by PID."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[Child] = []

    def start(
        self, name: str, cmd: list[str], *, core: int | None, env: dict[str, str] | None = None
    ) -> Child:
        log_path = self.log_dir / f"{name}.log"
        log_file = log_path.open("wb")
        started = time.perf_counter()
        proc = subprocess.Popen(
            [*taskset_prefix(core), *cmd],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        child = Child(name, proc, log_path, started, log_file)
        self.children.append(child)
        return child

    def stop(self, child: Child, grace: float = 5.0) -> None:
        if child.proc.poll() is None:
            _signal_group(child.pid, signal.SIGTERM)
            try:
                child.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _signal_group(child.pid, signal.SIGKILL)
                child.proc.wait(timeout=5)
        # workers a server forked stay in its session: make sure none outlives it
        _signal_group(child.pid, signal.SIGKILL)
        child.log_file.close()
        if child in self.children:
            self.children.remove(child)

    def stop_all(self) -> None:
        for child in reversed(list(self.children)):
            with contextlib.suppress(Exception):
                self.stop(child)


def _signal_group(pid: int, sig: int) -> None:
    """Signal the session/process group led by our child `pid` (it was started with setsid)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def http_status(url: str, timeout: float = 0.5) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except (OSError, ValueError):
        return 0


def wait_healthy(child: Child, urls: list[str], timeout: float) -> float:
    """Seconds from the child's creation until every URL answered 200; raises if it never does."""
    deadline = time.perf_counter() + timeout
    pending = list(urls)
    while pending:
        if child.proc.poll() is not None:
            raise RuntimeError(
                f"{child.name} exited with {child.proc.returncode} before it was healthy:\n{child.log_tail()}"
            )
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{child.name} not healthy after {timeout:.0f} s:\n{child.log_tail()}")
        if http_status(pending[0], timeout=0.25) == 200:
            pending.pop(0)
            continue
        time.sleep(0.005)
    return time.perf_counter() - child.started_at


def request_json(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None, timeout: float = 10
) -> tuple[int, Any]:
    """(status, parsed JSON or text) of one request; never raises for an HTTP error status."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = int(r.status), r.read()
    except urllib.error.HTTPError as e:
        status, raw = int(e.code), e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")
