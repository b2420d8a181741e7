"""Admin API over HTTP: events, time-bucketed reporting and key spend, against hand-computed values."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bricksllm.domain.models import Event
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
) -> dict[str, Any]:
    return {
        "timeStamp": t,
        "numberOfRequests": n,
        "costInUsd": cost,
        "latencyInMs": latency,
        "promptTokenCount": prompt,
        "completionTokenCount": completion,
        "successCount": success,
    }


async def test_report_buckets_means_and_percentiles(admin: Admin) -> None:
    report = await admin.ok("POST", "/api/reporting/events", {"start": 1000, "end": 1180, "increment": 60})
    assert report == {
        "dataPoints": [
            point(1000, n=2, cost=2.0, latency=200.0, prompt=30, completion=5, success=2),  # e1 + e2
            point(1060, n=1, latency=5.0),  # e3 (429: not a success)
            point(1120, n=1, cost=0.25, latency=50.0, prompt=7, completion=3),  # e4 (500)
        ],
        # latencies 5, 50, 100, 300: median between 50 and 100; p99 at 2.97 -> 100 + 0.97 * 200
        "latencyInMsMedian": 75.0,
        "latencyInMs99th": pytest.approx(294.0),
    }


@pytest.mark.parametrize(
    ("filters", "points", "median", "p99"),
    [
        ({"keyIds": ["k1"]}, [point(1000, 2, 2.0, 200.0, 30, 5, 2), point(1060), point(1120)], 200.0, 298.0),
        (
            {"tags": ["a", "b"]},
            [point(1000, 1, 1.5, 100.0, 10, 5, 1), point(1060), point(1120, 1, 0.25, 50.0, 7, 3, 0)],
            75.0,
            99.5,
        ),
        (
            {"customIds": ["c1"]},
            [point(1000, 1, 1.5, 100.0, 10, 5, 1), point(1060), point(1120, 1, 0.25, 50.0, 7, 3, 0)],
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
    await admin.counters.settle(key["keyId"], 1_234_567, None)
    await admin.counters.settle(key["keyId"], 1, None)
    assert await admin.ok("GET", f"/api/reporting/keys/{key['keyId']}") == {
        "id": key["keyId"],
        "costInMicroDollars": 1_234_568,
        "costInUsd": 1.234568,
    }
    status, data = await admin.call("GET", "/api/reporting/keys/unknown-key")
    assert status == 404 and data["type"] == "/errors/not-found"
