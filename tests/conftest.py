"""Fixtures shared by every test: real SQLite files, a private PostgreSQL schema, a private Redis prefix.

PostgreSQL (127.0.0.1:5432, database `test`, trust auth) and Redis (127.0.0.1:6379) are the real
servers on this machine. Outside CI a test that needs one that is down is skipped with a reason;
in CI (CI=true) it fails instead, so a missing service can never turn the suite green.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bricksllm.settings import PostgresSettings, RedisSettings

PG_HOST, PG_PORT, PG_DB, PG_USER = "127.0.0.1", 5432, "test", "postgres"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _require(host: str, port: int, what: str) -> None:
    if _reachable(host, port):
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is not reachable on {host}:{port} (CI must start it)")
    pytest.skip(f"{what} is not running on {host}:{port}")


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    return tmp_path / "bricksllm.sqlite3"


@pytest.fixture
async def pg_settings() -> AsyncIterator[PostgresSettings]:
    """A fresh schema in the `test` database, dropped afterwards."""
    _require(PG_HOST, PG_PORT, "PostgreSQL")
    import asyncpg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_DB)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        yield PostgresSettings(hosts=(PG_HOST,), port=PG_PORT, db_name=PG_DB, username=PG_USER, schema=schema)
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


@pytest.fixture
async def redis_settings() -> AsyncIterator[RedisSettings]:
    """A private key prefix on the real Redis; every key under it is deleted afterwards."""
    _require(REDIS_HOST, REDIS_PORT, "Redis")
    import redis.asyncio as aioredis

    prefix = f"bricksllm-test-{uuid.uuid4().hex[:12]}"
    yield RedisSettings(hosts=(REDIS_HOST,), port=REDIS_PORT, key_prefix=prefix)
    client = aioredis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
def free_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    yield port


# The fast path (asyncio Protocols) runs on uvloop in production and on asyncio's own loop in
# tests elsewhere: its suites run on both, since transports differ in the details they rely on.
_BOTH_LOOPS = {"test_upstream.py", "test_upstream_fast.py", "test_fast_server.py"}


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, object]:
    if item.path.name not in _BOTH_LOOPS:
        return {"asyncio": asyncio.new_event_loop}  # one factory: the test id is unchanged
    import uvloop

    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
