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
    key_limits,
    plan,
    window,
)
from bricksllm.domain.models import Key, Limit


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
    assert Quota("cost", 5, "key1").counter_id == "key1:spend"
    assert Quota("requests", 5, "key1", w).counter_id == "key1:rate:m:1700000040"
    assert Quota("cost", 5, "key1", w).counter_id == "key1:spend_window:m:1700000040"
    assert Quota("tokens", 5, "key1", w).counter_id == "key1:tokens:m:1700000040"
    assert Quota("tokens", 5, "key1").counter_id == "key1:tokens"
    assert Quota("cost", 5, "tag:team").counter_id == "tag:team:spend"
    # The limit is not part of the id: changing a key's limit keeps its count.
    assert Quota("requests", 1, "k", w).counter_id == Quota("requests", 99, "k", w).counter_id
    assert Quota("requests", 1, "k", w).counter_id != Quota("requests", 1, "k", Window("m", 1, 61)).counter_id


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
    assert Quota("requests", 3, "k", Window("m", 1_000, 1_060)).retry_after(now) == expected


def test_retry_after_all_time_is_zero() -> None:
    assert Quota("cost", 3, "k").retry_after(1_000) == 0


def test_only_spend_and_token_quotas_with_a_limit_reserve() -> None:
    assert Quota("cost", 3, "k").reserves and Quota("tokens", 3, "k").reserves
    assert not Quota("requests", 3, "k").reserves and not Quota("cost", 0, "k").reserves


# --- plan() -------------------------------------------------------------------------------

NOW = ts(2024, 2, 29, 12, 30, 15) + 0.25
HOUR = Window("h", ts(2024, 2, 29, 12), ts(2024, 2, 29, 13))
FEB = Window("mo", ts(2024, 2, 1), ts(2024, 3, 1))
KEPT = Quota("cost", 0, "k")  # the all-time spend, kept for reporting when no limit is on it


def key(**limits: object) -> Key:
    return Key("k", "name", "hash", 0, 0, **limits)  # type: ignore[arg-type]


TOTAL = [{}, {"cost_limit_micros": 5_000_000}]
OVER_TIME = [
    {},
    {"cost_limit_over_time_micros": 1_000_000},  # an amount without a unit: ignored
    {"cost_limit_unit": "d"},  # a unit without an amount: ignored
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
def test_plan_every_combination_of_the_shorthand_fields(total: dict, over_time: dict, rate: dict) -> None:
    p = plan(key(**total, **over_time, **rate), NOW)
    expected = [Quota("cost", 5_000_000, "k", None, "costLimitInUsd")] if total else []
    unit = over_time.get("cost_limit_unit")
    if unit and over_time.get("cost_limit_over_time_micros"):
        expected.append(Quota("cost", 1_000_000, "k", window(unit, NOW), "costLimitInUsdOverTime"))
    if rate.get("rate_limit_over_time") and rate.get("rate_limit_unit"):
        w = window(rate["rate_limit_unit"], NOW)
        expected.append(Quota("requests", rate["rate_limit_over_time"], "k", w, "rateLimitOverTime"))
    if not total:
        expected.append(KEPT)
    assert p == AdmissionPlan(tuple(expected))
    assert p.empty == (len(expected) == 1 and not total)


def test_plan_with_several_windows_models_and_tag_budgets() -> None:
    k = key(
        cost_limit_micros=500_000_000,
        rate_limit_over_time=60,
        rate_limit_unit="m",
        tags=("team-a", "other"),
        more_limits=(
            Limit("requests", 1000, "d"),
            Limit("cost", 5_000_000, "d"),
            Limit("tokens", 10_000, "h"),
        ),
        model_limits={"gpt-4o": (Limit("cost", 1_000_000, "mo"),)},
    )
    budgets = {"team-a": [Limit("cost", 100_000_000, "mo")], "nobody": [Limit("cost", 1, "total")]}
    minute, day = window("m", NOW), window("d", NOW)
    assert plan(k, NOW, "gpt-4o", budgets).quotas == (
        Quota("cost", 500_000_000, "k", None, "costLimitInUsd"),
        Quota("requests", 60, "k", minute, "rateLimitOverTime"),
        Quota("requests", 1000, "k", day, "rateLimits"),
        Quota("cost", 5_000_000, "k", day, "costLimits"),
        Quota("tokens", 10_000, "k", HOUR, "tokenLimits"),
        Quota("cost", 1_000_000, "k:model:gpt-4o", FEB, "modelLimits[gpt-4o]"),
        Quota("cost", 100_000_000, "tag:team-a", FEB, "budget of tag team-a"),
    )
    assert len(plan(k, NOW, "gpt-4o-mini", budgets).quotas) == 6  # no override for that model
    assert key_limits(k)[:2] == (Limit("cost", 500_000_000, "total"), Limit("requests", 60, "m"))


def test_plan_of_a_key_without_limits_only_keeps_its_spend() -> None:
    p = plan(key(), NOW)
    assert p == AdmissionPlan((KEPT,)) and p.empty


# --- decide() -----------------------------------------------------------------------------

W = Window("m", 0, 60)
SPEND, RATE_Q, TOKENS = Quota("cost", 100, "k"), Quota("requests", 3, "k", W), Quota("tokens", 50, "k", W)
FULL = AdmissionPlan((SPEND, RATE_Q, TOKENS))


@pytest.mark.parametrize(
    ("counted", "reserved", "cost", "tokens", "denied"),
    [
        ([0, 0, 0], [0, 0, 0], 100, 50, None),  # exactly the limit: admitted
        ([0, 0, 0], [0, 0, 0], 101, 0, SPEND),  # an estimate alone over the limit
        ([60, 0, 0], [30, 0, 0], 10, 0, None),
        ([60, 0, 0], [30, 0, 0], 11, 0, SPEND),  # spent + reserved + estimate > limit
        ([0, 2, 0], [0, 0, 0], 0, 0, None),  # the last request
        ([0, 3, 0], [0, 0, 0], 0, 0, RATE_Q),
        ([0, 0, 20], [0, 0, 25], 0, 6, TOKENS),
        ([100, 3, 50], [0, 0, 0], 1, 1, SPEND),  # the first quota that refuses is named
    ],
)
def test_decide(
    counted: list[int], reserved: list[int], cost: int, tokens: int, denied: Quota | None
) -> None:
    admission = decide(FULL, counted, reserved, cost, tokens)
    assert admission == Admission(denied is None, denied, tuple(counted), tuple(reserved))


def test_what_is_left_after_an_admission() -> None:
    admission = decide(FULL, [60, 1, 10], [30, 0, 5], 10, 20)
    assert admission.allowed and admission.left(FULL, 10, 20) == [0, 1, 15]
    refused = decide(FULL, [60, 1, 10], [30, 0, 5], 11, 20)
    assert refused.left(FULL, 11, 20) == [10, 2, 35]  # a refusal takes nothing


def test_a_kept_quota_never_refuses() -> None:
    assert decide(AdmissionPlan((KEPT,)), [10**12], [0], 10**9, 0).allowed


def test_decide_needs_one_value_per_quota() -> None:
    with pytest.raises(ValueError):
        decide(FULL, [0], [0], 0, 0)
