"""Live rate and spend counters in Redis, shared by every gateway instance that uses it.

The reference gateway counted after the response and checked asynchronously, so concurrent
requests and several instances over-admitted. Here admission is one Lua script, run atomically
by Redis in one round trip: it reads every spend counter, compares it with its limit, and only
when all pass checks and INCRs the rate counter (`domain.limits.decide`, mirrored in Lua). So N
instances with any concurrency admit exactly the limit.

Keys are `<prefix>:c:<counter id>` (ids from `Quota.counter_id`); plain integer strings.
Windowed keys carry EXPIREAT window end + a grace (clock skew between instances and Redis,
requests that straddle a boundary); the all-time spend never expires.

Scripts requested in the same event-loop iteration (concurrent requests) are sent as one
pipeline: under load redis-py's per-call cost, not Redis, is what limits the proxy.

Retries are off: both the script and INCRBY are not idempotent, and a retry after a timeout
could count a request twice. Every redis-py error becomes `errors.Unavailable`; whether that
fails the request or lets it through is the proxy service's decision, not ours.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from redis.exceptions import NoScriptError, RedisError

from bricksllm.domain.limits import Admission, AdmissionPlan, Quota, Window
from bricksllm.errors import Unavailable
from bricksllm.settings import RedisSettings
from bricksllm.storage.redis_connect import redis_client

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

# KEYS: the all-time spend counter, then the window's spend counter if any.
# ARGV: micro-dollars to add, then the window counter's EXPIREAT.
_SETTLE_LUA = """
redis.call('INCRBY', KEYS[1], ARGV[1])
if KEYS[2] then
  redis.call('INCRBY', KEYS[2], ARGV[1])
  redis.call('EXPIREAT', KEYS[2], ARGV[2])
end
return 1
"""


def _sha1(script: str) -> str:
    return hashlib.sha1(script.encode()).hexdigest()


@contextmanager
def _translated() -> Iterator[None]:
    """The one place redis-py (and socket) errors become our Unavailable."""
    try:
        yield
    except (RedisError, OSError) as exc:  # the cause (host, port) is logged by callers, never shown
        raise Unavailable("counter store unreachable") from exc


class RedisCounters:
    """`Counters` on one Redis node, or on the master Redis Sentinel names (`redis_connect`)."""

    def __init__(self, settings: RedisSettings, *, max_connections: int = 64) -> None:
        self._prefix = f"{settings.key_prefix}:c:"
        self._client = redis_client(settings, max_connections=max_connections)  # node or Sentinel
        self._pending: list[tuple[tuple[Any, ...], str, asyncio.Future[Any]]] = []
        self._sending: set[asyncio.Task[None]] = set()
        self._admit_sha = _sha1(_ADMIT_LUA)
        self._settle_sha = _sha1(_SETTLE_LUA)

    async def connect(self) -> None:
        """Check that Redis answers and load the admission script (so admits are one EVALSHA)."""
        with _translated():
            await self._client.ping()
            await self._client.script_load(_ADMIT_LUA)
            await self._client.script_load(_SETTLE_LUA)

    async def _evalsha(self, sha: str, script: str, keys: list[str], args: list[int]) -> Any:
        """Run a script, pipelined with the other scripts requested in the same loop iteration.

        Under load most of redis-py's cost is per call (connection checkout, packing, parsing
        wrappers), not per command: sending the commands of one iteration as one pipeline cuts it
        by half. Each EVALSHA is still atomic on its own and they run in arrival order."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append(((sha, len(keys), *keys, *args), script, future))
        if len(self._pending) == 1:
            asyncio.get_running_loop().call_soon(self._send_pending)
        return await future

    def _send_pending(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.create_task(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[tuple[Any, ...], str, asyncio.Future[Any]]]) -> None:
        try:
            if len(batch) == 1:  # alone in its iteration: a plain command is cheaper than a pipeline
                try:
                    results = [await self._client.execute_command("EVALSHA", *batch[0][0])]
                except NoScriptError as exc:
                    results = [exc]
            else:
                async with self._client.pipeline(transaction=False) as pipe:
                    for command, _, _ in batch:
                        pipe.execute_command("EVALSHA", *command)
                    results = await pipe.execute(raise_on_error=False)
        except BaseException as exc:
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else RedisError("cancelled"))
            if not isinstance(exc, Exception):
                raise
            return
        for (command, script, future), result in zip(batch, results, strict=True):
            if isinstance(result, NoScriptError):  # Redis lost its scripts (a restart): load, run alone
                try:
                    await self._client.script_load(script)
                    result = await self._client.execute_command("EVALSHA", *command)
                except Exception as exc:
                    result = exc
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

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
            allowed, index, remaining = await self._evalsha(self._admit_sha, _ADMIT_LUA, keys, args)
        if allowed:
            return Admission(True, None, int(remaining))
        quotas = (*plan.spend, rate)
        return Admission(False, quotas[int(index)], int(remaining))

    async def settle(self, key_id: str, micros: int, window: Window | None) -> None:
        if micros == 0:
            return
        keys = [self._key(Quota("spend", 0).counter_id(key_id))]
        args = [micros, 0]
        if window is not None:  # one script, one round trip: both counters or neither
            keys.append(self._key(Quota("spend_window", 0, window).counter_id(key_id)))
            args[1] = window.expires_at
        with _translated():
            await self._evalsha(self._settle_sha, _SETTLE_LUA, keys, args)

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
