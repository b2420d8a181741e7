"""Report arithmetic that SQL cannot do everywhere: time buckets and continuous percentiles.

PostgreSQL computes percentiles itself (`percentile_cont ... WITHIN GROUP`); SQLite has no such
aggregate, so the SQLite backend fetches the sorted latencies and calls `percentile_cont` here,
which follows PostgreSQL's interpolation step for step so both backends report the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def bucket_starts(start: int, end: int, increment: int) -> list[int]:
    """Starts of the buckets [s, s + increment) that begin before `end`.

    Unlike the reference (`generate_series(start, end, increment)`), no bucket starts at `end`:
    events are filtered to [start, end), so such a bucket would always be empty.
    """
    if increment <= 0:
        raise ValueError("increment must be positive")
    return list(range(start, end, increment))


def bucket_index(created_at: int, start: int, increment: int) -> int:
    """Which bucket an event at `created_at` (>= start) falls into."""
    return (created_at - start) // increment


def percentile_cont(sorted_values: Sequence[float], q: float) -> float:
    """The continuous percentile `q` (0..1) of ascending values, 0.0 for no values.

    Same computation as PostgreSQL's `percentile_cont`: position q*(n-1), linear interpolation
    between the neighbouring values.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError("q must be between 0 and 1")
    if not sorted_values:
        return 0.0
    position = q * (len(sorted_values) - 1)
    lower = math.floor(position)
    upper = math.ceil(position)
    first = float(sorted_values[lower])
    if lower == upper:
        return first
    second = float(sorted_values[upper])
    return first + (position - lower) * (second - first)
