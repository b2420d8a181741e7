"""The circuit breaker and response cache of routes in Redis, shared by every instance.

Keys: `<prefix>:rb:f:<upstream>` (failures in a row, expiring after a quiet spell),
`<prefix>:rb:o:<upstream>` (present while the upstream is skipped: PX = the cool-down) and
`<prefix>:rc:<cache key>` (an answer, PX = the route's ttl). A failure is one Lua script, so
instances counting at once agree on when the breaker opens. Every redis-py error becomes
`errors.Unavailable`; the routes service decides what that means (it fails open: the upstream
is tried, the cache is bypassed).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from bricksllm.errors import Unavailable
from bricksllm.settings import RedisSettings

# KEYS: failures, open. ARGV: threshold, cool-down ms, how long failures are remembered (ms).
_FAILURE_LUA = """
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if n >= tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
end
return n
"""


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except (RedisError, OSError) as exc:
        raise Unavailable("route state store unreachable") from exc


def redis_client(settings: RedisSettings, max_connections: int = 32) -> aioredis.Redis:
    timeout = max(settings.read_timeout, settings.write_timeout)
    pool = aioredis.BlockingConnectionPool(
        host=settings.hosts[0] if settings.hosts else "127.0.0.1",
        port=settings.port,
        db=settings.db,
        password=settings.password or None,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        max_connections=max_connections,
        timeout=timeout,
    )
    return aioredis.Redis.from_pool(pool)


class RedisBreaker:
    """Implements `ports.Breaker` on Redis."""

    def __init__(self, settings: RedisSettings, failures: int, cooldown: float) -> None:
        self._client = redis_client(settings, max_connections=16)
        self._prefix = f"{settings.key_prefix}:rb:"
        self._threshold = failures
        self._cooldown_ms = max(1, int(cooldown * 1000))
        self._memory_ms = max(60_000, 10 * self._cooldown_ms)
        self._failure = self._client.register_script(_FAILURE_LUA)

    async def allow(self, upstream: str) -> bool:
        with _translated():
            return not await self._client.exists(self._prefix + "o:" + upstream)

    async def record(self, upstream: str, ok: bool) -> None:
        failures, opened = self._prefix + "f:" + upstream, self._prefix + "o:" + upstream
        with _translated():
            if ok:
                await self._client.delete(failures, opened)
            else:
                await self._failure(
                    keys=[failures, opened], args=[self._threshold, self._cooldown_ms, self._memory_ms]
                )

    async def close(self) -> None:
        await self._client.aclose()


class RedisCache:
    """Implements `ports.ResponseCache` on Redis (entries expire with their ttl; Redis's own
    eviction policy bounds the memory)."""

    def __init__(self, settings: RedisSettings) -> None:
        self._client = redis_client(settings)
        self._prefix = f"{settings.key_prefix}:rc:"

    async def get(self, key: str) -> bytes | None:
        with _translated():
            value = await self._client.get(self._prefix + key)
        return value.encode() if isinstance(value, str) else value

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        with _translated():
            await self._client.set(self._prefix + key, value, px=max(1, int(ttl * 1000)))

    async def close(self) -> None:
        await self._client.aclose()
