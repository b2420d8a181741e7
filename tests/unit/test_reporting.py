"""Pure report arithmetic: bucket boundaries and PostgreSQL-compatible continuous percentiles."""

from __future__ import annotations

import pytest

from bricksllm.domain.reporting import bucket_index, bucket_starts, percentile_cont


@pytest.mark.parametrize(
    ("start", "end", "increment", "expected"),
    [
        (0, 180, 60, [0, 60, 120]),  # no always-empty bucket starting at `end`
        (0, 181, 60, [0, 60, 120, 180]),
        (0, 59, 60, [0]),
        (100, 100, 60, []),
        (100, 50, 60, []),
        (10, 13, 1, [10, 11, 12]),
    ],
)
def test_bucket_starts(start: int, end: int, increment: int, expected: list[int]) -> None:
    assert bucket_starts(start, end, increment) == expected


@pytest.mark.parametrize("increment", [0, -60])
def test_bucket_starts_needs_a_positive_increment(increment: int) -> None:
    with pytest.raises(ValueError, match="increment"):
        bucket_starts(0, 100, increment)


@pytest.mark.parametrize(("created_at", "expected"), [(1000, 0), (1059, 0), (1060, 1), (1119, 1), (1120, 2)])
def test_bucket_index(created_at: int, expected: int) -> None:
    assert bucket_index(created_at, 1000, 60) == expected


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([], 0.5, 0.0),
        ([], 0.99, 0.0),
        ([42], 0.5, 42.0),
        ([42], 0.99, 42.0),
        ([1, 3], 0.5, 2.0),
        ([1, 50, 100, 300, 900], 0.5, 100.0),
        ([1, 50, 100, 300, 900], 0.99, 876.0),  # position 3.96: 300 + 0.96 * 600
        ([1, 100], 0.5, 50.5),
        ([1, 100], 0.99, 99.01),
        ([10, 20, 30, 40], 0.0, 10.0),
        ([10, 20, 30, 40], 1.0, 40.0),
        ([10, 20, 30, 40], 0.25, 17.5),  # position 0.75
        ([5, 5, 5], 0.7, 5.0),
    ],
)
def test_percentile_cont(values: list[int], q: float, expected: float) -> None:
    assert percentile_cont(values, q) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("q", [-0.1, 1.5])
def test_percentile_cont_rejects_fractions_outside_0_1(q: float) -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        percentile_cont([1, 2], q)
