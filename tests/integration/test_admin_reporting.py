"""Admin API over HTTP: events, time-bucketed reporting and key spend, against hand-computed values."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bricksllm.domain.models import Event
from tests.contract.test_counters import add_spend
from tests.integration.admin_harness import Admin, problem_fields, running_admin


def ev(id: str, t: int, key: str, status: int, latency: int, **kw: Any) -> Event:
    return Event(
        id=id,
        created_at=t,
        key_id=key,
        provider="openai",
        model="gpt-4o",
        status=status,
        path="/api/providers/openai/v1/chat/completions",
        method="POST",
        latency_in_ms=latency,
        **kw,
    )


EVENTS = [
    ev(
        "e1",
        1000,
        "k1",
        200,
        100,
        tags=("a", "b"),
        cost_micros=1_500_000,
        prompt_token_count=10,
        completion_token_count=5,
        custom_id="c1",
    ),
    ev("e2", 1059, "k1", 201, 300, tags=("a",), cost_micros=500_000, prompt_token_count=20),
    ev("e3", 1061, "k2", 429, 5, tags=("b",)),
    ev(
        "e4",
        1130,
        "k2",
        500,
        50,
        tags=("a", "b"),
        cost_micros=250_000,
        prompt_token_count=7,
        completion_token_count=3,
        custom_id="c1",
    ),
    ev("e5", 1180, "k1", 200, 1000),  # at `end`: outside the report
    ev("e6", 999, "k3", 200, 1000),  # before `start`
]


@pytest.fixture
async def admin(tmp_path: Path) -> AsyncIterator[Admin]:
    async with running_admin(tmp_path) as a:
        await a.stores.events.insert_events(EVENTS)
        yield a


async def test_events_have_the_reference_fields(admin: Admin) -> None:
    events = await admin.ok("GET", "/api/events?customId=c1")
    assert [e["id"] for e in events] == ["e4", "e1"]  # newest first
    assert events[1] == {
        "id": "e1",
        "created_at": 1000,
        "tags": ["a", "b"],
        "key_id": "k1",
        "cost_in_usd": 1.5,
        "provider": "openai",
        "model": "gpt-4o",
        "status": 200,
        "prompt_token_count": 10,
        "completion_token_count": 5,
        "latency_in_ms": 100,
        "path": "/api/providers/openai/v1/chat/completions",
        "method": "POST",
        "custom_id": "c1",
        "action": "",
        "pii_entities": [],
        "route_id": "",
        "route_step": -1,
        "attempts": 0,
        "cached": False,
        "correlation_id": "",
        "request_body": None,  # captured bodies: only with includeBodies=true
        "response_body": None,
    }


@pytest.mark.parametrize(
    ("query", "ids"),
    [
        ("", ["e5", "e4", "e3", "e2", "e1", "e6"]),
        ("?keyIds=k1", ["e5", "e2", "e1"]),
        ("?keyIds=k2&keyIds=k3", ["e4", "e3", "e6"]),
        ("?keyIds=k2,k3", ["e4", "e3", "e6"]),
        ("?tags=a&tags=b", ["e4", "e1"]),
        ("?tags=b", ["e4", "e3", "e1"]),
        ("?start=1000&end=1180", ["e4", "e3", "e2", "e1"]),
        ("?start=1100", ["e5", "e4"]),
        ("?end=1000", ["e6"]),
        ("?limit=2&offset=1", ["e4", "e3"]),
        ("?limit=1000&offset=5", ["e6"]),
        ("?keyIds=k1&tags=a&start=1050", ["e2"]),
        ("?customId=none", []),
    ],
)
async def test_event_filters(admin: Admin, query: str, ids: list[str]) -> None:
    assert [e["id"] for e in await admin.ok("GET", "/api/events" + query)] == ids


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=abc", "limit"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=1.5", "limit"),
        ("offset=-1", "offset"),
        ("start=1.5", "start"),
        ("end=x", "end"),
        ("start=2000&end=1000", "start"),
        ("start=99999999999999999999", "start"),
    ],
)
async def test_event_query_rejects_bad_numbers(admin: Admin, query: str, field: str) -> None:
    status, data = await admin.call("GET", "/api/events?" + query)
    assert status == 400 and data["type"] == "/errors/validation"
    assert problem_fields(data) == [field]


def point(
    t: int,
    n: int = 0,
    cost: float = 0.0,
    latency: float = 0.0,
    prompt: int = 0,
    completion: int = 0,
    success: int = 0,
    p50: float = 0.0,
    p99: float = 0.0,
) -> dict[str, Any]:
    return {
        "timeStamp": t,
        "numberOfRequests": n,
        "costInUsd": cost,
        "latencyInMs": latency,
        "promptTokenCount": prompt,
        "completionTokenCount": completion,
        "successCount": success,
        "latencyInMsMedian": pytest.approx(p50),
        "latencyInMs99th": pytest.approx(p99),
    }


async def test_report_buckets_means_and_percentiles(admin: Admin) -> None:
    report = await admin.ok("POST", "/api/reporting/events", {"start": 1000, "end": 1180, "increment": 60})
    assert report == {
        "dataPoints": [
            # e1 + e2: latencies 100, 300 -> median 200, p99 100 + 0.99 * 200 = 298
            point(1000, n=2, cost=2.0, latency=200.0, prompt=30, completion=5, success=2, p50=200, p99=298),
            point(1060, n=1, latency=5.0, p50=5, p99=5),  # e3 (429: not a success)
            point(1120, n=1, cost=0.25, latency=50.0, prompt=7, completion=3, p50=50, p99=50),  # e4 (500)
        ],
        # latencies 5, 50, 100, 300: median between 50 and 100; p99 at 2.97 -> 100 + 0.97 * 200
        "latencyInMsMedian": 75.0,
        "latencyInMs99th": pytest.approx(294.0),
    }


@pytest.mark.parametrize(
    ("filters", "points", "median", "p99"),
    [
        (
            {"keyIds": ["k1"]},
            [point(1000, 2, 2.0, 200.0, 30, 5, 2, 200, 298), point(1060), point(1120)],
            200.0,
            298.0,
        ),
        (
            {"tags": ["a", "b"]},
            [
                point(1000, 1, 1.5, 100.0, 10, 5, 1, 100, 100),
                point(1060),
                point(1120, 1, 0.25, 50.0, 7, 3, 0, 50, 50),
            ],
            75.0,
            99.5,
        ),
        (
            {"customIds": ["c1"]},
            [
                point(1000, 1, 1.5, 100.0, 10, 5, 1, 100, 100),
                point(1060),
                point(1120, 1, 0.25, 50.0, 7, 3, 0, 50, 50),
            ],
            75.0,
            99.5,
        ),
        ({"keyIds": ["nobody"]}, [point(1000), point(1060), point(1120)], 0.0, 0.0),
    ],
)
async def test_report_filters_apply_to_buckets_and_percentiles(
    admin: Admin, filters: dict[str, Any], points: list[dict[str, Any]], median: float, p99: float
) -> None:
    report = await admin.ok(
        "POST", "/api/reporting/events", {"start": 1000, "end": 1180, "increment": 60, **filters}
    )
    assert report["dataPoints"] == points
    assert report["latencyInMsMedian"] == pytest.approx(median)
    assert report["latencyInMs99th"] == pytest.approx(p99)


async def test_report_uneven_last_bucket_and_bucket_limit(admin: Admin) -> None:
    report = await admin.ok("POST", "/api/reporting/events", {"start": 1000, "end": 1061, "increment": 60})
    assert [p["timeStamp"] for p in report["dataPoints"]] == [1000, 1060]
    assert report["dataPoints"][1]["numberOfRequests"] == 0  # e3 at 1061 is at `end`, excluded
    many = await admin.ok("POST", "/api/reporting/events", {"start": 0, "end": 10_000, "increment": 1})
    assert len(many["dataPoints"]) == 10_000


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"start": 1000, "end": 1000, "increment": 60}, "start"),
        ({"start": 2000, "end": 1000, "increment": 60}, "start"),
        ({"start": 1000, "end": 2000, "increment": 0}, "increment"),
        ({"start": 1000, "end": 2000, "increment": -5}, "increment"),
        ({"start": 0, "end": 10_001, "increment": 1}, "increment"),
        ({"end": 2000, "increment": 60}, "start"),
        ({"start": 1000, "increment": 60}, "end"),
        ({"start": 1000, "end": 2000}, "increment"),
        ({"start": "1000", "end": 2000, "increment": 60}, "start"),
        ({"start": 1000, "end": 2000.5, "increment": 60}, "end"),
        ({"start": -1, "end": 2000, "increment": 60}, "start"),
        ({"start": 1000, "end": 2000, "increment": 60, "keyIds": [""]}, "keyIds[0]"),
        ({"start": 1000, "end": 2000, "increment": 60, "tags": "a"}, "tags"),
        ({"start": 1000, "end": 2000, "increment": 60, "customIds": [1]}, "customIds[0]"),
        ({"start": 1000, "end": 2000, "increment": 60, "filters": ["model"]}, "filters"),
    ],
)
async def test_report_rejects_bad_requests(admin: Admin, body: dict[str, Any], field: str) -> None:
    status, data = await admin.call("POST", "/api/reporting/events", body)
    assert status == 400, data
    assert field in problem_fields(data)


async def test_key_spend(admin: Admin) -> None:
    setting = await admin.setting()
    key = await admin.key(setting["id"])
    assert await admin.ok("GET", f"/api/reporting/keys/{key['keyId']}") == {
        "id": key["keyId"],
        "costInMicroDollars": 0,
        "costInUsd": 0.0,
    }
    await add_spend(admin.counters, key["keyId"], 1_234_567)
    await add_spend(admin.counters, key["keyId"], 1)
    assert await admin.ok("GET", f"/api/reporting/keys/{key['keyId']}") == {
        "id": key["keyId"],
        "costInMicroDollars": 1_234_568,
        "costInUsd": 1.234568,
    }
    status, data = await admin.call("GET", "/api/reporting/keys/unknown-key")
    assert status == 404 and data["type"] == "/errors/not-found"


@pytest.mark.parametrize(
    ("query", "ids", "total"),
    [
        ("?status=4xx&returnCount=true", ["e3"], 1),
        ("?status=500,429&returnCount=1", ["e4", "e3"], 2),
        ("?status=2xx&keyIds=k1&limit=1&returnCount=true", ["e5"], 3),  # e5, e2, e1
        ("?status=201&returnCount=true", ["e2"], 1),
        ("?model=gpt-4o&limit=2&offset=1&returnCount=true", ["e4", "e3"], 6),
        ("?model=gpt-4o-mini&returnCount=true", [], 0),
        ("?model=gpt-4o-mini&model=gpt-4o&status=5xx&returnCount=true", ["e4"], 1),
    ],
)
async def test_event_model_status_filters_and_total_count(
    admin: Admin, query: str, ids: list[str], total: int
) -> None:
    resp = await admin.client.get("/api/events" + query)
    assert resp.status == 200
    assert [e["id"] for e in await resp.json()] == ids
    assert resp.headers["X-Total-Count"] == str(total)


async def test_total_count_only_when_asked(admin: Admin) -> None:
    for query in ("", "?returnCount=false", "?returnCount=0"):
        resp = await admin.client.get("/api/events" + query)
        assert resp.status == 200 and "X-Total-Count" not in resp.headers


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=abc", "status"),
        ("status=6xx", "status"),
        ("status=99", "status"),
        ("status=4x", "status"),
        ("status=600", "status"),
        ("returnCount=yes", "returnCount"),
    ],
)
async def test_event_filters_reject_bad_values(admin: Admin, query: str, field: str) -> None:
    status, data = await admin.call("GET", "/api/events?" + query)
    assert status == 400 and problem_fields(data) == [field]


async def test_every_keys_spend_all_time_and_in_its_window(admin: Admin) -> None:
    setting = await admin.setting()
    plain = await admin.key(setting["id"], "secret-plain", name="plain")
    daily = await admin.key(
        setting["id"], "secret-daily", name="daily", costLimitInUsdOverTime=5, costLimitInUsdUnit="d"
    )
    # admin.now is T0 = 1_700_000_000 (2023-11-14 22:13:20 UTC): its day started at 1_699_920_000.
    day = 1_699_920_000
    await admin.stores.events.insert_events(
        [
            ev("w1", day - 1, daily["keyId"], 200, 1, cost_micros=4_000_000),  # yesterday: all-time only
            ev("w2", day, daily["keyId"], 200, 1, cost_micros=1_250_000),
            ev("w3", day + 100, daily["keyId"], 500, 1, cost_micros=250_000),
        ]
    )
    await add_spend(admin.counters, daily["keyId"], 5_500_000)
    await add_spend(admin.counters, plain["keyId"], 42)
    usages = await admin.ok("GET", "/api/reporting/keys")
    usages.sort(key=lambda u: u["id"] != plain["keyId"])  # list order is the store's; plain first
    assert usages == [
        {
            "id": plain["keyId"],
            "costInMicroDollars": 42,
            "costInUsd": 0.000042,
            "costInUsdOverTime": 0.0,
            "windowStart": None,
            "windowEnd": None,
        },
        {
            "id": daily["keyId"],
            "costInMicroDollars": 5_500_000,
            "costInUsd": 5.5,
            "costInUsdOverTime": 1.5,
            "windowStart": day,
            "windowEnd": day + 86_400,
        },
    ]
    only = await admin.ok("GET", f"/api/reporting/keys?keyIds={daily['keyId']}")
    assert only == usages[1:]
    status, data = await admin.call("GET", "/api/reporting/keys?keyIds=nobody")
    assert status == 404 and data["type"] == "/errors/not-found"
