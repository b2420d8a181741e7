"""Live rate and spend counters in Redis, shared by every gateway instance that uses it.

The reference gateway counted after the response and checked asynchronously, so concurrent
requests and several instances over-admitted. Here admission is one Lua script, run atomically
by Redis in one round trip: it reads every spend counter, compares it with its limit, and only
when all pass checks and INCRs the rate counter (`domain.limits.decide`, mirrored in Lua). So N
instances with any concurrency admit exactly the limit.

Keys are `<prefix>:c:<counter id>` (ids from `Quota.counter_id`); plain integer strings.
Windowed keys carry EXPIREAT window end + a grace (clock skew between instances and Redis,
requests that straddle a boundary); the all-time spend never expires.

Retries are off: both the script and INCRBY are not idempotent, and a retry after a timeout
could count a request twice. Every redis-py error becomes `errors.Unavailable`; whether that
fails the request or lets it through is the proxy service's decision, not ours.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from bricksllm.domain.limits import Admission, AdmissionPlan, Quota, Window
from bricksllm.errors import Unavailable
from bricksllm.settings import RedisSettings

# KEYS: the plan's spend counters, then the rate counter if the plan has one.
# ARGV: number of spend counters, each spend limit, then the rate limit and its EXPIREAT (0: none).
# Returns {allowed (1/0), index of the denying quota (spend..., rate) or -1, rate remaining}.
_ADMIT_LUA = """
local n = tonumber(ARGV[1])
for i = 1, n do
  local spent = tonumber(redis.call('GET', KEYS[i]) or '0')
  if spent >= tonumber(ARGV[1 + i]) then
    return {0, i - 1, -1}
  end
end
if #KEYS == n then
  return {1, -1, -1}
end
local key = KEYS[n + 1]
local limit = tonumber(ARGV[n + 2])
local used = tonumber(redis.call('GET', key) or '0')
if used >= limit then
  return {0, n, 0}
end
local count = redis.call('INCR', key)
if count == 1 and ARGV[n + 3] ~= '0' then
  redis.call('EXPIREAT', key, ARGV[n + 3])
end
return {1, -1, limit - count}
"""


@contextmanager
def _translated() -> Iterator[None]:
    """The one place redis-py (and socket) errors become our Unavailable."""
    try:
        yield
    except (RedisError, OSError) as exc:
        raise Unavailable(f"counter store unreachable: {exc}") from exc


class RedisCounters:
    """`Counters` on one Redis node (as in the reference: no cluster or sentinel)."""

    def __init__(self, settings: RedisSettings, *, max_connections: int = 64) -> None:
        self._prefix = f"{settings.key_prefix}:c:"
        # redis-py has one socket timeout for both directions: a command needs both to finish.
        timeout = max(settings.read_timeout, settings.write_timeout)
        # A blocking pool: under a burst, requests queue for a connection (up to `timeout`)
        # instead of failing with "Too many connections" as redis-py's default pool does.
        # Building it does no I/O; connections open on first use, so the store also recovers
        # by itself when Redis comes back after a failed `connect`.
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
        self._client = aioredis.Redis.from_pool(pool)
        self._admit_script = self._client.register_script(_ADMIT_LUA)

    async def connect(self) -> None:
        """Check that Redis answers and load the admission script (so admits are one EVALSHA)."""
        with _translated():
            await self._client.ping()
            await self._client.script_load(_ADMIT_LUA)

    async def close(self) -> None:
        await self._client.aclose()

    def _key(self, counter_id: str) -> str:
        return self._prefix + counter_id

    async def admit(self, key_id: str, plan: AdmissionPlan) -> Admission:
        if plan.empty:
            return Admission(True)
        keys = [self._key(q.counter_id(key_id)) for q in plan.spend]
        args: list[int] = [len(plan.spend), *(q.limit for q in plan.spend)]
        rate = plan.rate
        if rate is not None:
            keys.append(self._key(rate.counter_id(key_id)))
            args += [rate.limit, rate.window.expires_at if rate.window else 0]
        with _translated():
            allowed, index, remaining = await self._admit_script(keys=keys, args=args)
        if allowed:
            return Admission(True, None, int(remaining))
        quotas = (*plan.spend, rate)
        return Admission(False, quotas[int(index)], int(remaining))

    async def settle(self, key_id: str, micros: int, window: Window | None) -> None:
        if micros == 0:
            return
        with _translated():
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.incrby(self._key(Quota("spend", 0).counter_id(key_id)), micros)
                if window is not None:
                    key = self._key(Quota("spend_window", 0, window).counter_id(key_id))
                    pipe.incrby(key, micros)
                    pipe.expireat(key, window.expires_at)
                await pipe.execute()

    async def seed(self, counter_id: str, value: int, expires_at: int | None) -> None:
        """Set a counter that does not exist yet (SET NX): after a Redis restart or on a first
        deployment, limits start from the recorded events instead of from zero."""
        if expires_at is not None and expires_at <= time.time():
            return
        with _translated():
            await self._client.set(self._key(counter_id), value, nx=True, exat=expires_at)

    async def spend(self, key_id: str) -> int:
        with _translated():
            value = await self._client.get(self._key(Quota("spend", 0).counter_id(key_id)))
        return int(value) if value is not None else 0
