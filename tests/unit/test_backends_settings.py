"""Several PostgreSQL hosts and Redis Sentinel: how the settings read them, and what the
drivers are given (the host list, the per-host connect timeout, the outage rules)."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import exc

from bricksllm.settings import PostgresSettings, Settings, SettingsError, split_host_port
from bricksllm.storage.sql_engine import is_outage, postgres_connect_args, postgres_listen_args


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("db1", ("db1", 5432)),
        ("db1:6543", ("db1", 6543)),
        ("10.0.0.7:5433", ("10.0.0.7", 5433)),
        ("[::1]", ("::1", 5432)),
        ("[::1]:5433", ("::1", 5433)),
        ("fe80::1", ("fe80::1", 5432)),
    ],
)
def test_host_entries(entry: str, expected: tuple[str, int]) -> None:
    assert split_host_port(entry, 5432) == expected


@pytest.mark.parametrize("entry", ["db1:", "db1:x", "db1:0", "db1:70000", ":5432", "[::1", "[::1]x"])
def test_malformed_host_entries_are_refused(entry: str) -> None:
    with pytest.raises(ValueError):
        split_host_port(entry, 5432)


def test_postgres_hosts_with_ports_and_their_errors() -> None:
    s = Settings.from_env({"POSTGRESQL_HOSTS": "db1:6000, db2", "POSTGRESQL_PORT": "6543"})
    assert s.postgres is not None
    assert s.postgres.addresses() == [("db1", 6000), ("db2", 6543)]
    with pytest.raises(SettingsError, match="POSTGRESQL_HOSTS"):
        Settings.from_env({"POSTGRESQL_HOSTS": "db1:nope"})


def test_every_host_is_tried_with_its_connect_timeout_and_the_listener_gets_the_same() -> None:
    pg = PostgresSettings(
        hosts=("a:1", "b"), port=2, db_name="d", username="u", schema="s", connect_timeout=3
    )
    args = postgres_connect_args(pg, command_timeout=4.0)
    assert (args["addresses"], args["connect_timeout"], args["command_timeout"]) == (
        [("a", 1), ("b", 2)],
        3,
        4,
    )
    listen = postgres_listen_args(pg)
    assert (listen["addresses"], listen["connect_timeout"]) == ([("a", 1), ("b", 2)], 3)
    assert listen["database"] == "d" and "command_timeout" not in listen
    assert listen["server_settings"]["application_name"] == "bricksllm-listen"
    env = {"POSTGRESQL_HOSTS": "a", "POSTGRESQL_CONNECT_TIME_OUT": "750ms"}
    assert Settings.from_env(env).postgres == PostgresSettings(hosts=("a",), connect_timeout=0.75)
    assert PostgresSettings(hosts=("a",)).connect_timeout == 5.0


def _wrapped(error: Exception) -> exc.DBAPIError:
    """`error` as SQLAlchemy raises it: a DBAPIError raised from the driver's exception."""
    try:
        raise exc.DBAPIError("statement", None, error) from error
    except exc.DBAPIError as wrapped:
        return wrapped


def test_no_writable_host_and_a_read_only_server_are_outages_not_refused_data() -> None:
    none_writable = asyncpg.exceptions._base.TargetServerAttributeNotMatched("no host accepts writes")
    assert is_outage(_wrapped(none_writable))
    assert is_outage(_wrapped(asyncpg.exceptions.ReadOnlySQLTransactionError("read-only transaction")))
    assert not is_outage(_wrapped(asyncpg.exceptions.NotNullViolationError("null value")))


def test_sentinel_variables() -> None:
    s = Settings.from_env({
        "REDIS_SENTINELS": "s1, s2:26380", "REDIS_MASTER_NAME": "gw", "REDIS_SENTINEL_PASSWORD": "sp",
        "REDIS_PASSWORD": "rp",
    })  # fmt: skip
    assert s.redis is not None and s.redis.hosts == () and s.redis.master_name == "gw"
    assert s.redis.sentinel_addresses() == [("s1", 26379), ("s2", 26380)]
    assert "sp" not in repr(s) and "rp" not in repr(s)
    with pytest.raises(SettingsError, match="REDIS_MASTER_NAME"):
        Settings.from_env({"REDIS_SENTINELS": "s1"})
    with pytest.raises(SettingsError, match="REDIS_SENTINELS"):
        Settings.from_env({"REDIS_SENTINELS": "s1:x", "REDIS_MASTER_NAME": "gw"})
