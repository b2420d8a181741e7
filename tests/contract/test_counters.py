"""The `Counters` contract, written once and run against every backend (memory and Redis).

Both backends must admit exactly the limit, under any concurrency and, for Redis, across
instances; spend and tokens are reserved at admission and replaced by the actual amounts at
settlement, exactly once per reservation, and reservations that are never settled expire.
Windows are given explicitly (past, present, next) instead of sleeping; the memory-only tests
move an injected clock.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bricksllm.domain.limits import (
    COUNTER_GRACE_SECONDS,
    Admission,
    AdmissionPlan,
    Quota,
    Reservation,
    Window,
    plan,
    window,
)
from bricksllm.domain.models import Key
from bricksllm.errors import Unavailable
from bricksllm.ports import Counters
from bricksllm.settings import RedisSettings
from bricksllm.storage.memory_counters import SETTLED_MEMORY_SECONDS, MemoryCounters
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


def reservation(
    p: AdmissionPlan, cost: int = 0, tokens: int = 0, *, lease: float = 600, counted: bool = True
) -> Reservation:
    return Reservation(uuid.uuid4().hex, p, cost, tokens, int(time.time() + lease), counted)


async def admit(counters: Counters, p: AdmissionPlan, cost: int = 0, tokens: int = 0) -> Admission:
    return await counters.admit(reservation(p, cost, tokens))


async def admits(counters: Counters, p: AdmissionPlan, n: int) -> list[bool]:
    return [(await admit(counters, p)).allowed for _ in range(n)]


def rate_plan(limit: int, w: Window | None = None, owner: str = "k") -> AdmissionPlan:
    return AdmissionPlan((Quota("requests", limit, owner, w or this_hour()),))


def remaining(admission: Admission, p: AdmissionPlan) -> int:
    return max(admission.left(p, 0, 0)[0], 0) if admission.allowed else 0


async def add_spend(counters: Counters, owner: str, micros: int, w: Window | None = None) -> None:
    """Settle a call of `micros` on the owner's all-time spend (and on window `w`)."""
    quotas = (Quota("cost", 0, owner),) + ((Quota("cost", 0, owner, w),) if w else ())
    await counters.settle(reservation(AdmissionPlan(quotas)), micros, 0)


# --- rate ---------------------------------------------------------------------------------


async def test_rate_limit_admits_exactly_n_then_denies(counters: Counters) -> None:
    p = rate_plan(3)
    results = [await admit(counters, p) for _ in range(5)]
    assert [r.allowed for r in results] == [True, True, True, False, False]
    assert [remaining(r, p) for r in results] == [2, 1, 0, 0, 0]
    denied = results[3]
    assert denied.denied_by == p.quotas[0]
    now = time.time()
    assert denied.denied_by.retry_after(now) == max(1, int(p.quotas[0].window.end - now))  # type: ignore[union-attr]


async def test_a_denied_request_does_not_consume_the_rate_counter(counters: Counters) -> None:
    w = this_hour()
    assert await admits(counters, rate_plan(2, w), 12) == [True] * 2 + [False] * 10
    # Had the ten denials counted, a limit of 3 would now be far exceeded.
    assert await admits(counters, rate_plan(3, w), 2) == [True, False]


async def test_a_spend_denial_does_not_consume_the_rate_counter(counters: Counters) -> None:
    w = this_hour()
    await add_spend(counters, "k", 100)
    both = AdmissionPlan((Quota("cost", 100, "k"), Quota("requests", 2, "k", w)))
    for _ in range(5):
        assert not (await admit(counters, both, cost=1)).allowed
    assert await admits(counters, rate_plan(2, w), 3) == [True, True, False]


async def test_windows_roll_over(counters: Counters) -> None:
    current = this_hour()
    following = Window("h", current.end, current.end + 3600)
    assert await admits(counters, rate_plan(2, current), 3) == [True, True, False]
    assert await admits(counters, rate_plan(2, following), 3) == [True, True, False]
    assert not (await admit(counters, rate_plan(2, current))).allowed


async def test_a_window_long_over_holds_no_count(counters: Counters) -> None:
    now = int(time.time())
    ended = Window("m", now - 600, now - 540)  # ended more than the grace ago
    assert await admits(counters, rate_plan(1, ended), 3) == [True] * 3


async def test_owners_are_counted_separately(counters: Counters) -> None:
    assert await admits(counters, rate_plan(1, owner="a"), 2) == [True, False]
    assert (await admit(counters, rate_plan(1, owner="b"))).allowed


async def test_a_plan_without_limits_always_admits(counters: Counters) -> None:
    kept = AdmissionPlan((Quota("cost", 0, "k"),))
    await add_spend(counters, "k", 10**9)
    for _ in range(3):
        assert (await admit(counters, kept, cost=10**6)).allowed


# --- spend: reserve, then settle ------------------------------------------------------------


async def test_spend_plus_reservations_plus_the_estimate_must_fit(counters: Counters) -> None:
    quota = Quota("cost", 1_000, "k")
    p = AdmissionPlan((quota,))
    await add_spend(counters, "k", 600)
    first = await admit(counters, p, cost=300)
    assert first.allowed and (first.counted, first.reserved) == ((600,), (0,))
    denied = await admit(counters, p, cost=101)  # 600 + 300 reserved + 101 > 1000
    assert (denied.allowed, denied.denied_by, denied.counted, denied.reserved) == (
        False,
        quota,
        (600,),
        (300,),
    )
    assert (await admit(counters, p, cost=100)).allowed  # exactly the limit
    assert not (await admit(counters, p, cost=1)).allowed
    assert quota.retry_after(time.time()) == 0  # all-time


async def test_settling_replaces_the_reservation_by_the_actual_cost(counters: Counters) -> None:
    p = AdmissionPlan((Quota("cost", 1_000, "k"),))
    r = reservation(p, cost=500)
    assert (await counters.admit(r)).allowed
    await counters.settle(r, 120, 0)
    assert await counters.spend("k") == 120
    after = await admit(counters, p, cost=880)
    assert after.allowed and (after.counted, after.reserved) == ((120,), (0,))


async def test_settling_twice_counts_once(counters: Counters) -> None:
    p = AdmissionPlan((Quota("cost", 1_000, "k"), Quota("requests", 5, "k", this_hour())))
    r = reservation(p, cost=100, counted=False)  # a fail-open admission: its request is counted now
    await counters.settle(r, 40, 0)
    await counters.settle(r, 40, 0)
    assert await counters.spend("k") == 40
    after = await admit(counters, p, cost=1)
    assert after.counted == (40, 1) and after.left(p, 1, 0)[1] == 3  # 1 settled + this one of 5


async def test_an_unsettled_reservation_expires_at_its_lease(counters: Counters) -> None:
    p = AdmissionPlan((Quota("cost", 100, "k"),))
    assert (await counters.admit(reservation(p, cost=100, lease=1))).allowed
    assert not (await admit(counters, p, cost=1)).allowed
    await asyncio.sleep(2.1)  # the process that held it "died": nobody settles
    admission = await admit(counters, p, cost=100)
    assert admission.allowed and admission.reserved == (0,)


async def test_tokens_are_reserved_and_settled_like_spend(counters: Counters) -> None:
    w = this_hour()
    p = AdmissionPlan((Quota("tokens", 1_000, "k", w), Quota("cost", 0, "k")))
    r = reservation(p, cost=5, tokens=800)
    assert (await counters.admit(r)).allowed
    assert not (await admit(counters, p, tokens=201)).allowed
    await counters.settle(r, 5, 300)
    assert (await admit(counters, p, tokens=700)).allowed
    assert await counters.spend("k") == 5


async def test_the_first_exhausted_quota_is_reported(counters: Counters) -> None:
    w = this_hour()
    total, windowed = Quota("cost", 10_000, "k"), Quota("cost", 50, "k", w)
    p = AdmissionPlan((total, windowed, Quota("requests", 5, "k", w)))
    await add_spend(counters, "k", 50, w)
    assert (await admit(counters, p, cost=1)).denied_by == windowed
    await add_spend(counters, "k", 10_000)
    assert (await admit(counters, p, cost=1)).denied_by == total


async def test_settle_adds_to_the_total_and_to_the_window(counters: Counters) -> None:
    w = this_hour()
    following = Window("h", w.end, w.end + 3600)
    assert await counters.spend("k") == 0
    for micros, win in ((30, w), (20, w), (7, None), (0, w), (5, following)):
        await add_spend(counters, "k", micros, win)
    assert await counters.spend("k") == 62
    assert await counters.spend("other") == 0

    def windowed(limit: int, win: Window) -> AdmissionPlan:
        return AdmissionPlan((Quota("cost", limit, "k", win),))

    assert (await admit(counters, windowed(51, w), cost=1)).allowed  # 50 in this window
    assert not (await admit(counters, windowed(50, w), cost=1)).allowed
    assert (await admit(counters, windowed(6, following), cost=1)).allowed  # 5 in the next
    assert not (await admit(counters, windowed(5, following), cost=1)).allowed


async def test_counter_ids_match_the_plan_of_a_key(counters: Counters) -> None:
    now = time.time()
    key = Key(
        "k", "n", "h", 0, 0,
        cost_limit_micros=1_000, cost_limit_over_time_micros=100, cost_limit_unit="d",
        rate_limit_over_time=2, rate_limit_unit="h",
    )  # fmt: skip
    p = plan(key, now)
    r = reservation(p, cost=100)
    assert (await counters.admit(r)).allowed
    await counters.settle(r, 100, 0)
    assert (await admit(counters, p, cost=1)).denied_by == p.quotas[1]
    assert await counters.spend("k") == 100
    rate_only = plan(Key("k", "n", "h", 0, 0, rate_limit_over_time=2, rate_limit_unit="h"), now)
    assert remaining(await admit(counters, rate_only), rate_only) == 0


# --- concurrency --------------------------------------------------------------------------


async def test_concurrent_admits_admit_exactly_the_limit(counters: Counters) -> None:
    p = rate_plan(10)
    results = await asyncio.gather(*(admit(counters, p) for _ in range(50)))
    allowed = [r for r in results if r.allowed]
    assert len(allowed) == 10
    assert sorted(remaining(r, p) for r in allowed) == list(range(10))
    assert all(r.denied_by == p.quotas[0] for r in results if not r.allowed)


async def test_concurrent_reservations_never_exceed_the_budget(counters: Counters) -> None:
    p = AdmissionPlan((Quota("cost", 1_000, "k"),))
    results = await asyncio.gather(*(admit(counters, p, cost=30) for _ in range(100)))
    assert sum(r.allowed for r in results) == 33  # 33 x 30 = 990; a 34th would pass 1000


@pytest.mark.redis
async def test_several_instances_sharing_redis_admit_exactly_the_limit(redis_settings: RedisSettings) -> None:
    instances = [RedisCounters(redis_settings) for _ in range(3)]
    await asyncio.gather(*(c.connect() for c in instances))
    try:
        p = AdmissionPlan((Quota("requests", 25, "k", this_hour()), Quota("cost", 2_000, "k")))
        rs = [reservation(p, cost=50) for _ in range(120)]
        results = await asyncio.gather(*(instances[i % 3].admit(r) for i, r in enumerate(rs)))
        assert sum(r.allowed for r in results) == 25  # 25 x 50 = 1250 fits in 2000
        admitted = [r for r, a in zip(rs, results, strict=True) if a.allowed]
        await asyncio.gather(*(instances[i % 3].settle(r, 3, 0) for i, r in enumerate(admitted)))
        assert {await c.spend("k") for c in instances} == {75}
    finally:
        await asyncio.gather(*(c.close() for c in instances))


@pytest.mark.redis
async def test_a_burst_larger_than_the_redis_pool_waits_for_connections(
    redis_settings: RedisSettings,
) -> None:
    counters = RedisCounters(redis_settings, max_connections=4)
    try:
        results = await asyncio.gather(*(admit(counters, rate_plan(10)) for _ in range(200)))
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
        w = this_hour()
        rate, spend = Quota("requests", 5, "k", w), Quota("cost", 1000, "k", w)
        r = reservation(AdmissionPlan((rate, spend, Quota("cost", 0, "k"))), cost=10, lease=300)
        await counters.admit(r)
        prefix = f"{redis_settings.key_prefix}:c:"
        reservation_ttl = await raw_redis.ttl(prefix + spend.counter_id + ":rz")
        assert 290 <= reservation_ttl <= 301  # reservations live as long as their last lease
        await counters.settle(r, 10, 0)
        expected = w.end + GRACE - time.time()
        for counter_id in (rate.counter_id, spend.counter_id):
            ttl = await raw_redis.ttl(prefix + counter_id)
            assert expected - 2 <= ttl <= expected + 1
        assert await raw_redis.ttl(prefix + "k:spend") == -1  # all-time spend never expires
        assert int(await raw_redis.get(prefix + rate.counter_id)) == 1  # type: ignore[arg-type]
        assert int(await raw_redis.get(prefix + spend.counter_id + ":rs")) == 0  # type: ignore[arg-type]
        assert 0 < await raw_redis.ttl(f"{prefix}settled:{r.id}") <= 300
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
            admit(counters, rate_plan(1)),
            counters.settle(reservation(rate_plan(1)), 5, 0),
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
            await admit(counters, rate_plan(1))
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


async def test_memory_drops_ended_windows_and_reservations_and_stays_bounded() -> None:
    clock = Clock(1_700_000_000.0)
    counters = MemoryCounters(now=clock)
    for _ in range(1_000):  # a new one-second window every step
        w = window("s", clock.t)
        p = AdmissionPlan((Quota("requests", 5, "k", w), Quota("cost", 10, "k", w), Quota("cost", 0, "k")))
        r = Reservation(uuid.uuid4().hex, p, 1, 0, int(clock.t) + 5)
        assert (await counters.admit(r)).allowed
        if clock.t % 2:
            await counters.settle(r, 1, 0)  # half are settled, half left to expire
        clock.t += 1
    assert len(counters) <= 2 * (GRACE + 1) + 1  # live rate + spend windows, and the total
    assert await counters.spend("k") == 500
    assert all(counters.reserved(f"k:spend_window:s:{int(clock.t) - i}") <= 1 for i in range(10))
    assert counters.reserved(f"k:spend_window:s:{int(clock.t) - 20}") == 0


async def test_memory_forgets_settled_calls_whatever_the_rate() -> None:
    """Long leases (the proxy timeout) must not keep every settled call in memory: at 1,000 calls
    a second for two minutes only the last seconds' settlements are remembered."""
    clock = Clock(1_700_000_000.0)
    counters = MemoryCounters(now=clock)
    p = AdmissionPlan((Quota("cost", 0, "k"), Quota("cost", 10**12, "k", window("d", clock.t))))
    for _ in range(120):
        for _ in range(1_000):
            r = Reservation(uuid.uuid4().hex, p, 5, 0, int(clock.t) + 660)
            assert (await counters.admit(r)).allowed
            await counters.settle(r, 2, 0)
        clock.t += 1
    assert await counters.spend("k") == 240_000
    assert counters.remembered() <= 2 * SETTLED_MEMORY_SECONDS * 1_000
    assert counters.reserved(p.quotas[1].counter_id) == 0


async def test_memory_keeps_a_window_until_its_end_plus_grace() -> None:
    clock = Clock(1_700_000_000.0)
    counters = MemoryCounters(now=clock)
    w = window("m", clock.t)
    p = AdmissionPlan((Quota("requests", 1, "k", w),))
    assert (await admit(counters, p)).allowed
    clock.t = w.end + GRACE - 0.5
    assert not (await admit(counters, p)).allowed
    clock.t = w.end + GRACE
    assert (await admit(counters, p)).allowed  # forgotten, as Redis would have
    assert len(counters) == 0  # and counted nowhere: that window is over


async def test_memory_seed_rebuilds_counters() -> None:
    clock = Clock(1_700_000_000.0)
    counters = MemoryCounters(now=clock)
    w = window("h", clock.t)
    rate = Quota("requests", 3, "k", w)
    await counters.seed("k:spend", 500, None)
    await counters.seed(rate.counter_id, 2, w.expires_at)
    await counters.seed("k:rate:h:0", 99, 3600 + GRACE)  # long over: ignored
    assert await counters.spend("k") == 500
    rate_plan_ = AdmissionPlan((rate,))
    assert remaining(await admit(counters, rate_plan_), rate_plan_) == 0
    assert not (await admit(counters, rate_plan_)).allowed
    spend = Quota("cost", 500, "k")
    assert (await admit(counters, AdmissionPlan((spend,)), cost=1)).denied_by == spend
    clock.t = w.end + GRACE + 1
    assert len(counters) == 1  # the window's counter is gone, the all-time spend stays


async def test_seed_sets_only_missing_counters(counters: Counters) -> None:
    w = window("h", time.time())
    rate = Quota("requests", 5, "k", w)
    await counters.seed(rate.counter_id, 3, w.expires_at)
    await counters.seed(rate.counter_id, 99, w.expires_at)  # exists already: kept at 3
    await counters.seed("k:spend", 700, None)
    assert remaining(await admit(counters, AdmissionPlan((rate,))), AdmissionPlan((rate,))) == 1
    assert await counters.spend("k") == 700
    await add_spend(counters, "k", 50)
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
        assert (await admit(counters, rate_plan(1))).allowed
        await raw_redis.script_flush()
        await add_spend(counters, "k", 7)
        assert await counters.spend("k") == 7
    finally:
        await counters.close()
