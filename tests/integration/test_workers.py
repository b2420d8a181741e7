"""`bricksllm serve --workers N`: refused on the embedded default, and with Redis N processes
share both ports; the supervisor restarts a worker that dies and drains all on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from bricksllm import cli
from bricksllm.settings import RedisSettings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_several_workers_are_refused_without_redis(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("REDIS_HOSTS", raising=False)
    assert cli.main(["serve", "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert "in-process counters" in err and "REDIS_HOSTS" in err


def _children(pid: int) -> set[int]:
    kids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.add(int(entry.name))
    return kids


def _alive(pids: set[int]) -> set[int]:
    return {pid for pid in pids if Path(f"/proc/{pid}").exists()}


async def _healthy(port: int, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as s:
        while True:
            try:
                async with s.get(f"http://127.0.0.1:{port}/api/health") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            assert time.monotonic() < deadline, f"port {port} never became healthy"
            await asyncio.sleep(0.1)


@pytest.mark.redis
async def test_workers_share_the_ports_and_are_restarted(
    redis_settings: RedisSettings, tmp_path: Path
) -> None:
    admin, proxy = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRESQL_", "REDIS_", "BRICKSLLM_"))}
    env |= {"REDIS_HOSTS": "127.0.0.1", "REDIS_KEY_PREFIX": redis_settings.key_prefix, "SHUTDOWN_GRACE": "2s"}
    cmd = [sys.executable, "-m", "bricksllm.cli", "serve", "--workers", "2", "--host", "127.0.0.1",
           "--admin-port", str(admin), "--proxy-port", str(proxy), "--data-dir", str(tmp_path)]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(*cmd, env=env, stderr=asyncio.subprocess.DEVNULL)
    try:
        await _healthy(admin)
        await _healthy(proxy)
        deadline = time.monotonic() + 20
        while len(workers := _children(proc.pid)) != 2:
            assert time.monotonic() < deadline, workers
            await asyncio.sleep(0.1)
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        while True:  # a new worker takes its place; the ports keep answering meanwhile
            await _healthy(proxy)
            now = _children(proc.pid)
            if victim not in now and len(now) == 2:
                break
            assert time.monotonic() < deadline + 20, now
            await asyncio.sleep(0.1)
        await _healthy(admin)
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            assert await proc.wait() == 0
        assert not _alive(now)  # every worker stopped
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
