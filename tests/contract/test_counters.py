"""The `Counters` contract, written once and run against every backend (memory and Redis).

Both backends must admit exactly the limit, under any concurrency and, for Redis, across
instances. Windows are given explicitly (past, present, next) instead of sleeping; the
memory-only tests move an injected clock.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bricksllm.domain.limits import COUNTER_GRACE_SECONDS, AdmissionPlan, Quota, Window, plan, window
from bricksllm.domain.models import Key
from bricksllm.errors import Unavailable
from bricksllm.ports import Counters
from bricksllm.settings import RedisSettings
from bricksllm.storage.memory_counters import MemoryCounters
from bricksllm.storage.redis_counters import RedisCounters

GRACE = COUNTER_GRACE_SECONDS
Factory = Callable[[], Counters]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def factory(request: pytest.FixtureRequest) -> Factory:
    if request.param == "memory":
        return MemoryCounters
    settings: RedisSettings = request.getfixturevalue("redis_settings")
    return lambda: RedisCounters(settings)


async def _open(factory: Factory) -> Counters:
    counters = factory()
    if isinstance(counters, RedisCounters):
        await counters.connect()
    return counters


@pytest.fixture
async def counters(factory: Factory) -> AsyncIterator[Counters]:
    c = await _open(factory)
    yield c
    await c.close()


def this_hour() -> Window:
    return window("h", time.time())


async def admits(counters: Counters, p: AdmissionPlan, n: int) -> list[bool]:
    return [(await counters.admit("k", p)).allowed for _ in range(n)]


def rate_plan(limit: int, w: Window | None = None, spend: tuple[Quota, ...] = ()) -> AdmissionPlan:
    return AdmissionPlan(spend, Quota("rate", limit, w or this_hour()))


# --- rate ---------------------------------------------------------------------------------


async def test_rate_limit_admits_exactly_n_then_denies(counters: Counters) -> None:
    p = rate_plan(3)
    results = [await counters.admit("k", p) for _ in range(5)]
    assert [r.allowed for r in results] == [True, True, True, False, False]
    assert [r.rate_remaining for r in results] == [2, 1, 0, 0, 0]
    denied = results[3]
    assert denied.denied_by == p.rate
    assert denied.denied_by is not None
    now = time.time()
    assert 1 <= denied.denied_by.retry_after(now) <= 3600
    assert denied.denied_by.retry_after(now) == max(1, int(p.rate.window.end - now))  # type: ignore[union-attr]


async def test_a_denied_request_does_not_consume_the_rate_counter(counters: Counters) -> None:
    w = this_hour()
    for _ in range(2):
        assert (await counters.admit("k", rate_plan(2, w))).allowed
    for _ in range(10):
        assert not (await counters.admit("k", rate_plan(2, w))).allowed
    # Had the ten denials counted, a limit of 3 would now be far exceeded.
    assert (await counters.admit("k", rate_plan(3, w))).allowed
    assert not (await counters.admit("k", rate_plan(3, w))).allowed


async def test_a_spend_denial_does_not_consume_the_rate_counter(counters: Counters) -> None:
    w = this_hour()
    await counters.settle("k", 100, None)
    budget = (Quota("spend", 100),)
    for _ in range(5):
        assert not (await counters.admit("k", rate_plan(2, w, budget))).allowed
    assert await admits(counters, rate_plan(2, w), 3) == [True, True, False]


async def test_windows_roll_over(counters: Counters) -> None:
    current = this_hour()
    following = Window("h", current.end, current.end + 3600)
    assert await admits(counters, rate_plan(2, current), 3) == [True, True, False]
    assert await admits(counters, rate_plan(2, following), 3) == [True, True, False]
    assert not (await counters.admit("k", rate_plan(2, current))).allowed


async def test_a_window_long_over_holds_no_count(counters: Counters) -> None:
    now = int(time.time())
    ended = Window("m", now - 600, now - 540)  # ended more than the grace ago
    results = [await counters.admit("k", rate_plan(1, ended)) for _ in range(3)]
    assert [(r.allowed, r.rate_remaining) for r in results] == [(True, 0)] * 3


async def test_keys_are_counted_separately(counters: Counters) -> None:
    p = rate_plan(1)
    assert (await counters.admit("a", p)).allowed
    assert not (await counters.admit("a", p)).allowed
    assert (await counters.admit("b", p)).allowed


async def test_an_empty_plan_always_admits(counters: Counters) -> None:
    for _ in range(3):
        admission = await counters.admit("k", AdmissionPlan())
        assert (admission.allowed, admission.denied_by, admission.rate_remaining) == (True, None, -1)


# --- spend --------------------------------------------------------------------------------


async def test_spend_below_the_limit_admits_and_at_the_limit_denies(counters: Counters) -> None:
    quota = Quota("spend", 1_000)
    p = AdmissionPlan((quota,))
    await counters.settle("k", 999, None)
    admission = await counters.admit("k", p)
    assert (admission.allowed, admission.rate_remaining) == (True, -1)
    await counters.settle("k", 1, None)
    denied = await counters.admit("k", p)
    assert (denied.allowed, denied.denied_by, denied.rate_remaining) == (False, quota, -1)
    assert quota.retry_after(time.time()) == 0  # all-time: waiting does not help
    await counters.settle("k", 5_000, None)
    assert (await counters.admit("k", p)).denied_by == quota


async def test_the_first_exhausted_spend_quota_is_reported(counters: Counters) -> None:
    w = this_hour()
    total, windowed = Quota("spend", 10_000), Quota("spend_window", 50, w)
    p = AdmissionPlan((total, windowed), Quota("rate", 5, w), w)
    await counters.settle("k", 50, w)
    admission = await counters.admit("k", p)
    assert (admission.allowed, admission.denied_by, admission.rate_remaining) == (False, windowed, -1)
    await counters.settle("k", 10_000, None)
    assert (await counters.admit("k", p)).denied_by == total


async def test_settle_adds_to_the_total_and_to_the_window(counters: Counters) -> None:
    w = this_hour()
    following = Window("h", w.end, w.end + 3600)
    assert await counters.spend("k") == 0
    await counters.settle("k", 30, w)
    await counters.settle("k", 20, w)
    await counters.settle("k", 7, None)
    await counters.settle("k", 0, w)
    await counters.settle("k", 5, following)
    assert await counters.spend("k") == 62
    assert await counters.spend("other") == 0

    def windowed(limit: int, win: Window) -> AdmissionPlan:
        return AdmissionPlan((Quota("spend_window", limit, win),), None, win)

    assert (await counters.admit("k", windowed(51, w))).allowed  # 50 in this window
    assert not (await counters.admit("k", windowed(50, w))).allowed
    assert (await counters.admit("k", windowed(6, following))).allowed  # 5 in the next
    assert not (await counters.admit("k", windowed(5, following))).allowed


async def test_counter_ids_match_the_plan_of_a_key(counters: Counters) -> None:
    now = time.time()
    key = Key(
        "k", "n", "h", 0, 0,
        cost_limit_micros=1_000, cost_limit_over_time_micros=100, cost_limit_unit="d",
        rate_limit_over_time=2, rate_limit_unit="h",
    )  # fmt: skip
    p = plan(key, now)
    assert (await counters.admit("k", p)).allowed
    await counters.settle("k", 100, p.spend_window)
    assert (await counters.admit("k", p)).denied_by == p.spend[1]
    assert await counters.spend("k") == 100
    rate_only = plan(Key("k", "n", "h", 0, 0, rate_limit_over_time=2, rate_limit_unit="h"), now)
    assert (await counters.admit("k", rate_only)).rate_remaining == 0


# --- concurrency --------------------------------------------------------------------------


async def test_concurrent_admits_admit_exactly_the_limit(counters: Counters) -> None:
    p = rate_plan(10)
    results = await asyncio.gather(*(counters.admit("k", p) for _ in range(50)))
    allowed = [r for r in results if r.allowed]
    assert len(allowed) == 10
    assert sorted(r.rate_remaining for r in allowed) == list(range(10))
    assert all(r.denied_by == p.rate for r in results if not r.allowed)


@pytest.mark.redis
async def test_several_instances_sharing_redis_admit_exactly_the_limit(redis_settings: RedisSettings) -> None:
    instances = [RedisCounters(redis_settings) for _ in range(3)]
    await asyncio.gather(*(c.connect() for c in instances))
    try:
        p = rate_plan(25)
        results = await asyncio.gather(*(c.admit("k", p) for c in instances for _ in range(40)))
        assert sum(r.allowed for r in results) == 25
        await asyncio.gather(*(c.settle("k", 3, p.rate.window) for c in instances for _ in range(40)))  # type: ignore[union-attr]
        assert {await c.spend("k") for c in instances} == {360}
    finally:
        await asyncio.gather(*(c.close() for c in instances))


@pytest.mark.redis
async def test_a_burst_larger_than_the_redis_pool_waits_for_connections(
    redis_settings: RedisSettings,
) -> None:
    counters = RedisCounters(redis_settings, max_connections=4)
    try:
        results = await asyncio.gather(*(counters.admit("k", rate_plan(10)) for _ in range(200)))
        assert sum(r.allowed for r in results) == 10
    finally:
        await counters.close()


# --- Redis specifics: expiry, outages -----------------------------------------------------


@pytest.fixture
async def raw_redis(redis_settings: RedisSettings) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis(host=redis_settings.hosts[0], port=redis_settings.port)
    yield client
    await client.aclose()


@pytest.mark.redis
async def test_redis_window_keys_expire_at_the_window_end_plus_grace(
    redis_settings: RedisSettings, raw_redis: aioredis.Redis
) -> None:
    counters = RedisCounters(redis_settings)
    await counters.connect()
    try:
        p = rate_plan(5)
        w = p.rate.window  # type: ignore[union-attr]
        assert w is not None
        await counters.admit("k", p)
        await counters.settle("k", 10, w)
        prefix = f"{redis_settings.key_prefix}:c:"
        expected = w.end + GRACE - time.time()
        for counter_id in (p.rate.counter_id("k"), Quota("spend_window", 0, w).counter_id("k")):  # type: ignore[union-attr]
            ttl = await raw_redis.ttl(prefix + counter_id)
            assert expected - 2 <= ttl <= expected + 1
        assert await raw_redis.ttl(prefix + "k:spend") == -1  # all-time spend never expires
        assert int(await raw_redis.get(prefix + p.rate.counter_id("k"))) == 1  # type: ignore[union-attr,arg-type]
    finally:
        await counters.close()


@pytest.fixture
def closed_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    yield port  # bound and released: nothing listens there


async def test_redis_down_is_unavailable(closed_port: int) -> None:
    counters = RedisCounters(RedisSettings(hosts=("127.0.0.1",), port=closed_port))
    try:
        calls = [
            counters.connect(),
            counters.admit("k", rate_plan(1)),
            counters.settle("k", 5, this_hour()),
            counters.spend("k"),
        ]
        for call in calls:
            with pytest.raises(Unavailable, match="counter store unreachable") as caught:
                await call
            assert isinstance(caught.value.__cause__, RedisError)
    finally:
        await counters.close()


async def test_a_redis_that_does_not_answer_is_unavailable_after_the_timeout() -> None:
    release = asyncio.Event()
    handlers: list[asyncio.Task[None]] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        await release.wait()  # read nothing, answer nothing
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = RedisSettings(hosts=("127.0.0.1",), port=port, read_timeout=0.2, write_timeout=0.1)
    counters = RedisCounters(settings)
    try:
        started = time.perf_counter()
        with pytest.raises(Unavailable):
            await counters.admit("k", rate_plan(1))
        assert time.perf_counter() - started < 1.5
        assert len(handlers) == 1  # no retry: a retried admit could count one request twice
    finally:
        await counters.close()
        release.set()
        await asyncio.gather(*handlers)
        server.close()
        await server.wait_closed()


# --- memory specifics: expiry with a moving clock, seeding ----------------------------------


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


async def test_memory_drops_ended_windows_and_stays_bounded() -> None:
    clock = Clock(1_700_000_000.0)
    counters = MemoryCounters(now=clock)
    for _ in range(1_000):  # a new one-second window every step
        p = AdmissionPlan((), Quota("rate", 5, window("s", clock.t)))
        assert (await counters.admit("k", p)).allowed
        await counters.settle("k", 1, window("s", clock.t))
        clock.t += 1
    assert len(counters) <= 2 * (GRACE + 1) + 1  # live rate + spend windows, and the total
    assert await counters.spend("k") == 1_000


async def test_memory_keeps_a_window_until_its_end_plus_grace() -> None:
    clock = Clock(1_700_000_000.0)
    counters = MemoryCounters(now=clock)
    w = window("m", clock.t)
    p = AdmissionPlan((), Quota("rate", 1, w))
    assert (await counters.admit("k", p)).allowed
    clock.t = w.end + GRACE - 0.5
    assert not (await counters.admit("k", p)).allowed
    clock.t = w.end + GRACE
    assert (await counters.admit("k", p)).allowed  # forgotten, as Redis would have
    assert len(counters) == 0  # and counted nowhere: that window is over


async def test_memory_seed_rebuilds_counters() -> None:
    clock = Clock(1_700_000_000.0)
    counters = MemoryCounters(now=clock)
    w = window("h", clock.t)
    rate = Quota("rate", 3, w)
    await counters.seed("k:spend", 500, None)
    await counters.seed(rate.counter_id("k"), 2, w.expires_at)
    await counters.seed("k:rate:h:0", 99, 3600 + GRACE)  # long over: ignored
    assert await counters.spend("k") == 500
    assert (await counters.admit("k", AdmissionPlan((), rate))).rate_remaining == 0
    assert not (await counters.admit("k", AdmissionPlan((), rate))).allowed
    assert (await counters.admit("k", AdmissionPlan((Quota("spend", 500),)))).denied_by == Quota("spend", 500)
    clock.t = w.end + GRACE + 1
    assert len(counters) == 1  # the window's counter is gone, the all-time spend stays


async def test_seed_sets_only_missing_counters(counters: Counters) -> None:
    w = window("h", time.time())
    rate = Quota("rate", 5, w)
    await counters.seed(rate.counter_id("k"), 3, w.expires_at)
    await counters.seed(rate.counter_id("k"), 99, w.expires_at)  # exists already: kept at 3
    await counters.seed("k:spend", 700, None)
    assert (await counters.admit("k", AdmissionPlan((), rate))).rate_remaining == 1
    assert await counters.spend("k") == 700
    await counters.settle("k", 50, None)
    await counters.seed("k:spend", 1, None)
    assert await counters.spend("k") == 750


@pytest.mark.redis
async def test_redis_that_lost_its_scripts_loads_them_again(
    redis_settings: RedisSettings, raw_redis: aioredis.Redis
) -> None:
    counters = RedisCounters(redis_settings)
    await counters.connect()
    try:
        await raw_redis.script_flush()  # as after a Redis restart
        rate = Quota("rate", 1, window("h", time.time()))
        assert (await counters.admit("k", AdmissionPlan((), rate))).allowed
        await raw_redis.script_flush()
        await counters.settle("k", 7, None)
        assert await counters.spend("k") == 7
    finally:
        await counters.close()
