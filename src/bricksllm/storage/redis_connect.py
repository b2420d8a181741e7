"""How the gateway connects to Redis: one node (`REDIS_HOSTS`) or the master that Redis Sentinel
names (`REDIS_SENTINELS` + `REDIS_MASTER_NAME`).

Both give a client over a *blocking* pool: under a burst, commands queue for a connection (up to
the socket timeout) instead of failing with "Too many connections" as redis-py's default pool
does. Building it does no I/O; connections open on first use, so a store also recovers by itself
when Redis comes back after a failed first contact.

With Sentinel, redis-py's `SentinelConnectionPool` asks the sentinels for the master's address
whenever it opens a connection. After a failover the sentinels kill the clients of the demoted
master (and a write that still reaches it gets READONLY, which redis-py turns into a disconnect),
so the next connections go to the new master: the command that was in flight fails once
(`Unavailable`, retries are off on purpose, see `redis_counters`) and the following ones succeed.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff

from bricksllm.settings import RedisSettings


class BlockingSentinelPool(SentinelConnectionPool, aioredis.BlockingConnectionPool):
    """redis-py's Sentinel pool (master discovery) with the blocking pool's checkout."""


class SentinelRedis(aioredis.Redis):
    """The master's client; closing it also closes its connections to the sentinels."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        pool = self.connection_pool
        if isinstance(pool, SentinelConnectionPool):
            await pool.sentinel_manager.aclose()


def redis_client(settings: RedisSettings, *, max_connections: int) -> aioredis.Redis:
    """A client for the configured Redis (node or Sentinel master); no I/O until first use."""
    # redis-py has one socket timeout for both directions: a command needs both to finish.
    timeout = max(settings.read_timeout, settings.write_timeout)
    common: dict[str, Any] = {
        "db": settings.db,
        "password": settings.password or None,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),
        "max_connections": max_connections,
        "timeout": timeout,  # the longest wait for a free pooled connection
    }
    if settings.sentinels:
        sentinel = Sentinel(
            settings.sentinel_addresses(),
            sentinel_kwargs={
                "password": settings.sentinel_password or None,
                "socket_timeout": timeout,
                "socket_connect_timeout": timeout,
            },
        )
        client = sentinel.master_for(
            settings.master_name,
            redis_class=SentinelRedis,
            connection_pool_class=BlockingSentinelPool,
            **common,
        )
        assert isinstance(client, aioredis.Redis)
        return client
    pool = aioredis.BlockingConnectionPool(
        host=settings.hosts[0] if settings.hosts else "127.0.0.1", port=settings.port, **common
    )
    return aioredis.Redis.from_pool(pool)
