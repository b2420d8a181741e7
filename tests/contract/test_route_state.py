"""Contract of `ports.Breaker` and `ports.ResponseCache`: in memory and on the real Redis.

`advance(seconds)` moves time on: the memory implementations' injected clock, or a real sleep
for Redis (whose expiries are its own)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from bricksllm.errors import Unavailable
from bricksllm.ports import Breaker, ResponseCache
from bricksllm.settings import RedisSettings
from bricksllm.storage.memory_routes import MemoryBreaker, MemoryCache
from bricksllm.storage.redis_routes import RedisBreaker, RedisCache

COOLDOWN = 0.3


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class State:
    breaker: Breaker
    cache: ResponseCache
    advance: Callable[[float], Awaitable[None]]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def redis_or_none(request: pytest.FixtureRequest) -> RedisSettings | None:
    return request.getfixturevalue("redis_settings") if request.param == "redis" else None


@pytest.fixture
async def state(redis_or_none: RedisSettings | None) -> AsyncIterator[State]:
    if redis_or_none is None:
        clock = Clock()

        async def advance(seconds: float) -> None:
            clock.now += seconds

        made = State(MemoryBreaker(3, COOLDOWN, clock), MemoryCache(100, 1 << 20, clock), advance)
    else:
        made = State(RedisBreaker(redis_or_none, 3, COOLDOWN), RedisCache(redis_or_none), asyncio.sleep)
    yield made
    await made.breaker.close()
    await made.cache.close()


async def test_breaker_opens_after_failures_in_a_row_and_closes_after_the_cooldown(state: State) -> None:
    b = state.breaker
    for _ in range(2):
        await b.record("openai|s1|gpt", False)
    assert await b.allow("openai|s1|gpt")
    await b.record("openai|s1|gpt", False)
    assert not await b.allow("openai|s1|gpt")
    assert await b.allow("openai|s2|gpt")  # per upstream
    await state.advance(COOLDOWN + 0.2)
    assert await b.allow("openai|s1|gpt")
    await b.record("openai|s1|gpt", False)  # still failing after the cool-down: open again at once
    assert not await b.allow("openai|s1|gpt")


async def test_a_success_resets_the_count(state: State) -> None:
    b = state.breaker
    await b.record("u", False)
    await b.record("u", False)
    await b.record("u", True)
    await b.record("u", False)
    await b.record("u", False)
    assert await b.allow("u")


async def test_cache_keeps_answers_for_their_ttl(state: State) -> None:
    c = state.cache
    assert await c.get("k1") is None
    await c.put("k1", b"answer one", 0.3)
    await c.put("k2", b"answer two", 60)
    assert await c.get("k1") == b"answer one"
    assert await c.get("k2") == b"answer two"
    await state.advance(0.5)
    assert await c.get("k1") is None
    assert await c.get("k2") == b"answer two"
    await c.put("k2", b"replaced", 60)
    assert await c.get("k2") == b"replaced"


async def test_memory_cache_is_a_bounded_lru() -> None:
    cache = MemoryCache(max_entries=2, max_bytes=10)
    await cache.put("a", b"1234", 60)
    await cache.put("b", b"5678", 60)
    assert await cache.get("a") == b"1234"  # a is now the most recently used
    await cache.put("c", b"90", 60)  # over 2 entries: b goes
    assert await cache.get("b") is None
    assert await cache.get("a") == b"1234"
    await cache.put("d", b"abcdefgh", 60)  # over 10 bytes: the oldest go until it fits
    assert await cache.get("d") == b"abcdefgh"
    assert await cache.get("c") is None and await cache.get("a") is None
    await cache.put("huge", b"x" * 11, 60)  # larger than the whole cache: not kept
    assert await cache.get("huge") is None
    assert await cache.get("d") == b"abcdefgh"


@pytest.mark.redis
async def test_redis_outage_is_unavailable(free_port: int) -> None:
    dead = RedisSettings(hosts=("127.0.0.1",), port=free_port, read_timeout=0.2, write_timeout=0.2)
    breaker, cache = RedisBreaker(dead, 3, 1.0), RedisCache(dead)
    calls: list[Awaitable[Any]] = [breaker.allow("u"), breaker.record("u", False), cache.get("k")]
    for call in calls:
        with pytest.raises(Unavailable):
            await call
    await breaker.close()
    await cache.close()
