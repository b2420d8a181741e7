"""`bricksllm serve --workers N`: N gateway processes sharing the ports, one supervisor.

Python runs one core per process, so using every core means several processes. Each worker is
an ordinary `bricksllm serve` (one event loop, one Gateway) that binds both ports with
SO_REUSEPORT, and the kernel spreads new connections across them. Both ports are shared: the
admin API writes through SQLite/PostgreSQL and every worker's configuration cache follows
writes (NOTIFY or polling), exactly as when several instances run behind a load balancer, so
no worker is special and a crash never takes the admin API down.

The supervisor itself imports none of the gateway, binds nothing and serves nothing: it starts
the workers, restarts one that dies (after a pause that grows while it keeps dying on start),
and on SIGTERM or SIGINT passes SIGTERM to every worker, which stops accepting and finishes its
requests in flight, then waits for them (SIGKILL after the grace period and a margin). If the
first workers cannot even start (a port in use, a database down), it stops and returns their
exit status instead of restarting forever.

Limits stay exact across workers only when the counters are shared: on the embedded default
(no REDIS_HOSTS) each process would count on its own, so N > 1 is refused (see `cli`).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from types import FrameType

log = logging.getLogger("bricksllm.supervisor")

STARTUP_S = 5.0  # a worker alive this long counts as started
MAX_BACKOFF_S = 10.0


@dataclass
class _Worker:
    index: int
    proc: subprocess.Popen[bytes]
    started: float
    failures: int = 0  # consecutive deaths within STARTUP_S of starting


@dataclass
class Supervisor:
    command: list[str]  # how to run one worker (argv)
    workers: int
    grace: float
    env: dict[str, str] | None = None
    _stop: bool = False
    _pool: list[_Worker] = field(default_factory=list)

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self._pool = [self._spawn(i) for i in range(self.workers)]
            log.info("supervisor %d: %d workers (%s)", os.getpid(), self.workers,
                     ", ".join(str(w.proc.pid) for w in self._pool))  # fmt: skip
            return self._watch()
        finally:
            self._shutdown()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._stop = True

    def _spawn(self, index: int, failures: int = 0) -> _Worker:
        env = dict(self.env if self.env is not None else os.environ)
        env["BRICKSLLM_WORKER_INDEX"] = str(index)
        proc = subprocess.Popen(self.command, env=env)
        return _Worker(index, proc, time.monotonic(), failures)

    def _watch(self) -> int:
        ever_started = False
        while not self._stop:
            time.sleep(0.1)
            now = time.monotonic()
            for i, w in enumerate(self._pool):
                code = w.proc.poll()
                if code is None:
                    if now - w.started >= STARTUP_S:
                        ever_started = True
                        w.failures = 0
                    continue
                if self._stop:
                    break
                quick = now - w.started < STARTUP_S
                if quick and not ever_started and code in (1, 2):
                    log.error("worker %d could not start (exit %d): stopping", w.proc.pid, code)
                    return code
                failures = w.failures + 1 if quick else 0
                pause = min(MAX_BACKOFF_S, 0.5 * 2 ** (failures - 1)) if failures else 0.0
                log.warning("worker %d exited with %s; restarting it%s", w.proc.pid, code,
                            f" in {pause:.1f} s" if pause else "")  # fmt: skip
                if pause:
                    self._sleep(pause)
                if self._stop:
                    break
                self._pool[i] = self._spawn(w.index, failures)
        return 0

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self._stop and time.monotonic() < end:
            time.sleep(0.05)

    def _shutdown(self) -> None:
        alive = [w for w in self._pool if w.proc.poll() is None]
        for w in alive:
            w.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace + 5.0
        for w in alive:
            try:
                w.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker %d did not stop in time: killing it", w.proc.pid)
                w.proc.kill()
                w.proc.wait()


def worker_command(argv: list[str]) -> list[str]:
    """The worker's command line: this program with the same arguments, as one worker."""
    return [sys.executable, "-m", "bricksllm.cli", *argv, "--workers", "1", "--reuse-port"]
