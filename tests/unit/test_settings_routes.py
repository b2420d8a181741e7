"""The ROUTE_* settings: read from the environment, defaults, and refused values naming the variable."""

from __future__ import annotations

import pytest

from bricksllm.settings import Settings, SettingsError


def test_route_settings_defaults_and_values() -> None:
    d = Settings.from_env({})
    assert (d.route_retry_after_max, d.route_breaker_failures, d.route_breaker_cooldown) == (30.0, 5, 30.0)
    assert (d.route_cache_max_entries, d.route_cache_max_bytes) == (10_000, 256 * 1024 * 1024)
    s = Settings.from_env(
        {
            "ROUTE_RETRY_AFTER_MAX": "2m", "ROUTE_BREAKER_FAILURES": "3", "ROUTE_BREAKER_COOLDOWN": "500ms",
            "ROUTE_CACHE_MAX_ENTRIES": "50", "ROUTE_CACHE_MAX_BYTES": "4096",
        }
    )  # fmt: skip
    assert (s.route_retry_after_max, s.route_breaker_failures, s.route_breaker_cooldown) == (120.0, 3, 0.5)
    assert (s.route_cache_max_entries, s.route_cache_max_bytes) == (50, 4096)


@pytest.mark.parametrize(
    ("name", "value"),
    [("ROUTE_BREAKER_FAILURES", "0"), ("ROUTE_BREAKER_COOLDOWN", "soon"), ("ROUTE_RETRY_AFTER_MAX", "0"),
     ("ROUTE_CACHE_MAX_ENTRIES", "many"), ("ROUTE_CACHE_MAX_BYTES", "10")],
)  # fmt: skip
def test_bad_route_settings_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})
