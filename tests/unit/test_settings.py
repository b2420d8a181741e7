"""Configuration is read once from the environment, validated with messages that name the
variable, and overridden by the CLI flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from bricksllm import cli
from bricksllm.settings import Settings, SettingsError, parse_duration


def test_defaults_are_the_embedded_gateway_on_the_reference_ports() -> None:
    s = Settings.from_env({})
    assert (s.admin_port, s.proxy_port, s.host) == (8001, 8002, "0.0.0.0")
    assert s.postgres is None and s.redis is None
    assert s.sqlite_path == Path("data") / "bricksllm.sqlite3"
    assert s.proxy_timeout == 600 and s.config_refresh_interval == 1 and s.redis_failure_mode == "closed"


def test_admin_api_is_loopback_only_without_a_password() -> None:
    assert Settings.from_env({"BRICKSLLM_HOST": "0.0.0.0"}).admin_host == "127.0.0.1"
    assert Settings.from_env({"BRICKSLLM_HOST": "10.0.0.5", "ADMIN_PASS": "x"}).admin_host == "10.0.0.5"


def test_production_variables() -> None:
    s = Settings.from_env({
        "POSTGRESQL_HOSTS": "db1, db2", "POSTGRESQL_PORT": "6543", "POSTGRESQL_DB_NAME": "bricks",
        "POSTGRESQL_USERNAME": "u", "POSTGRESQL_PASSWORD": "p", "POSTGRESQL_SSL_MODE": "require",
        "POSTGRESQL_READ_TIME_OUT": "2s", "POSTGRESQL_WRITE_TIME_OUT": "500ms", "POSTGRESQL_SCHEMA": "gw",
        "REDIS_HOSTS": "cache", "REDIS_PORT": "6380", "REDIS_PASSWORD": "rp", "REDIS_READ_TIME_OUT": "1s",
        "REDIS_WRITE_TIME_OUT": "250ms", "REDIS_FAILURE_MODE": "open", "IN_MEMORY_DB_UPDATE_INTERVAL": "5s",
        "PROXY_TIMEOUT": "2m",
    })  # fmt: skip
    assert s.postgres is not None and s.redis is not None
    assert s.postgres.hosts == ("db1", "db2") and s.postgres.port == 6543 and s.postgres.schema == "gw"
    assert (s.postgres.read_timeout, s.postgres.write_timeout) == (2.0, 0.5)
    assert s.redis.hosts == ("cache",) and s.redis.port == 6380 and s.redis.write_timeout == 0.25
    assert s.redis_failure_mode == "open" and s.config_refresh_interval == 5 and s.proxy_timeout == 120
    assert "password" not in repr(s.postgres) and "password" not in repr(s.redis)  # never in logs


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"BRICKSLLM_PROXY_PORT": "http"}, "BRICKSLLM_PROXY_PORT"),
        ({"PROXY_TIMEOUT": "soon"}, "PROXY_TIMEOUT"),
        ({"PROXY_TIMEOUT": "0s"}, "PROXY_TIMEOUT"),
        ({"REDIS_HOSTS": "r", "REDIS_FAILURE_MODE": "maybe"}, "REDIS_FAILURE_MODE"),
        ({"POSTGRESQL_HOSTS": "db", "POSTGRESQL_SCHEMA": "x; drop"}, "POSTGRESQL_SCHEMA"),
        ({"STATS_PROVIDER": "newrelic"}, "STATS_PROVIDER"),
        ({"STATS_ENABLED": "perhaps"}, "STATS_ENABLED"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], names: str) -> None:
    with pytest.raises(SettingsError, match=names):
        Settings.from_env(env)


def test_durations() -> None:
    assert parse_duration("X", "500ms") == 0.5 and parse_duration("X", "10m") == 600
    assert parse_duration("X", "1.5") == 1.5 and parse_duration("X", "1d") == 86_400
    with pytest.raises(SettingsError, match="X="):
        parse_duration("X", "inf")


def test_flags_override_the_environment() -> None:
    s = Settings.from_env({"BRICKSLLM_ADMIN_PORT": "9001"}).with_overrides(admin_port=7001, proxy_port=None)
    assert s.admin_port == 7001 and s.proxy_port == 8002


def test_serve_refuses_to_start_on_bad_configuration(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PROXY_TIMEOUT", "forever")
    assert cli.main(["serve"]) == 2
    assert "PROXY_TIMEOUT" in capsys.readouterr().err


def test_serve_reports_a_port_in_use_and_leaves_nothing_open(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = cli.main(["serve", "--host", "127.0.0.1", "--admin-port", str(port), "--proxy-port", "0",
                         "--data-dir", str(tmp_path)])  # fmt: skip
    assert code == 1
    assert "cannot start" in capsys.readouterr().err


def test_fast_path_settings() -> None:
    s = Settings.from_env({})
    assert (s.proxy_server, s.upstream_client, s.workers) == ("fast", "fast", 1)
    assert s.upstream_first_byte_timeout is None and s.upstream_idle_timeout == 300
    s = Settings.from_env({
        "PROXY_SERVER": "aiohttp", "UPSTREAM_CLIENT": "AIOHTTP", "BRICKSLLM_WORKERS": "auto",
        "UPSTREAM_FIRST_BYTE_TIMEOUT": "30s", "UPSTREAM_IDLE_TIMEOUT": "off", "PROXY_KEEPALIVE_TIMEOUT": "5s",
        "https_proxy": "http://u:secret@proxy:3128", "NO_PROXY": "localhost,.internal",
    })  # fmt: skip
    assert (s.proxy_server, s.upstream_client, s.workers) == ("aiohttp", "aiohttp", 0)
    assert (s.upstream_first_byte_timeout, s.upstream_idle_timeout) == (30, None)
    assert s.proxy_keepalive_timeout == 5
    assert s.https_proxy == "http://u:secret@proxy:3128" and s.no_proxy == "localhost,.internal"
    assert "secret" not in repr(s)


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"PROXY_SERVER": "granian"}, "PROXY_SERVER"),
        ({"UPSTREAM_CLIENT": "httpx"}, "UPSTREAM_CLIENT"),
        ({"HTTPS_PROXY": "socks5://p:1080"}, "HTTPS_PROXY"),
        ({"BRICKSLLM_WORKERS": "0"}, "BRICKSLLM_WORKERS"),
    ],
)
def test_fast_path_settings_errors_name_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env(env)
