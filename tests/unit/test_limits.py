"""The pure limit rules: calendar windows, quotas, admission plans, the admission decision, TTLs.

Table-driven; timestamps are built from explicit UTC datetimes so every case reads as a date.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from bricksllm.domain.limits import (
    COST_UNITS,
    RATE_UNITS,
    Admission,
    AdmissionPlan,
    Quota,
    Window,
    decide,
    plan,
    window,
)
from bricksllm.domain.models import Key


def ts(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp())


# --- window() -----------------------------------------------------------------------------

WINDOW_CASES = [
    # unit, now, start, end
    ("s", ts(2024, 3, 5, 12, 3, 7) + 0.999, ts(2024, 3, 5, 12, 3, 7), ts(2024, 3, 5, 12, 3, 8)),
    ("s", ts(2024, 3, 5, 12, 3, 7), ts(2024, 3, 5, 12, 3, 7), ts(2024, 3, 5, 12, 3, 8)),
    ("m", ts(2024, 3, 5, 12, 3, 59) + 0.5, ts(2024, 3, 5, 12, 3), ts(2024, 3, 5, 12, 4)),
    ("m", ts(2024, 3, 5, 12, 4), ts(2024, 3, 5, 12, 4), ts(2024, 3, 5, 12, 5)),  # boundary opens
    ("m", ts(2023, 12, 31, 23, 59, 30), ts(2023, 12, 31, 23, 59), ts(2024, 1, 1)),
    ("h", ts(2024, 3, 5, 12, 59, 59), ts(2024, 3, 5, 12), ts(2024, 3, 5, 13)),
    ("h", ts(2024, 3, 5, 23, 30), ts(2024, 3, 5, 23), ts(2024, 3, 6)),
    ("d", ts(2024, 3, 5, 0, 0, 0), ts(2024, 3, 5), ts(2024, 3, 6)),
    ("d", ts(2024, 3, 5, 23, 59, 59), ts(2024, 3, 5), ts(2024, 3, 6)),
    ("d", ts(2024, 2, 28, 10), ts(2024, 2, 28), ts(2024, 2, 29)),  # leap day follows
    ("d", ts(2024, 2, 29, 10), ts(2024, 2, 29), ts(2024, 3, 1)),
    ("d", ts(2023, 12, 31, 18), ts(2023, 12, 31), ts(2024, 1, 1)),  # year rollover
    ("mo", ts(2024, 3, 5, 12), ts(2024, 3, 1), ts(2024, 4, 1)),
    ("mo", ts(2024, 1, 1), ts(2024, 1, 1), ts(2024, 2, 1)),  # first instant of the month
    ("mo", ts(2024, 1, 31, 23, 59, 59), ts(2024, 1, 1), ts(2024, 2, 1)),
    ("mo", ts(2023, 12, 15), ts(2023, 12, 1), ts(2024, 1, 1)),  # December rolls into next year
    ("mo", ts(2023, 12, 31, 23, 59, 59), ts(2023, 12, 1), ts(2024, 1, 1)),
    ("mo", ts(2024, 2, 29, 12), ts(2024, 2, 1), ts(2024, 3, 1)),  # leap year: 29 days
    ("mo", ts(2023, 2, 28, 12), ts(2023, 2, 1), ts(2023, 3, 1)),  # common year: 28 days
    ("mo", ts(2000, 2, 15), ts(2000, 2, 1), ts(2000, 3, 1)),  # divisible by 400: leap
    ("mo", ts(2100, 2, 15), ts(2100, 2, 1), ts(2100, 3, 1)),  # divisible by 100: not leap
    ("mo", ts(2024, 4, 30, 23), ts(2024, 4, 1), ts(2024, 5, 1)),  # 30-day month
]


@pytest.mark.parametrize(("unit", "now", "start", "end"), WINDOW_CASES)
def test_window(unit: str, now: float, start: int, end: int) -> None:
    assert window(unit, now) == Window(unit, start, end)


@pytest.mark.parametrize(
    ("year", "month", "days"),
    [(2024, 2, 29), (2023, 2, 28), (2000, 2, 29), (2100, 2, 28), (2024, 12, 31), (2024, 11, 30)],
)
def test_month_window_length(year: int, month: int, days: int) -> None:
    w = window("mo", ts(year, month, 10))
    assert w.end - w.start == days * 86_400


@pytest.mark.parametrize("unit", sorted(RATE_UNITS | COST_UNITS))
def test_window_contains_now_and_the_next_starts_where_it_ends(unit: str) -> None:
    for now in (ts(2024, 2, 29, 23, 59, 59) + 0.5, ts(2023, 12, 31, 23, 59, 59), ts(1999, 1, 1)):
        w = window(unit, now)
        assert w.start <= now < w.end
        assert window(unit, w.end).start == w.end
        assert window(unit, w.start) == w


def test_units() -> None:
    assert sorted(RATE_UNITS) == ["d", "h", "m", "s"]
    assert sorted(COST_UNITS) == ["d", "h", "m", "mo"]


@pytest.mark.parametrize("unit", ["y", "w", "", "M"])
def test_window_rejects_unknown_units(unit: str) -> None:
    with pytest.raises((KeyError, ValueError)):
        window(unit, ts(2024, 1, 1))


# --- Quota --------------------------------------------------------------------------------


def test_counter_ids() -> None:
    w = Window("m", 1_700_000_040, 1_700_000_100)
    assert Quota("spend", 5).counter_id("key1") == "key1:spend"
    assert Quota("rate", 5, w).counter_id("key1") == "key1:rate:m:1700000040"
    assert Quota("spend_window", 5, w).counter_id("key1") == "key1:spend_window:m:1700000040"
    # The limit is not part of the id: changing a key's limit keeps its count.
    assert Quota("rate", 1, w).counter_id("k") == Quota("rate", 99, w).counter_id("k")
    assert Quota("rate", 1, w).counter_id("k") != Quota("rate", 1, Window("m", 1, 61)).counter_id("k")


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (1_000, 60),  # at the start: the whole window
        (1_030, 30),
        (1_030.7, 29),  # whole seconds, rounded down
        (1_059.5, 1),  # never less than one second
        (1_060, 1),  # at or after the end: still one
        (2_000, 1),
    ],
)
def test_retry_after(now: float, expected: int) -> None:
    assert Quota("rate", 3, Window("m", 1_000, 1_060)).retry_after(now) == expected


def test_retry_after_all_time_is_zero() -> None:
    assert Quota("spend", 3).retry_after(1_000) == 0


# --- plan() -------------------------------------------------------------------------------

NOW = ts(2024, 2, 29, 12, 30, 15) + 0.25


def key(**limits: int | str) -> Key:
    return Key("k", "name", "hash", 0, 0, **limits)  # type: ignore[arg-type]


TOTAL = [{}, {"cost_limit_micros": 5_000_000}]
OVER_TIME = [
    {},
    {"cost_limit_over_time_micros": 1_000_000},  # an amount without a unit: ignored
    {"cost_limit_unit": "d"},  # a unit without an amount: spend still recorded per window
    {"cost_limit_over_time_micros": 1_000_000, "cost_limit_unit": "d"},
    {"cost_limit_over_time_micros": 1_000_000, "cost_limit_unit": "mo"},
]
RATE = [
    {},
    {"rate_limit_over_time": 10},  # without a unit: no rate limit
    {"rate_limit_unit": "m"},  # without an amount: no rate limit
    {"rate_limit_over_time": 10, "rate_limit_unit": "m"},
    {"rate_limit_over_time": 1, "rate_limit_unit": "s"},
]


@pytest.mark.parametrize(("total", "over_time", "rate"), list(itertools.product(TOTAL, OVER_TIME, RATE)))
def test_plan_every_combination(total: dict, over_time: dict, rate: dict) -> None:
    k = key(**total, **over_time, **rate)
    p = plan(k, NOW)
    expected_spend: list[Quota] = []
    if total:
        expected_spend.append(Quota("spend", 5_000_000))
    unit = over_time.get("cost_limit_unit")
    expected_window = window(unit, NOW) if unit else None
    if unit and over_time.get("cost_limit_over_time_micros"):
        expected_spend.append(Quota("spend_window", 1_000_000, expected_window))
    expected_rate = None
    if rate.get("rate_limit_over_time") and rate.get("rate_limit_unit"):
        expected_rate = Quota("rate", rate["rate_limit_over_time"], window(rate["rate_limit_unit"], NOW))
    assert p == AdmissionPlan(tuple(expected_spend), expected_rate, expected_window)
    assert p.empty == (not expected_spend and expected_rate is None)


def test_plan_with_every_limit() -> None:
    k = key(
        cost_limit_micros=5_000_000,
        cost_limit_over_time_micros=1_000_000,
        cost_limit_unit="mo",
        rate_limit_over_time=100,
        rate_limit_unit="h",
    )
    feb = Window("mo", ts(2024, 2, 1), ts(2024, 3, 1))
    assert plan(k, NOW) == AdmissionPlan(
        (Quota("spend", 5_000_000), Quota("spend_window", 1_000_000, feb)),
        Quota("rate", 100, Window("h", ts(2024, 2, 29, 12), ts(2024, 2, 29, 13))),
        feb,
    )


def test_plan_of_a_key_without_limits_is_empty() -> None:
    p = plan(key(), NOW)
    assert p == AdmissionPlan() and p.empty and p.spend_window is None


def test_a_plan_with_only_a_spend_window_to_record_is_empty() -> None:
    p = plan(key(cost_limit_unit="h"), NOW)
    assert p.empty
    assert p.spend_window == Window("h", ts(2024, 2, 29, 12), ts(2024, 2, 29, 13))


# --- decide() -----------------------------------------------------------------------------

W = Window("m", 0, 60)
TOTAL_Q, WINDOW_Q, RATE_Q = Quota("spend", 100), Quota("spend_window", 10, W), Quota("rate", 3, W)
FULL = AdmissionPlan((TOTAL_Q, WINDOW_Q), RATE_Q, W)


@pytest.mark.parametrize(
    ("p", "spent", "used", "expected"),
    [
        (AdmissionPlan(), [], 0, Admission(True, None, -1)),
        (AdmissionPlan((TOTAL_Q,)), [99], 0, Admission(True, None, -1)),
        (AdmissionPlan((TOTAL_Q,)), [100], 0, Admission(False, TOTAL_Q, -1)),  # at the limit: denied
        (AdmissionPlan((TOTAL_Q,)), [250], 0, Admission(False, TOTAL_Q, -1)),
        (AdmissionPlan((), RATE_Q), [], 0, Admission(True, None, 2)),
        (AdmissionPlan((), RATE_Q), [], 2, Admission(True, None, 0)),  # the last one
        (AdmissionPlan((), RATE_Q), [], 3, Admission(False, RATE_Q, 0)),
        (AdmissionPlan((), RATE_Q), [], 7, Admission(False, RATE_Q, 0)),
        (FULL, [0, 0], 0, Admission(True, None, 2)),
        (FULL, [99, 9], 2, Admission(True, None, 0)),
        (FULL, [100, 10], 3, Admission(False, TOTAL_Q, -1)),  # the first exhausted quota wins
        (FULL, [0, 10], 3, Admission(False, WINDOW_Q, -1)),  # spend is checked before rate
        (FULL, [0, 9], 3, Admission(False, RATE_Q, 0)),
    ],
)
def test_decide(p: AdmissionPlan, spent: list[int], used: int, expected: Admission) -> None:
    assert decide(p, spent, used) == expected


def test_decide_needs_one_value_per_spend_quota() -> None:
    with pytest.raises(ValueError):
        decide(FULL, [0], 0)
