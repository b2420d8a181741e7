"""Production mode: several `bricksllm serve` processes sharing the real PostgreSQL and Redis act
as one gateway. Limits hold across instances, configuration changes propagate within a second,
and events from every instance land in one table."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from bricksllm.settings import PostgresSettings, RedisSettings
from tests.integration.mock_openai import MockOpenAI

ADMIN_PASS = "admin-test-pass"
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}
GPT4O_CALL_MICROS = 94  # 8 x $2.50 + 3 cached x $1.25 + 7 x $10 per 1M tokens = 93.75, rounded


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Instance:
    process: asyncio.subprocess.Process
    admin_port: int
    proxy_port: int

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def openai(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}/api/providers/openai/v1"


@dataclass
class Cluster:
    instances: list[Instance]
    http: aiohttp.ClientSession

    async def admin(self, i: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        url = self.instances[i].admin + path
        async with self.http.request(method, url, json=body, headers={"X-API-KEY": ADMIN_PASS}) as resp:
            return resp.status, await resp.json(content_type=None)

    async def chat(self, i: int, key: str, path: str = "/chat/completions") -> int:
        url = self.instances[i].openai + path
        async with self.http.post(url, json=CHAT, headers={"Authorization": f"Bearer {key}"}) as resp:
            await resp.read()
            return resp.status

    async def wait_for(self, check: Callable[[], Any], within: float = 5.0) -> float:
        """Seconds until `check()` is true (polled every 5 ms)."""
        start = time.perf_counter()
        while not await check():
            assert time.perf_counter() - start < within, "condition not reached in time"
            await asyncio.sleep(0.005)
        return time.perf_counter() - start

    async def key_known(self, i: int, key: str) -> bool:
        """Does instance i know this key? (A route that does not exist answers 404 to a known key
        and 401 to an unknown one, and takes no rate-limit slot.)"""
        return await self.chat(i, key, "/no-such-route") == 404


async def _start_instance(env: dict[str, str], patience: float = 60.0) -> Instance:
    admin_port, proxy_port = _free_port(), _free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bricksllm.cli", "serve", "--host", "127.0.0.1",
        "--admin-port", str(admin_port), "--proxy-port", str(proxy_port),
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    instance = Instance(process, admin_port, proxy_port)
    deadline = time.monotonic() + patience  # generous: a loaded machine starts several at once
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline and process.returncode is None:
            try:
                async with (
                    http.get(instance.admin + "/api/health") as r1,
                    http.get(f"http://127.0.0.1:{proxy_port}/api/health") as r2,
                ):
                    if r1.status == r2.status == 200:
                        return instance
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    if process.returncode is None:  # never leave a gateway holding database connections behind
        process.kill()
    await process.wait()
    raise AssertionError(f"gateway did not become healthy (exit code {process.returncode})")


def production_env(pg: PostgresSettings, redis: RedisSettings, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "POSTGRESQL_HOSTS": pg.hosts[0], "POSTGRESQL_PORT": str(pg.port), "POSTGRESQL_DB_NAME": pg.db_name,
        "POSTGRESQL_USERNAME": pg.username, "POSTGRESQL_SCHEMA": pg.schema,
        "REDIS_HOSTS": redis.hosts[0], "REDIS_PORT": str(redis.port), "REDIS_KEY_PREFIX": redis.key_prefix,
        "ADMIN_PASS": ADMIN_PASS, "EVENT_FLUSH_INTERVAL": "50ms", **extra,
    }  # fmt: skip


@pytest.fixture
async def cluster(pg_settings: PostgresSettings, redis_settings: RedisSettings) -> AsyncIterator[Cluster]:
    env = production_env(pg_settings, redis_settings)
    started = await asyncio.gather(
        *(_start_instance(env) for _ in range(3)), return_exceptions=True
    )  # migrate concurrently
    failed = [r for r in started if isinstance(r, BaseException)]
    instances = [r for r in started if isinstance(r, Instance)]
    if failed:
        for inst in instances:
            inst.process.kill()
            await inst.process.wait()
        raise failed[0]
    http = aiohttp.ClientSession()
    yield Cluster(instances, http)
    await http.close()
    for inst in instances:
        if inst.process.returncode is None:
            inst.process.terminate()
    for inst in instances:
        try:
            await asyncio.wait_for(inst.process.wait(), 15)
        except TimeoutError:
            inst.process.kill()
            await inst.process.wait()


async def _key(cluster: Cluster, mock: MockOpenAI, secret: str, **limits: Any) -> str:
    status, setting = await cluster.admin(
        0,
        "PUT",
        "/api/provider-settings",
        {"provider": "openai", "setting": {"apikey": "sk-x", "url": mock.url}},
    )
    assert status == 200, setting
    status, key = await cluster.admin(
        0, "PUT", "/api/key-management/keys",
        {"name": secret, "key": secret, "settingId": setting["id"], "tags": [secret], **limits},
    )  # fmt: skip
    assert status == 200, key
    for i in range(len(cluster.instances)):
        await cluster.wait_for(lambda i=i: cluster.key_known(i, secret))  # type: ignore[misc]
    return str(key["keyId"])


async def _away_from_window_edge(seconds: int) -> None:
    """Start a burst well inside one UTC window so it cannot straddle two."""
    left = seconds - time.time() % seconds
    if left < 10:
        await asyncio.sleep(left + 0.5)


async def test_rate_limit_admits_exactly_n_across_instances(
    cluster: Cluster, mock_openai: MockOpenAI
) -> None:
    await _key(cluster, mock_openai, "rate-key", rateLimitOverTime=10, rateLimitUnit="h")
    await _away_from_window_edge(3600)
    n = len(cluster.instances)
    results = await asyncio.gather(*(cluster.chat(i % n, "rate-key") for i in range(90)))
    assert results.count(200) == 10, results
    assert results.count(429) == 80
    assert len([r for r in mock_openai.requests if r.path == "/v1/chat/completions"]) == 10


async def test_spend_limit_is_never_passed_across_instances(
    cluster: Cluster, mock_openai: MockOpenAI
) -> None:
    # $0.011: room for one call's reservation (its few input tokens + the default allowance of 1,024
    # output tokens x $10 per 1M) at a time, while each call actually costs 94 micro-dollars
    key_id = await _key(cluster, mock_openai, "spend-key", costLimitInUsd=0.011)
    workers = 6

    async def worker(i: int) -> int:
        admitted = 0
        while await cluster.chat(i % len(cluster.instances), "spend-key") == 200:
            admitted += 1
        return admitted

    admitted = sum(await asyncio.gather(*(worker(i) for i in range(workers))))
    _, spend = await cluster.admin(1, "GET", f"/api/reporting/keys/{key_id}")
    spent = spend["costInMicroDollars"]
    assert spent == admitted * GPT4O_CALL_MICROS and admitted > 0
    assert spent <= 11_000  # reserved at admission: never past the budget
    print(f"\nspend limit 11,000 micros, {workers} workers: {admitted} admitted, spent {spent}")


async def test_config_changes_reach_every_instance_within_a_second(
    cluster: Cluster, mock_openai: MockOpenAI
) -> None:
    key_id = await _key(cluster, mock_openai, "change-key")
    assert await cluster.chat(2, "change-key") == 200
    # revoke on instance 0, refused on instance 2
    await cluster.admin(0, "PATCH", f"/api/key-management/keys/{key_id}", {"revoked": True})
    revoked_after = await cluster.wait_for(lambda: _refused(cluster, 2, "change-key"))
    # re-limit: un-revoke with a limit of 1 per hour, on instance 1
    await cluster.admin(1, "PATCH", f"/api/key-management/keys/{key_id}",
                        {"revoked": False, "rateLimitOverTime": 1, "rateLimitUnit": "h"})  # fmt: skip
    for i in (0, 2):  # written through instance 1: both others must have seen it
        await cluster.wait_for(lambda i=i: cluster.key_known(i, "change-key"))  # type: ignore[misc]
    await _away_from_window_edge(3600)
    assert await cluster.chat(2, "change-key") == 200
    assert await cluster.chat(0, "change-key") == 429
    # delete on instance 1, unknown on instance 0
    status, _ = await cluster.admin(1, "DELETE", f"/api/key-management/keys/{key_id}")
    assert status == 200
    deleted_after = await cluster.wait_for(lambda: _refused(cluster, 0, "change-key"))
    assert revoked_after < 1.0 and deleted_after < 1.0
    print(f"\nrevoke propagated in {revoked_after * 1000:.0f} ms, delete in {deleted_after * 1000:.0f} ms")


async def _refused(cluster: Cluster, i: int, key: str) -> bool:
    return await cluster.chat(i, key, "/no-such-route") == 401


async def test_events_from_all_instances_are_reported_together(
    cluster: Cluster, mock_openai: MockOpenAI
) -> None:
    key_id = await _key(cluster, mock_openai, "events-key")
    start = int(time.time())
    for i in range(9):
        assert await cluster.chat(i % 3, "events-key") == 200
    body = {"keyIds": [key_id], "start": start - 60, "end": start + 120, "increment": 180}

    async def all_there() -> bool:
        _, report = await cluster.admin(2, "POST", "/api/reporting/events", body)
        return bool(report["dataPoints"][0]["successCount"] == 9)

    await cluster.wait_for(all_there)
    _, report = await cluster.admin(1, "POST", "/api/reporting/events", body)
    point = report["dataPoints"][0]
    assert point["numberOfRequests"] == 9 + 3  # and the three 404 probes of _key()
    assert point["costInUsd"] == pytest.approx(9 * GPT4O_CALL_MICROS / 1e6)
    assert point["promptTokenCount"] == 9 * 11 and point["completionTokenCount"] == 9 * 7
