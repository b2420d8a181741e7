"""Throw-away PostgreSQL clusters for tests of several hosts: a primary and a hot standby
streaming from it, started by the test on free loopback ports and removed afterwards.

The shared server on 5432 is never touched. The clusters run the server binaries of this
machine (`pg_config --bindir`, or Debian's /usr/lib/postgresql/<n>/bin) as the `postgres` user
when the tests run as root (initdb refuses root). Each server is stopped with `pg_ctl stop` on its
own data directory, i.e. by the PID in its own postmaster.pid: only what the test started.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.conftest import PG_USER


def server_bin_dir() -> Path | None:
    """Where initdb / pg_ctl / pg_basebackup are, or None when this machine has none."""
    candidates: list[Path] = []
    if pg_config := shutil.which("pg_config"):
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(Path(out.stdout.strip()))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for d in candidates:
        if all((d / tool).exists() for tool in ("initdb", "pg_ctl", "pg_basebackup", "postgres")):
            return d
    return None


class ClusterPair:
    """A primary and a hot standby of it (`pg_basebackup -R`), each on its own port."""

    def __init__(self, bin_dir: Path, primary_port: int, standby_port: int) -> None:
        self.bin = bin_dir
        self.primary_port, self.standby_port = primary_port, standby_port
        self.root = Path(tempfile.mkdtemp(prefix="bricksllm-pg-"))
        self.primary_dir, self.standby_dir = self.root / "primary", self.root / "standby"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:  # the server must own its directories
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self._running: list[Path] = []

    def _run(self, tool: str, *args: str, timeout: float = 60) -> None:
        cmd = [str(self.bin / tool), *args]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr[-2000:]}")

    def _start(self, data: Path, port: int) -> None:
        options = (
            f"-p {port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c shared_buffers=16MB -c max_connections=60 -c wal_level=replica"
        )
        self._running.append(data)
        log = str(data.parent / f"{data.name}.log")
        self._run("pg_ctl", "-D", str(data), "-o", options, "-l", log, "-w", "start")

    def start(self, *, standby: bool = True) -> None:
        self._run("initdb", "-D", str(self.primary_dir), "-A", "trust", "-U", PG_USER, "--no-sync", "-N")
        self._start(self.primary_dir, self.primary_port)
        if not standby:
            return
        self._run(
            "pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary_port), "-U", PG_USER,
            "-D", str(self.standby_dir), "-R", "-X", "stream",
        )  # fmt: skip
        self._start(self.standby_dir, self.standby_port)

    def stop_primary(self) -> None:
        """The primary dies (immediate shutdown: no checkpoint, connections cut)."""
        self._run("pg_ctl", "-D", str(self.primary_dir), "-m", "immediate", "-w", "stop")
        self._running.remove(self.primary_dir)

    def promote_standby(self) -> None:
        self._run("pg_ctl", "-D", str(self.standby_dir), "-w", "promote")

    def close(self) -> None:
        for data in reversed(self._running):
            with contextlib.suppress(Exception):
                self._run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        self._running.clear()
        shutil.rmtree(self.root, ignore_errors=True)
