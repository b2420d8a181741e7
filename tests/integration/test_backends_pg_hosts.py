"""POSTGRESQL_HOSTS with several hosts: the gateway uses the first that accepts writes, as libpq's
`target_session_attrs=read-write` does, and follows a failover (its pool and its LISTEN connection).

A refusing host is a closed loopback port in front of the shared server. The standby and the
failover use a primary + hot standby pair the test starts itself (`pg_cluster.py`)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

import asyncpg
import pytest

from bricksllm.settings import PostgresSettings, Settings
from bricksllm.storage.sql_engine import postgres_listen_args
from bricksllm.storage.sql_listen import ConfigListener
from tests.conftest import PG_USER
from tests.integration.conftest import GatewayFactory, Running
from tests.integration.mock_openai import MockOpenAI
from tests.integration.pg_cluster import ClusterPair, server_bin_dir

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}


def _closed_port() -> int:
    """A loopback port nothing listens on (connections to it are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _until(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    for _ in range(int(seconds / 0.1)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {seconds:g} s: {what}")


async def _served(gw: Running, key: str) -> bool:
    """Whether the proxy answers a chat call with this key (it knows the key)."""
    async with gw.http.post(
        f"{gw.openai_base}/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {key}"}
    ) as resp:
        await resp.read()
        return resp.status == 200


async def _event_count(gw: Running, key_id: str) -> int:
    status, events = await gw.admin("GET", f"/api/events?keyIds={key_id}&limit=1000")
    assert status == 200, events
    return len(events)


async def test_a_host_that_refuses_connections_is_skipped_by_the_pool_and_the_listener(
    start_gateway: GatewayFactory, pg_settings: PostgresSettings, mock_openai: MockOpenAI
) -> None:
    pg = replace(pg_settings, hosts=(f"127.0.0.1:{_closed_port()}", f"127.0.0.1:{pg_settings.port}"), port=1)
    # no polling to speak of: the second instance hears of new keys through LISTEN/NOTIFY only
    a = await start_gateway(Settings(postgres=pg, config_refresh_interval=600))
    b = await start_gateway(Settings(postgres=pg, config_refresh_interval=600))
    key = await a.create_key(await a.create_setting(mock_openai.url), secret="key-one")
    await _until(lambda: _served(b, "key-one"), 10, "the second instance hears of the new key")
    assert await _served(a, "key-one")
    await a.flush_events()
    await b.flush_events()
    assert await _event_count(a, key["keyId"]) == 2


async def test_a_host_that_does_not_answer_is_left_after_its_connect_timeout(
    start_gateway: GatewayFactory, pg_settings: PostgresSettings, mock_openai: MockOpenAI
) -> None:
    """A first host that accepts the TCP connection and never answers (a hung server; a dead
    machine's dropped packets look the same to a client): each connection gives it
    POSTGRESQL_CONNECT_TIME_OUT, then takes the next host. (asyncpg's own multi-host timeout is
    for all hosts together: it would never reach the second one.)"""
    held: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    silent_port = server.sockets[0].getsockname()[1]
    try:
        hosts = (f"127.0.0.1:{silent_port}", f"127.0.0.1:{pg_settings.port}")
        pg = replace(pg_settings, hosts=hosts, connect_timeout=0.5)
        gw = await start_gateway(Settings(postgres=pg))
        key = await gw.create_key(await gw.create_setting(mock_openai.url))
        assert await _served(gw, "my-secret-key")
        await gw.flush_events()
        assert await _event_count(gw, key["keyId"]) == 1
        assert held  # the silent host was really tried first
    finally:
        server.close()
        for writer in held:
            writer.close()
        await server.wait_closed()


@pytest.fixture
async def cluster_pair() -> AsyncIterator[ClusterPair]:
    bin_dir = server_bin_dir()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup) on this machine")
    pair = ClusterPair(bin_dir, _closed_port(), _closed_port())
    try:
        await asyncio.to_thread(pair.start)
        yield pair
    finally:
        await asyncio.to_thread(pair.close)


async def _in_recovery(port: int) -> bool:
    conn = await asyncpg.connect(host="127.0.0.1", port=port, user=PG_USER, database="postgres")
    try:
        return bool(await conn.fetchval("SELECT pg_is_in_recovery()"))
    finally:
        await conn.close()


async def test_writes_go_to_the_primary_past_a_standby_and_follow_a_failover(
    cluster_pair: ClusterPair, start_gateway: GatewayFactory, mock_openai: MockOpenAI
) -> None:
    pair = cluster_pair
    assert await _in_recovery(pair.standby_port)  # a real hot standby: it refuses every write
    pg = PostgresSettings(
        hosts=tuple(f"127.0.0.1:{port}" for port in (_closed_port(), pair.standby_port, pair.primary_port)),
        db_name="postgres",
        username=PG_USER,
        read_timeout=2.0,
        write_timeout=2.0,
    )
    settings = Settings(postgres=pg, config_refresh_interval=600)
    a = await start_gateway(settings)  # migrating would fail on the standby
    b = await start_gateway(settings)
    setting_id = await a.create_setting(mock_openai.url)
    key = await a.create_key(setting_id, secret="before")
    await _until(lambda: _served(b, "before"), 10, "the second instance hears of the new key")
    for _ in range(3):
        assert await _served(a, "before")
    await a.flush_events()
    await b.flush_events()
    assert await _event_count(a, key["keyId"]) == 4

    await asyncio.to_thread(pair.stop_primary)
    await asyncio.to_thread(pair.promote_standby)
    assert not await _in_recovery(pair.standby_port)

    # calls keep being served from memory; their events wait and are written to the new primary
    for _ in range(3):
        assert await _served(a, "before")

    async def written() -> bool:
        return await a.gateway.events.flush() and a.gateway.events.pending == 0

    await _until(written, 20, "the events of the failover are written to the new primary")
    await _until(lambda: _key_created(a, setting_id, "after"), 20, "the admin API writes to the new primary")
    # the second instance's LISTEN connection followed the failover too
    await _until(lambda: _served(b, "after"), 20, "the second instance hears of a key made after it")
    await a.flush_events()
    await b.flush_events()
    assert await _event_count(a, key["keyId"]) == 4 + 3  # nothing lost, nothing written twice
    conn = await asyncpg.connect(host="127.0.0.1", port=pair.standby_port, user=PG_USER, database="postgres")
    try:  # the new primary (the standby before) holds them
        assert await conn.fetchval("SELECT count(*) FROM events WHERE key_id = $1", key["keyId"]) == 7
    finally:
        await conn.close()


async def _key_created(gw: Running, setting_id: str, name: str) -> bool:
    """Create the key `name` (secret = name) unless it exists; whether it does now."""
    status, keys = await gw.admin("GET", "/api/key-management/keys")
    if status == 200 and any(k["name"] == name for k in keys):
        return True
    body = {"name": name, "key": name, "settingId": setting_id}
    status, _ = await gw.admin("PUT", "/api/key-management/keys", body)
    return status == 200


async def _primary_sql(pair: ClusterPair, sql: str) -> None:
    conn = await asyncpg.connect(host="127.0.0.1", port=pair.primary_port, user=PG_USER, database="postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def test_a_server_turned_read_only_under_open_connections_loses_no_event(
    start_gateway: GatewayFactory, mock_openai: MockOpenAI
) -> None:
    """The primary becomes read-only while the pool holds connections to it (what a demoted
    server looks like): the refused writes are an outage (events kept, not dropped as bad
    data), new connections skip it (`default_transaction_read_only`), and once it accepts
    writes again every event is written."""
    bin_dir = server_bin_dir()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
    pair = ClusterPair(bin_dir, _closed_port(), _closed_port())
    try:
        await asyncio.to_thread(pair.start, standby=False)
        pg = PostgresSettings(hosts=(f"127.0.0.1:{pair.primary_port}",), db_name="postgres", username=PG_USER)
        gw = await start_gateway(Settings(postgres=pg))
        key = await gw.create_key(await gw.create_setting(mock_openai.url))
        assert await _served(gw, "my-secret-key")
        await gw.flush_events()

        await _primary_sql(pair, "ALTER SYSTEM SET default_transaction_read_only = on")
        await _primary_sql(pair, "SELECT pg_reload_conf()")
        for _ in range(3):
            assert await _served(gw, "my-secret-key")
        assert not await gw.gateway.events.flush()  # refused as read-only: kept for later
        assert gw.gateway.events.pending == 3
        status, _ = await gw.admin(
            "PUT", "/api/provider-settings", {"provider": "openai", "setting": {"apikey": "k"}}
        )
        assert status == 503  # no host accepts writes: unavailable, not a 4xx about the data

        await _primary_sql(pair, "ALTER SYSTEM RESET default_transaction_read_only")
        await _primary_sql(pair, "SELECT pg_reload_conf()")

        async def written() -> bool:
            return await gw.gateway.events.flush() and gw.gateway.events.pending == 0

        await _until(written, 20, "the kept events are written once the server accepts writes")
        assert await _event_count(gw, key["keyId"]) == 4
    finally:
        await asyncio.to_thread(pair.close)


async def test_a_primary_fenced_read_only_is_left_for_the_promoted_standby(
    cluster_pair: ClusterPair, start_gateway: GatewayFactory, mock_openai: MockOpenAI
) -> None:
    """A switchover where the old primary stays up: it is made read-only (fenced) and the standby
    promoted. The pool's open connections to the old primary get "read-only transaction": the
    pool is emptied and the next connections skip it for the new primary, where the events
    written meanwhile land; none is dropped as bad data."""
    pair = cluster_pair
    pg = PostgresSettings(
        hosts=tuple(f"127.0.0.1:{port}" for port in (pair.primary_port, pair.standby_port)),
        db_name="postgres",
        username=PG_USER,
    )
    gw = await start_gateway(Settings(postgres=pg))
    key = await gw.create_key(await gw.create_setting(mock_openai.url))
    assert await _served(gw, "my-secret-key")
    await gw.flush_events()

    async def replicated() -> bool:  # the standby has replayed the key and its first event
        return await _events_on(pair.standby_port, key["keyId"]) == 1

    await _until(replicated, 10, "the standby replays the first event")
    await _primary_sql(pair, "ALTER SYSTEM SET default_transaction_read_only = on")
    await _primary_sql(pair, "SELECT pg_reload_conf()")
    await asyncio.to_thread(pair.promote_standby)

    for _ in range(3):
        assert await _served(gw, "my-secret-key")

    async def written() -> bool:
        return await gw.gateway.events.flush() and gw.gateway.events.pending == 0

    await _until(written, 20, "the events are written to the promoted standby")
    assert await _events_on(pair.standby_port, key["keyId"]) == 4
    assert await _events_on(pair.primary_port, key["keyId"]) == 1  # nothing reached the fenced one


async def _events_on(port: int, key_id: str) -> int:
    conn = await asyncpg.connect(host="127.0.0.1", port=port, user=PG_USER, database="postgres")
    try:
        return int(await conn.fetchval("SELECT count(*) FROM events WHERE key_id = $1", key_id))
    finally:
        await conn.close()


async def test_the_listen_connection_leaves_a_fenced_primary_for_the_promoted_standby(
    cluster_pair: ClusterPair,
) -> None:
    pair = cluster_pair
    pg = PostgresSettings(
        hosts=tuple(f"127.0.0.1:{port}" for port in (pair.primary_port, pair.standby_port)),
        db_name="postgres",
        username=PG_USER,
    )
    calls: list[float] = []
    listener = ConfigListener(
        "bricksllm_test",
        postgres_listen_args(pg),
        lambda: calls.append(0),
        retry_interval=0.1,
        health_interval=0.2,
    )
    await listener.start()
    try:
        await _primary_sql(pair, "ALTER SYSTEM SET default_transaction_read_only = on")
        await _primary_sql(pair, "SELECT pg_reload_conf()")
        await asyncio.to_thread(pair.promote_standby)

        async def listening_on_new_primary() -> bool:
            return await _listeners_on(pair.standby_port) == 1

        await _until(listening_on_new_primary, 10, "the LISTEN connection moves to the new primary")
        before = len(calls)
        conn = await asyncpg.connect(
            host="127.0.0.1", port=pair.standby_port, user=PG_USER, database="postgres"
        )
        try:
            await conn.execute("NOTIFY bricksllm_test")
        finally:
            await conn.close()

        async def heard() -> bool:
            return len(calls) > before

        await _until(heard, 5, "a change committed on the new primary is heard")
        assert await _listeners_on(pair.primary_port) == 0
    finally:
        await listener.close()


async def _listeners_on(port: int) -> int:
    conn = await asyncpg.connect(host="127.0.0.1", port=port, user=PG_USER, database="postgres")
    try:
        sql = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'bricksllm-listen'"
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()
