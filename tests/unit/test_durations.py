"""The one duration parser: TTLs, timeouts, intervals."""

from __future__ import annotations

import pytest

from bricksllm.domain.durations import MAX_SECONDS, parse_duration, parse_ttl


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2d", 172_800),
        ("1h30m", 5_400),
        ("15m", 900),
        ("30s", 30),
        ("30", 30),
        ("1.5", 1.5),
        ("500ms", 0.5),
        ("1m30s", 90),
        ("1d2h3m4s", 93_784),
        ("1.5h", 5_400),
        ("  2h ", 7_200),
        ("0", 0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text",
    ["", "   ", "abc", "-1h", "-5", "5x", "h", "1h 30m", "1h-30m", "2w", "1y", "1H", "inf", "nan", "1e400",
     "9999999999999999d", "1e3"],
)  # fmt: skip
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_the_longest_duration_is_a_century() -> None:
    assert parse_duration(f"{MAX_SECONDS}") == MAX_SECONDS
    with pytest.raises(ValueError, match="100 years"):
        parse_duration(f"{MAX_SECONDS + 1}s")


@pytest.mark.parametrize(("text", "seconds"), [("2d", 172_800), ("1500ms", 1), ("1s999ms", 1), ("0h1s", 1)])
def test_parse_ttl_is_whole_seconds(text: str, seconds: int) -> None:
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["0s", "0", "500ms", ""])
def test_parse_ttl_rejects_less_than_a_second(text: str) -> None:
    with pytest.raises(ValueError):
        parse_ttl(text)
