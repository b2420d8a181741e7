"""Contract of `ports.EventStore`, run against SQLite and PostgreSQL.

The report tests use the small hand-written table below; every expected number was worked out
by hand from it (see the comments), not by running the code.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import sqlalchemy as sa

from bricksllm.domain.models import Event
from bricksllm.errors import Unavailable
from bricksllm.ports import DataPoint, EventQuery, Report, ReportQuery
from bricksllm.settings import PostgresSettings
from bricksllm.storage.sql import SqlStores
from bricksllm.storage.sql_engine import postgres_engine, sqlite_engine
from bricksllm.storage.sql_events import SqlEventStore

T = 1_700_000_000  # report start; buckets of 60 s: [T, T+60), [T+60, T+120), [T+120, T+180)


def ev(
    id: str,
    at: int,
    key_id: str,
    tags: tuple[str, ...],
    status: int,
    cost: int,
    prompt: int,
    completion: int,
    latency: int,
    custom_id: str = "",
) -> Event:
    return Event(
        id=id,
        created_at=at,
        key_id=key_id,
        provider="openai",
        model="gpt-4o",
        status=status,
        path="/api/providers/openai/v1/chat/completions",
        method="POST",
        tags=tags,
        cost_micros=cost,
        prompt_token_count=prompt,
        completion_token_count=completion,
        latency_in_ms=latency,
        custom_id=custom_id,
    )


#   id    created   key  tags     status cost  prompt compl latency custom
E1 = ev("e1", T + 0, "k1", ("a", "b"), 200, 100, 10, 20, 100, "c1")
E2 = ev("e2", T + 59, "k1", ("a",), 200, 200, 5, 5, 300)
E3 = ev("e3", T + 60, "k2", ("b",), 500, 50, 7, 0, 50, "c2")
E4 = ev("e4", T + 61, "k1", ("a", "b"), 429, 0, 0, 0, 1)
E5 = ev("e5", T + 130, "k2", ("a",), 201, 1000, 100, 200, 900, "c1")
E6 = ev("e6", T - 1, "k1", ("a", "b"), 200, 7777, 1, 1, 10_000)  # before the report range
E7 = ev("e7", T + 180, "k1", ("a", "b"), 200, 8888, 1, 1, 20_000)  # at `end`: excluded
ALL = [E1, E2, E3, E4, E5, E6, E7]


@pytest.fixture
async def store(stores: SqlStores) -> SqlEventStore:
    await stores.events.insert_events(ALL)
    return stores.events


def ids(events: list[Event]) -> list[str]:
    return [e.id for e in events]


# -- insert and query ---------------------------------------------------------------------


async def test_events_round_trip_with_every_field(store: SqlEventStore) -> None:
    by_id = {e.id: e for e in await store.query_events(EventQuery(limit=0))}
    assert by_id == {e.id: e for e in ALL}


async def test_insert_is_idempotent_on_id_and_empty_batches_are_fine(store: SqlEventStore) -> None:
    await store.insert_events([E1, E2])
    await store.insert_events([])
    assert len(await store.query_events(EventQuery(limit=0))) == len(ALL)


@pytest.mark.parametrize("n", [1, 7, 500, 777, 1_031])
async def test_batches_of_any_size_are_stored_whole_in_a_few_statements(stores: SqlStores, n: int) -> None:
    """Every row of a batch, duplicates inside it once; on SQLite a few multi-row statements,
    never one per row (`executemany` hands the GIL to the event loop and back for every row)."""
    batch = [dataclasses.replace(E1, id=f"b{i}", created_at=T + i) for i in range(n)]
    statements: list[bool] = []

    def seen(conn: object, cursor: object, sql: str, params: object, context: object, many: bool) -> None:
        if sql.startswith("INSERT INTO events"):
            statements.append(many)

    engine = stores.engine.sync_engine
    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        await stores.events.insert_events([*batch, batch[0]])
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)
    assert await stores.events.count_events(EventQuery()) == n
    if stores.engine.dialect.name == "sqlite":
        assert not any(statements) and len(statements) <= 2 + (n + 1) // 500 + 9


async def test_unstorable_characters_are_stored_escaped(stores: SqlStores) -> None:
    # PostgreSQL refuses NUL and no driver encodes a lone surrogate (a header byte that is not
    # UTF-8); one such request must neither poison a batch nor go unrecorded.
    odd = ev("n1", 1, "k", ("t\x00ag",), 200, 0, 0, 0, 0, custom_id="c\udcff")
    odd = dataclasses.replace(odd, model="gpt\x00-4o", path="/x\x00", cost_micros=-5, latency_in_ms=2**70)
    await stores.events.insert_events([odd, E1])
    stored = {e.id: e for e in await stores.events.query_events(EventQuery())}
    got = stored["n1"]
    assert (got.model, got.path, got.custom_id, got.tags) == (
        "gpt\\x00-4o",
        "/x\\x00",
        "c\\udcff",
        ("t\\x00ag",),
    )
    assert (got.cost_micros, got.latency_in_ms) == (0, 2**63 - 1)
    assert stored[E1.id] == E1


async def test_query_orders_newest_first_then_by_id(stores: SqlStores) -> None:
    await stores.events.insert_events(
        [ev("b", 5, "k", (), 200, 0, 0, 0, 0), ev("a", 5, "k", (), 200, 0, 0, 0, 0)]
    )
    await stores.events.insert_events([ev("c", 6, "k", (), 200, 0, 0, 0, 0)])
    assert ids(await stores.events.query_events(EventQuery())) == ["c", "a", "b"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (EventQuery(), ["e7", "e5", "e4", "e3", "e2", "e1", "e6"]),
        (EventQuery(key_ids=("k2",)), ["e5", "e3"]),
        (EventQuery(key_ids=("k2", "k1")), ["e7", "e5", "e4", "e3", "e2", "e1", "e6"]),
        (EventQuery(key_ids=("nobody",)), []),
        (EventQuery(tags=("a", "b")), ["e7", "e4", "e1", "e6"]),  # all tags, not any
        (EventQuery(tags=("b",)), ["e7", "e4", "e3", "e1", "e6"]),
        (EventQuery(tags=("a", "zzz")), []),
        (EventQuery(custom_id="c1"), ["e5", "e1"]),
        (EventQuery(start=T, end=T + 180), ["e5", "e4", "e3", "e2", "e1"]),  # [start, end)
        (EventQuery(start=T + 60), ["e7", "e5", "e4", "e3"]),
        (EventQuery(end=T + 60), ["e2", "e1", "e6"]),
        (EventQuery(key_ids=("k1",), tags=("b",), start=T, end=T + 181), ["e7", "e4", "e1"]),
        (EventQuery(limit=2), ["e7", "e5"]),
        (EventQuery(limit=2, offset=2), ["e4", "e3"]),
        (EventQuery(limit=2, offset=6), ["e6"]),
        (EventQuery(limit=2, offset=7), []),
        (EventQuery(limit=0, offset=5), ["e1", "e6"]),
        (EventQuery(statuses=((400, 500),)), ["e4"]),  # a class: 4xx
        (EventQuery(statuses=((500, 600), (429, 430))), ["e4", "e3"]),  # any of the ranges
        (EventQuery(statuses=((200, 300),), key_ids=("k2",)), ["e5"]),  # 201 is a 2xx
        (EventQuery(statuses=((404, 405),)), []),
        (EventQuery(models=("gpt-4o",), start=T + 61), ["e7", "e5", "e4"]),
        (EventQuery(models=("gpt-4o-mini",)), []),
    ],
)
async def test_query_filters(store: SqlEventStore, query: EventQuery, expected: list[str]) -> None:
    assert ids(await store.query_events(query)) == expected
    # the count ignores paging and agrees with the unpaged query
    unpaged = dataclasses.replace(query, limit=0, offset=0)
    assert await store.count_events(query) == len(await store.query_events(unpaged))


async def test_model_filter_matches_any_of_the_models_exactly(stores: SqlStores) -> None:
    await stores.events.insert_events(
        [
            dataclasses.replace(ev("m1", 1, "k", (), 200, 0, 0, 0, 0), model="gpt-4o"),
            dataclasses.replace(ev("m2", 2, "k", (), 200, 0, 0, 0, 0), model="gpt-4o-mini"),
            dataclasses.replace(ev("m3", 3, "k", (), 200, 0, 0, 0, 0), model="o3"),
        ]
    )
    assert ids(await stores.events.query_events(EventQuery(models=("gpt-4o",)))) == ["m1"]
    assert ids(await stores.events.query_events(EventQuery(models=("o3", "gpt-4o-mini")))) == ["m3", "m2"]
    assert await stores.events.count_events(EventQuery(models=("gpt-4o%",))) == 0  # no pattern matching
    assert await stores.events.count_events(EventQuery(limit=1)) == 3


async def test_tag_values_are_data_not_sql(store: SqlEventStore) -> None:
    assert await store.query_events(EventQuery(tags=("a' OR '1'='1",))) == []
    assert await store.query_events(EventQuery(custom_id="c1' OR '1'='1")) == []


# -- reports ------------------------------------------------------------------------------


def point(
    ts: int,
    n: int,
    cost: int,
    latency: int,
    prompt: int,
    completion: int,
    ok: int,
    p50: float = 0.0,
    p99: float = 0.0,
) -> DataPoint:
    return DataPoint(
        time_stamp=ts,
        number_of_requests=n,
        cost_micros=cost,
        latency_sum_ms=latency,
        prompt_token_count=prompt,
        completion_token_count=completion,
        success_count=ok,
        latency_p50_ms=p50,
        latency_p99_ms=p99,
    )


def _without_percentiles(points: list[DataPoint]) -> list[DataPoint]:
    return [dataclasses.replace(p, latency_p50_ms=0.0, latency_p99_ms=0.0) for p in points]


def assert_report(got: Report, points: list[DataPoint], median: float, p99: float) -> None:
    assert _without_percentiles(got.data_points) == _without_percentiles(points)
    got_percentiles = [(p.latency_p50_ms, p.latency_p99_ms) for p in got.data_points]
    assert got_percentiles == [
        (pytest.approx(p.latency_p50_ms, rel=1e-12), pytest.approx(p.latency_p99_ms, rel=1e-12))
        for p in points
    ]
    assert got.latency_median_ms == pytest.approx(median, rel=1e-12)
    assert got.latency_p99_ms == pytest.approx(p99, rel=1e-12)


async def test_report_without_filters(store: SqlEventStore) -> None:
    got = await store.report(ReportQuery(start=T, end=T + 180, increment=60))
    # Three buckets (none starting at `end`). e6 and e7 are outside [T, T+180).
    # Latencies in range, sorted: 1, 50, 100, 300, 900 -> median 100;
    # p99 at position 0.99 * 4 = 3.96: 300 + 0.96 * (900 - 300) = 876.
    # Per bucket: [100, 300] -> median 200, p99 100 + 0.99 * 200 = 298;
    # [1, 50] -> median 25.5, p99 1 + 0.99 * 49 = 49.51; [900] -> 900 and 900.
    assert_report(
        got,
        [
            point(T, 2, 300, 400, 15, 25, 2, 200.0, 298.0),  # e1, e2
            point(T + 60, 2, 50, 51, 7, 0, 0, 25.5, 49.51),  # e3 (500), e4 (429)
            point(T + 120, 1, 1000, 900, 100, 200, 1, 900.0, 900.0),  # e5 (201 counts as success)
        ],
        100.0,
        876.0,
    )


async def test_report_by_key(store: SqlEventStore) -> None:
    got = await store.report(ReportQuery(start=T, end=T + 180, increment=60, key_ids=("k1",)))
    # e1, e2, e4 -> latencies 1, 100, 300: median 100; p99 at 1.98: 100 + 0.98 * 200 = 296.
    assert_report(
        got,
        [
            point(T, 2, 300, 400, 15, 25, 2, 200.0, 298.0),
            point(T + 60, 1, 0, 1, 0, 0, 0, 1.0, 1.0),
            point(T + 120, 0, 0, 0, 0, 0, 0),  # empty: percentiles 0
        ],
        100.0,
        296.0,
    )


async def test_report_by_tags_needs_all_of_them(store: SqlEventStore) -> None:
    got = await store.report(ReportQuery(start=T, end=T + 180, increment=60, tags=("b", "a")))
    # e1, e4 -> latencies 1, 100: median 1 + 0.5 * 99 = 50.5; p99 1 + 0.99 * 99 = 99.01.
    assert_report(
        got,
        [
            point(T, 1, 100, 100, 10, 20, 1, 100.0, 100.0),
            point(T + 60, 1, 0, 1, 0, 0, 0, 1.0, 1.0),
            point(T + 120, 0, 0, 0, 0, 0, 0),
        ],
        50.5,
        99.01,
    )


async def test_report_by_custom_ids(store: SqlEventStore) -> None:
    got = await store.report(ReportQuery(start=T, end=T + 180, increment=60, custom_ids=("c1",)))
    # e1, e5 -> latencies 100, 900: median 500; p99 100 + 0.99 * 800 = 892.
    assert_report(
        got,
        [
            point(T, 1, 100, 100, 10, 20, 1, 100.0, 100.0),
            point(T + 60, 0, 0, 0, 0, 0, 0),
            point(T + 120, 1, 1000, 900, 100, 200, 1, 900.0, 900.0),
        ],
        500.0,
        892.0,
    )


async def test_report_end_not_a_multiple_of_increment(store: SqlEventStore) -> None:
    got = await store.report(ReportQuery(start=T + 60, end=T + 181, increment=60))
    # Buckets T+60, T+120, T+180 (the last one is one second wide and holds e7).
    # Latencies 1, 50, 900, 20000: median at 1.5 -> 50 + 0.5 * 850 = 475;
    # p99 at 2.97 -> 900 + 0.97 * 19100 = 19427.
    assert_report(
        got,
        [
            point(T + 60, 2, 50, 51, 7, 0, 0, 25.5, 49.51),
            point(T + 120, 1, 1000, 900, 100, 200, 1, 900.0, 900.0),
            point(T + 180, 1, 8888, 20_000, 1, 1, 1, 20_000.0, 20_000.0),
        ],
        475.0,
        19427.0,
    )


async def test_report_with_no_events_has_empty_buckets(store: SqlEventStore) -> None:
    got = await store.report(ReportQuery(start=T + 1000, end=T + 1120, increment=60))
    assert_report(got, [point(T + 1000, 0, 0, 0, 0, 0, 0), point(T + 1060, 0, 0, 0, 0, 0, 0)], 0.0, 0.0)
    assert await store.report(ReportQuery(start=T, end=T, increment=60)) == Report()


async def test_report_single_event_percentiles(store: SqlEventStore) -> None:
    got = await store.report(ReportQuery(start=T, end=T + 180, increment=180, key_ids=("k2",), tags=("b",)))
    assert_report(got, [point(T, 1, 50, 50, 7, 0, 0, 50.0, 50.0)], 50.0, 50.0)


# -- key usage ----------------------------------------------------------------------------


async def test_key_usage(store: SqlEventStore) -> None:
    # k1 since T: e1, e2, e4 (429: rejected by the gateway, not admitted), e7.
    assert await store.key_usage("k1", T) == (3, 100 + 200 + 0 + 8888)
    assert await store.key_usage("k1", T + 60) == (1, 8888)
    assert await store.key_usage("k1", T - 1) == (4, 100 + 200 + 8888 + 7777)
    assert await store.key_usage("nobody", 0) == (0, 0)


async def test_key_usage_counts_cost_of_every_event(stores: SqlStores) -> None:
    await stores.events.insert_events(
        [
            ev("x1", 10, "k3", (), 401, 0, 0, 0, 0),
            ev("x2", 11, "k3", (), 403, 5, 0, 0, 0),
            ev("x3", 12, "k3", (), 502, 3, 0, 0, 0),
            ev("x4", 13, "k3", (), 200, 40, 0, 0, 0),
        ]
    )
    assert await stores.events.key_usage("k3", 0) == (2, 48)


async def test_usage_by_keys_tags_and_models(stores: SqlStores) -> None:
    await stores.events.insert_events(
        [
            ev("u1", 10, "k5", ("team", "x"), 200, 40, 10, 5, 0),
            ev("u2", 20, "k6", ("team",), 200, 60, 1, 2, 0),
            ev("u3", 30, "k6", ("team",), 429, 0, 0, 0, 0),
            ev("u4", 40, "k7", ("other",), 200, 9, 100, 100, 0),
        ]
    )
    usage = stores.events.usage
    assert await usage(EventQuery(tags=("team",))) == (2, 100, 18)
    assert await usage(EventQuery(tags=("team",), start=20)) == (1, 60, 3)
    assert await usage(EventQuery(key_ids=("k5", "k7"))) == (2, 49, 215)
    assert await usage(EventQuery(key_ids=("k5",), models=("no-such-model",))) == (0, 0, 0)


# -- failures -----------------------------------------------------------------------------


async def test_unreachable_database_is_unavailable(tmp_path: Path, free_port: int) -> None:
    nobody_listens = PostgresSettings(hosts=("127.0.0.1",), port=free_port, db_name="test")
    # Not "missing directory": aiosqlite's failed-connect path leaves a thread that outlives the loop.
    not_a_database = tmp_path / "garbage.sqlite3"
    not_a_database.write_bytes(b"this is not a SQLite database file" * 100)
    for engine in (sqlite_engine(not_a_database), postgres_engine(nobody_listens)):
        store = SqlEventStore(engine)
        try:
            with pytest.raises(Unavailable):
                await store.insert_events([E1])
            with pytest.raises(Unavailable):
                await store.query_events(EventQuery())
            with pytest.raises(Unavailable):
                await store.report(ReportQuery(start=T, end=T + 60, increment=60))
        finally:
            await engine.dispose()


async def test_a_policy_verdict_round_trips(stores: SqlStores) -> None:
    screened = dataclasses.replace(E1, id="p1", action="redacted", pii_entities=("email", "regex[0]"))
    await stores.events.insert_events([screened])
    [stored] = await stores.events.query_events(EventQuery(key_ids=(E1.key_id,)))
    assert stored == screened


async def test_correlation_id_and_captured_bodies(stores: SqlStores) -> None:
    captured = dataclasses.replace(
        E1, id="b1", correlation_id="req-7", request_body='{"a":"\x00é"}', response_body="data: x\n\n"
    )
    await stores.events.insert_events([captured, dataclasses.replace(E2, correlation_id="req-8")])
    [listed] = await stores.events.query_events(EventQuery(correlation_id="req-7"))
    assert listed == dataclasses.replace(captured, request_body="", response_body="")  # bodies not read
    [full] = await stores.events.query_events(EventQuery(correlation_id="req-7", include_bodies=True))
    assert full == dataclasses.replace(captured, request_body='{"a":"\\x00é"}')  # NUL stored escaped
    assert await stores.events.count_events(EventQuery(correlation_id="req-8")) == 1
    assert await stores.events.query_events(EventQuery(correlation_id="req")) == []  # exact match only
