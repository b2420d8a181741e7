"""A throw-away Redis master, a replica of it and one Sentinel monitoring them, for failover tests.

All three are `redis-server` processes this helper starts on free loopback ports (Sentinel is the
same binary with `--sentinel`), in the foreground as its own children, and stops by their PIDs.
The shared Redis on 6379 is never touched.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

import redis

MASTER_NAME = "bricksllm-test-master"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(check: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(redis.RedisError, OSError):
            if check():  # type: ignore[operator]
                return
        time.sleep(0.05)
    raise RuntimeError(f"not within {seconds:g} s: {what}")


class SentinelSetup:
    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.dir = Path(tempfile.mkdtemp(prefix="bricksllm-sentinel-"))
        self.master_port, self.replica_port, self.sentinel_port = _free_port(), _free_port(), _free_port()
        self._procs: list[subprocess.Popen[bytes]] = []
        self._logs: list[BinaryIO] = []

    def _spawn(self, name: str, args: list[str]) -> None:
        log = (self.dir / f"{name}.log").open("wb")
        self._logs.append(log)
        self._procs.append(
            subprocess.Popen([self.binary, *args], stdout=log, stderr=subprocess.STDOUT, cwd=self.dir)
        )

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)

    def start(self) -> None:
        base = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(self.dir)]
        self._spawn("master", ["--port", str(self.master_port), *base])
        self._spawn(
            "replica",
            ["--port", str(self.replica_port), *base, "--replicaof", "127.0.0.1", str(self.master_port)],
        )
        replica = self.client(self.replica_port)
        _wait(lambda: replica.info("replication").get("master_link_status") == "up", 15, "replication")
        conf = self.dir / "sentinel.conf"  # Sentinel rewrites its configuration file: a private one
        conf.write_text(
            f"port {self.sentinel_port}\nbind 127.0.0.1\ndir {self.dir}\n"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master_port} 1\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} 1000\n"
            f"sentinel failover-timeout {MASTER_NAME} 4000\n"
        )
        self._spawn("sentinel", [str(conf), "--sentinel"])
        sentinel = self.client(self.sentinel_port)

        def replica_known() -> bool:
            replicas = sentinel.sentinel_slaves(MASTER_NAME)
            return any(int(r["port"]) == self.replica_port and not r["is_sdown"] for r in replicas)

        _wait(replica_known, 20, "the sentinel to discover the replica")

    def master_port_now(self) -> int:
        _, port = self.client(self.sentinel_port).sentinel_get_master_addr_by_name(MASTER_NAME)
        return int(port)

    def failover(self) -> None:
        """Wait for the replica to hold every write, fail over, wait until the roles have swapped."""
        self.client(self.master_port).execute_command("WAIT", 1, 2000)
        self.client(self.sentinel_port).sentinel_failover(MASTER_NAME)
        new = self.client(self.replica_port)
        _wait(lambda: self.master_port_now() == self.replica_port, 20, "the sentinel to name the new master")
        old = self.client(self.master_port)
        _wait(lambda: new.info("replication")["role"] == "master", 20, "the replica to be promoted")
        # the sentinel turns the old master into a replica, killing its clients' connections
        _wait(lambda: old.info("replication")["role"] == "slave", 30, "the old master to be demoted")

    def close(self) -> None:
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        self._procs.clear()
        for log in self._logs:
            log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
