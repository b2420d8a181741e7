"""Live request, spend and token counters in Redis, shared by every gateway instance that uses it.

The reference gateway counted after the response and checked asynchronously, so concurrent
requests and several instances over-admitted. Here admission is one Lua script, run atomically
by Redis in one round trip: it drops expired reservations, reads every counter plus what calls in
flight reserved on it, and only when all pass (`domain.limits.decide`, mirrored in Lua) counts
the request and reserves the call's estimated cost and tokens. Settling is another script: it
replaces the reservation by the actual amounts. So N instances with any concurrency admit
exactly the limit, and spend overshoots only by what calls use beyond their estimate.

Keys are `<prefix>:c:<counter id>` (ids from `Quota.counter_id`), plain integer strings, each
with `:r` (reservation id -> amount), `:rz` (reservation id -> lease end) and `:rs` (their sum).
Windowed keys carry EXPIREAT window end + a grace; reservation keys live until their last lease
ends; the all-time spend never expires. A settlement leaves `<prefix>:c:settled:<id>` for five
minutes so that a settlement retried after a lost answer counts once (only calls settling at the
very moment Redis failed can have lost one; about 100 bytes of Redis per call while it lives).

Scripts requested in the same event-loop iteration (concurrent requests) are sent as one
pipeline: under load redis-py's per-call cost, not Redis, is what limits the proxy.

Retries are off here (the admission script is not idempotent); every redis-py error becomes
`errors.Unavailable`. Whether that fails the request or lets it through, and keeping settlements
until Redis is back, is the limits service's business, not ours.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from redis.exceptions import NoScriptError, RedisError

from bricksllm.domain.limits import Admission, Quota, Reservation, amount
from bricksllm.errors import Unavailable
from bricksllm.settings import RedisSettings
from bricksllm.storage.redis_connect import redis_client

# Every quota i (1-based) has four keys: its counter KEYS[4i-3]; the hash of reservation id ->
# amount KEYS[4i-2]; the sorted set of reservation id -> lease end KEYS[4i-1]; and the sum of its
# live reservations KEYS[4i]. ARGV per quota (from ARGV[4]): metric (r, c or t), limit (0: only
# kept), the counter's EXPIREAT (0: never), this call's amount.
_PURGE_LUA = """
local function purge(i, now)
  local h, z, s = KEYS[4 * i - 2], KEYS[4 * i - 1], KEYS[4 * i]
  local ended = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  if #ended == 0 then return end
  for _, id in ipairs(ended) do
    local held = redis.call('HGET', h, id)
    if held then
      redis.call('DECRBY', s, held)
      redis.call('HDEL', h, id)
    end
  end
  redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
end
local function add(key, amount, expire_at)
  if amount == 0 then return end
  redis.call('INCRBY', key, amount)
  if expire_at ~= '0' then redis.call('EXPIREAT', key, expire_at) end
end
"""

# ARGV: number of quotas, reservation id, lease end (unix seconds), then 4 per quota (above).
# Returns {allowed (1/0), index of the denying quota or -1, then per quota: counted, reserved}.
_ADMIT_LUA = (
    _PURGE_LUA
    + """
local n, id, lease = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local now = tonumber(redis.call('TIME')[1])
local used = {}
local denied = -1
local reserved = 0
for i = 1, n do
  local a = 4 * i
  local value = tonumber(redis.call('GET', KEYS[4 * i - 3]) or '0')
  reserved = 0
  if ARGV[a] ~= 'r' and tonumber(ARGV[a + 1]) > 0 then
    purge(i, now)
    reserved = tonumber(redis.call('GET', KEYS[4 * i]) or '0')
  end
  used[2 * i - 1] = value
  used[2 * i] = reserved
  local limit = tonumber(ARGV[a + 1])
  if denied < 0 and limit > 0 and value + reserved + tonumber(ARGV[a + 3]) > limit then
    denied = i - 1
  end
end
if denied >= 0 then
  return {0, denied, unpack(used)}
end
for i = 1, n do
  local a = 4 * i
  local amount = tonumber(ARGV[a + 3])
  if ARGV[a] == 'r' then
    local count = redis.call('INCR', KEYS[4 * i - 3])
    if count == 1 and ARGV[a + 2] ~= '0' then redis.call('EXPIREAT', KEYS[4 * i - 3], ARGV[a + 2]) end
  elseif tonumber(ARGV[a + 1]) > 0 and amount > 0 and lease > now then
    local h, z, s = KEYS[4 * i - 2], KEYS[4 * i - 1], KEYS[4 * i]
    redis.call('HSET', h, id, amount)
    redis.call('ZADD', z, lease, id)
    redis.call('INCRBY', s, amount)
    for _, key in ipairs({h, z, s}) do
      local ttl = redis.call('TTL', key)
      if ttl < 0 or ttl < lease - now then redis.call('EXPIREAT', key, lease) end
    end
  end
end
return {1, -1, unpack(used)}
"""
)

# KEYS: the 4 per quota, then the marker of this settlement. ARGV: number of quotas, reservation
# id, how long the marker lives, 1 if the request must be counted now (a fail-open admission),
# then per quota: metric, its counter's EXPIREAT (0: never), the actual amount, unused.
_SETTLE_LUA = (
    _PURGE_LUA
    + """
local n, id = tonumber(ARGV[1]), ARGV[2]
if not redis.call('SET', KEYS[#KEYS], '1', 'NX', 'EX', ARGV[3]) then
  return 0
end
for i = 1, n do
  local a = 4 + 4 * (i - 1) + 1
  local counter = KEYS[4 * i - 3]
  if ARGV[a] == 'r' then
    if ARGV[4] == '1' then add(counter, 1, ARGV[a + 1]) end
  else
    local held = redis.call('HGET', KEYS[4 * i - 2], id)
    if held then
      redis.call('DECRBY', KEYS[4 * i], held)
      redis.call('HDEL', KEYS[4 * i - 2], id)
      redis.call('ZREM', KEYS[4 * i - 1], id)
    end
    add(counter, tonumber(ARGV[a + 2]), ARGV[a + 1])
  end
end
return 1
"""
)

SETTLED_MEMORY_SECONDS = 300  # a settlement retried within this long after it applied counts once
_METRIC = {"requests": "r", "cost": "c", "tokens": "t"}


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

    async def _evalsha(self, sha: str, script: str, keys: list[str], args: list[int | str]) -> Any:
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

    def _keys(self, reservation: Reservation) -> list[str]:
        keys = []
        for quota in reservation.plan.quotas:
            counter = self._key(quota.counter_id)
            keys += [counter, counter + ":r", counter + ":rz", counter + ":rs"]
        return keys

    async def admit(self, reservation: Reservation) -> Admission:
        quotas = reservation.plan.quotas
        args: list[int | str] = [len(quotas), reservation.id, reservation.lease_until]
        for q in quotas:
            args += [_METRIC[q.metric], q.limit, q.expires_at or 0,
                     amount(q, reservation.cost, reservation.tokens)]  # fmt: skip
        with _translated():
            allowed, index, *used = await self._evalsha(
                self._admit_sha, _ADMIT_LUA, self._keys(reservation), args
            )
        counted = tuple(int(u) for u in used[0::2])
        reserved = tuple(int(u) for u in used[1::2])
        denied_by = None if allowed else quotas[int(index)]
        return Admission(bool(allowed), denied_by, counted, reserved)

    async def settle(self, reservation: Reservation, cost: int, tokens: int) -> None:
        quotas = reservation.plan.quotas
        keys = [*self._keys(reservation), f"{self._prefix}settled:{reservation.id}"]
        args: list[int | str] = [
            len(quotas),
            reservation.id,
            SETTLED_MEMORY_SECONDS,
            int(not reservation.counted),
        ]
        for q in quotas:
            args += [_METRIC[q.metric], q.expires_at or 0, amount(q, cost, tokens), 0]
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
            value = await self._client.get(self._key(Quota("cost", 0, key_id).counter_id))
        return int(value) if value is not None else 0
