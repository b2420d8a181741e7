"""Contract of `ports.ConfigStore`, run against SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from bricksllm.domain.models import (
    CustomProvider,
    Key,
    Limit,
    ModelPrice,
    PathConfig,
    PolicyRecord,
    ProviderSetting,
    RouteConfig,
)
from bricksllm.errors import Conflict, NotFound, StorageRejected, Unavailable
from bricksllm.settings import PostgresSettings, Settings
from bricksllm.storage.migrations import HEAD
from bricksllm.storage.sql import SqlStores, open_stores
from bricksllm.storage.sql_config import SqlConfigStore
from bricksllm.storage.sql_engine import postgres_engine, sqlite_engine
from bricksllm.storage.tables import metadata


def full_key(key_id: str = "key-1", key_hash: str = "hash-1", created_at: int = 1_700_000_000) -> Key:
    return Key(
        key_id=key_id,
        name="Team key",
        key_hash=key_hash,
        created_at=created_at,
        updated_at=created_at + 5,
        tags=("team-a", "prod"),
        setting_id="set-1",
        setting_ids=("set-2", "set-3"),
        revoked=True,
        revoked_reason="leaked",
        cost_limit_micros=25_000_000,
        cost_limit_over_time_micros=3_500_000,
        cost_limit_unit="d",
        rate_limit_over_time=60,
        rate_limit_unit="m",
        ttl="48h",
        ttl_seconds=172_800,
        allowed_paths=(PathConfig(path="/api/providers/openai/v1/chat/completions", method="POST"),),
        should_log_request=True,
        should_log_response=True,
        more_limits=(Limit("requests", 1000, "d"), Limit("tokens", 50_000, "h")),
        model_limits={"gpt-4o": (Limit("cost", 1_000_000, "mo"),)},
    )


def full_setting(setting_id: str = "set-1") -> ProviderSetting:
    return ProviderSetting(
        id=setting_id,
        provider="azure",
        created_at=1_700_000_100,
        updated_at=1_700_000_200,
        name="Azure EU",
        setting={"apikey": "secret", "resourceName": "eu-res", "url": "https://eu.example"},
        allowed_models=("gpt-4o", "gpt-4o-mini"),
        prices={
            "gpt-4o": ModelPrice(input=2.5, output=10.0, cached_input=1.25),
            "my-ft": ModelPrice(input=0.3, output=1.2),
        },
    )


def full_provider(provider_id: str = "cp-1", name: str = "myllm") -> CustomProvider:
    return CustomProvider(
        id=provider_id,
        provider=name,
        created_at=1_700_000_300,
        updated_at=1_700_000_400,
        route_configs=(
            RouteConfig(
                path="/chat",
                target_url="https://llm.example/v1/chat",
                model_location="model",
                request_prompt_location="messages.#.content",
                response_completion_location="choices.0.message.content",
                stream_location="stream",
                stream_end_word="[DONE]",
                stream_response_completion_location="choices.0.delta.content",
                stream_max_empty_messages=10,
            ),
            RouteConfig(path="/embed", target_url="https://llm.example/v1/embed"),
        ),
        authentication_param="apikey",
    )


# -- keys ---------------------------------------------------------------------------------


async def test_key_round_trips_with_every_field(stores: SqlStores) -> None:
    key = full_key()
    await stores.config.create_key(key)
    assert await stores.config.get_key("key-1") == key
    assert await stores.config.list_keys() == [key]


async def test_key_with_defaults_round_trips(stores: SqlStores) -> None:
    key = Key(key_id="k", name="", key_hash="h", created_at=1, updated_at=1)
    await stores.config.create_key(key)
    assert await stores.config.get_key("k") == key


async def test_unknown_key_is_none(stores: SqlStores) -> None:
    assert await stores.config.get_key("nope") is None


async def test_duplicate_key_hash_is_conflict_and_changes_nothing(stores: SqlStores) -> None:
    await stores.config.create_key(full_key())
    version = await stores.config.version()
    with pytest.raises(Conflict):
        await stores.config.create_key(full_key(key_id="key-2"))
    assert await stores.config.version() == version
    assert [k.key_id for k in await stores.config.list_keys()] == ["key-1"]


async def test_update_key_replaces_every_column(stores: SqlStores) -> None:
    await stores.config.create_key(full_key())
    changed = Key(
        key_id="key-1",
        name="Renamed",
        key_hash="hash-rotated",
        created_at=1_700_000_000,
        updated_at=1_800_000_000,
        tags=("only",),
        setting_id="",
        setting_ids=("set-9",),
        revoked=False,
        revoked_reason="",
        cost_limit_micros=1,
        cost_limit_over_time_micros=0,
        cost_limit_unit="",
        rate_limit_over_time=0,
        rate_limit_unit="",
        ttl="",
        ttl_seconds=0,
        allowed_paths=(),
    )
    await stores.config.update_key(changed)
    assert await stores.config.get_key("key-1") == changed


async def test_update_unknown_key_is_not_found(stores: SqlStores) -> None:
    version = await stores.config.version()
    with pytest.raises(NotFound):
        await stores.config.update_key(full_key(key_id="ghost"))
    assert await stores.config.version() == version
    assert await stores.config.get_key("ghost") is None


async def test_update_key_to_another_keys_hash_is_conflict(stores: SqlStores) -> None:
    await stores.config.create_key(full_key("key-1", "hash-1"))
    await stores.config.create_key(full_key("key-2", "hash-2"))
    with pytest.raises(Conflict):
        await stores.config.update_key(full_key("key-2", "hash-1"))
    assert (await stores.config.get_key("key-2")) == full_key("key-2", "hash-2")


async def test_delete_key(stores: SqlStores) -> None:
    await stores.config.create_key(full_key("key-1", "hash-1"))
    await stores.config.create_key(full_key("key-2", "hash-2"))
    assert await stores.config.delete_key("key-1") is True
    assert await stores.config.get_key("key-1") is None
    assert [k.key_id for k in await stores.config.list_keys()] == ["key-2"]
    version = await stores.config.version()
    assert await stores.config.delete_key("key-1") is False
    assert await stores.config.version() == version
    # The secret is free again once its key is gone.
    await stores.config.create_key(full_key("key-3", "hash-1"))


async def test_list_keys_is_ordered_by_creation(stores: SqlStores) -> None:
    for key_id, created in (("b", 30), ("c", 10), ("a", 30)):
        await stores.config.create_key(full_key(key_id, f"hash-{key_id}", created_at=created))
    assert [k.key_id for k in await stores.config.list_keys()] == ["c", "a", "b"]


# -- provider settings --------------------------------------------------------------------


async def test_setting_round_trips_with_every_field(stores: SqlStores) -> None:
    setting = full_setting()
    await stores.config.create_setting(setting)
    assert await stores.config.get_setting("set-1") == setting
    assert await stores.config.list_settings() == [setting]
    assert await stores.config.get_setting("nope") is None


async def test_setting_with_defaults_round_trips(stores: SqlStores) -> None:
    setting = ProviderSetting(id="s", provider="openai", created_at=1, updated_at=2)
    await stores.config.create_setting(setting)
    assert await stores.config.get_setting("s") == setting


async def test_update_setting(stores: SqlStores) -> None:
    await stores.config.create_setting(full_setting())
    changed = dataclasses.replace(
        full_setting(),
        name="",
        setting={"apikey": "rotated"},
        allowed_models=(),
        prices={"gpt-4o": ModelPrice(input=1.0, output=2.0)},
        updated_at=1_800_000_000,
    )
    await stores.config.update_setting(changed)
    assert await stores.config.get_setting("set-1") == changed


async def test_update_unknown_setting_is_not_found(stores: SqlStores) -> None:
    with pytest.raises(NotFound):
        await stores.config.update_setting(full_setting("ghost"))


async def test_duplicate_setting_id_is_conflict(stores: SqlStores) -> None:
    await stores.config.create_setting(full_setting())
    with pytest.raises(Conflict):
        await stores.config.create_setting(full_setting())


@pytest.mark.parametrize("name", ["lone \ud800 surrogate", "nul \x00 inside"])
async def test_a_value_the_database_refuses_is_rejected_not_an_outage(stores: SqlStores, name: str) -> None:
    """A refused value must not look like "database down": callers retry outages forever."""
    bad = dataclasses.replace(full_setting(), name=name)
    try:
        await stores.config.create_setting(bad)
    except StorageRejected:
        pass  # PostgreSQL refuses both; SQLite refuses the surrogate
    else:
        assert "\x00" in name and (await stores.config.get_setting(bad.id)) == bad  # SQLite keeps NUL
    await stores.config.create_setting(full_setting("set-2"))  # the store still works
    assert [s.id for s in await stores.config.list_settings()] in (["set-2"], ["set-1", "set-2"])


# -- custom providers ---------------------------------------------------------------------


async def test_custom_provider_round_trips_with_every_field(stores: SqlStores) -> None:
    provider = full_provider()
    await stores.config.create_custom_provider(provider)
    assert await stores.config.get_custom_provider("cp-1") == provider
    assert await stores.config.list_custom_providers() == [provider]
    assert await stores.config.get_custom_provider("nope") is None


async def test_custom_provider_name_is_stored_lower_cased(stores: SqlStores) -> None:
    await stores.config.create_custom_provider(full_provider(name="MyLLM"))
    stored = await stores.config.get_custom_provider("cp-1")
    assert stored is not None
    assert stored.provider == "myllm"


async def test_custom_provider_name_conflict_ignores_case(stores: SqlStores) -> None:
    await stores.config.create_custom_provider(full_provider("cp-1", "myllm"))
    with pytest.raises(Conflict):
        await stores.config.create_custom_provider(full_provider("cp-2", "MYLLM"))
    assert [p.id for p in await stores.config.list_custom_providers()] == ["cp-1"]


async def test_update_custom_provider(stores: SqlStores) -> None:
    await stores.config.create_custom_provider(full_provider())
    changed = dataclasses.replace(
        full_provider(),
        route_configs=(RouteConfig(path="/v2", target_url="https://llm.example/v2"),),
        authentication_param="",
        updated_at=1_800_000_000,
    )
    await stores.config.update_custom_provider(changed)
    assert await stores.config.get_custom_provider("cp-1") == changed


async def test_update_custom_provider_errors(stores: SqlStores) -> None:
    await stores.config.create_custom_provider(full_provider("cp-1", "one"))
    await stores.config.create_custom_provider(full_provider("cp-2", "two"))
    with pytest.raises(NotFound):
        await stores.config.update_custom_provider(full_provider("ghost", "three"))
    with pytest.raises(Conflict):
        await stores.config.update_custom_provider(full_provider("cp-2", "One"))


# -- version and snapshot -----------------------------------------------------------------


async def test_every_write_bumps_the_version_once(stores: SqlStores) -> None:
    config = stores.config
    start = await config.version()
    assert start == 1
    writes = [
        config.create_key(full_key()),
        config.update_key(dataclasses.replace(full_key(), name="x")),
        config.create_setting(full_setting()),
        config.update_setting(dataclasses.replace(full_setting(), name="y")),
        config.create_custom_provider(full_provider()),
        config.update_custom_provider(dataclasses.replace(full_provider(), authentication_param="z")),
        config.delete_key("key-1"),
    ]
    for done, write in enumerate(writes, start=1):
        await write
        assert await config.version() == start + done


async def test_snapshot_holds_everything(stores: SqlStores) -> None:
    await stores.config.create_key(full_key("key-1", "hash-1", created_at=1))
    await stores.config.create_key(full_key("key-2", "hash-2", created_at=2))
    await stores.config.create_setting(full_setting())
    await stores.config.create_custom_provider(full_provider())
    snapshot = await stores.config.snapshot()
    assert snapshot.version == 5
    assert list(snapshot.keys) == [full_key("key-1", "hash-1", 1), full_key("key-2", "hash-2", 2)]
    assert list(snapshot.settings) == [full_setting()]
    assert list(snapshot.custom_providers) == [full_provider()]


# -- lifecycle ----------------------------------------------------------------------------


async def test_data_survives_a_restart(store_settings: Settings) -> None:
    first = await open_stores(store_settings)
    try:
        await first.config.create_key(full_key())
        await first.config.create_setting(full_setting())
    finally:
        await first.close()
    second = await open_stores(store_settings)  # migrations run again: must be a no-op
    try:
        snapshot = await second.config.snapshot()
        assert snapshot.version == 3
        assert list(snapshot.keys) == [full_key()]
        assert list(snapshot.settings) == [full_setting()]
        async with second.engine.connect() as conn:
            versions = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).all()
        assert [v[0] for v in versions] == [HEAD]
    finally:
        await second.close()


async def test_concurrent_startups_migrate_once(store_settings: Settings) -> None:
    opened = await asyncio.gather(*(open_stores(store_settings) for _ in range(3)))
    try:
        await opened[0].config.create_key(full_key())
        for other in opened[1:]:
            assert await other.config.get_key("key-1") == full_key()
    finally:
        for s in opened:
            await s.close()


async def test_migrated_schema_matches_tables(stores: SqlStores) -> None:
    def diff(conn: sa.Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(conn), metadata))

    async with stores.engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_unreachable_database_is_unavailable(tmp_path: Path, free_port: int) -> None:
    nobody_listens = PostgresSettings(hosts=("127.0.0.1",), port=free_port, db_name="test")
    # Not "missing directory": aiosqlite's failed-connect path leaves a thread that outlives the loop.
    not_a_database = tmp_path / "garbage.sqlite3"
    not_a_database.write_bytes(b"this is not a SQLite database file" * 100)
    for engine in (sqlite_engine(not_a_database), postgres_engine(nobody_listens)):
        try:
            with pytest.raises(Unavailable):
                await SqlConfigStore(engine).version()
            with pytest.raises(Unavailable):
                await SqlConfigStore(engine).create_key(full_key())
        finally:
            await engine.dispose()


# -- change notification ------------------------------------------------------------------


async def test_listen_is_a_no_op_on_sqlite(tmp_path: Path) -> None:
    stores = await open_stores(Settings(data_dir=tmp_path))
    try:
        calls: list[int] = []
        await stores.config.listen(lambda: calls.append(1))
        await stores.config.create_key(full_key())
        await asyncio.sleep(0.05)
        assert calls == []
    finally:
        await stores.close()


async def _wait_for(event: asyncio.Event, what: str) -> None:
    try:
        await asyncio.wait_for(event.wait(), 5)
    except TimeoutError:
        pytest.fail(f"no notification: {what}")
    event.clear()


@pytest.mark.postgres
async def test_listen_hears_writes_from_another_instance(pg_settings: PostgresSettings) -> None:
    settings = Settings(postgres=pg_settings)
    listener, writer = await open_stores(settings), await open_stores(settings)
    try:
        changed = asyncio.Event()
        await listener.config.listen(changed.set)
        await writer.config.create_key(full_key())
        await _wait_for(changed, "after create_key")
        await writer.config.delete_key("key-1")
        await _wait_for(changed, "after delete_key")
        # A write that fails changes nothing and says nothing.
        with pytest.raises(NotFound):
            await writer.config.update_key(full_key())
        await asyncio.sleep(0.3)
        assert not changed.is_set()
    finally:
        await listener.close()
        await writer.close()


@pytest.mark.postgres
async def test_listen_reconnects_after_the_connection_drops(pg_settings: PostgresSettings) -> None:
    settings = Settings(postgres=pg_settings)
    stores = await open_stores(settings)
    try:
        changed = asyncio.Event()
        await stores.config.listen(changed.set)
        async with stores.engine.connect() as conn:
            killed = await conn.scalar(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = 'bricksllm-listen' AND query LIKE :channel"
                ),
                {"channel": f"%bricksllm_config_{pg_settings.schema}%"},
            )
        assert killed == 1
        await _wait_for(changed, "after reconnecting (changes may have been missed)")
        await asyncio.sleep(0.2)
        changed.clear()
        await stores.config.create_key(full_key())
        await _wait_for(changed, "after a write on the new connection")
    finally:
        await stores.close()


# -- policies -----------------------------------------------------------------------------


def full_policy(policy_id: str = "pol-1") -> PolicyRecord:
    return PolicyRecord(
        id=policy_id,
        name="no cards",
        created_at=1_700_000_500,
        updated_at=1_700_000_600,
        tags=("team-a",),
        document={
            "config": {"rules": {"credit_debit_number": "block", "email": "allow_but_redact"}},
            "regexConfig": {"rules": [{"definition": "(?i)project [a-z]+", "action": "allow_but_warn"}]},
            "customConfig": {"rules": []},
            "failOpen": False,
            "scanResponses": True,
        },
    )


async def test_policy_round_trips_and_is_in_the_snapshot(stores: SqlStores) -> None:
    before = await stores.config.version()
    await stores.config.create_policy(full_policy())
    assert await stores.config.get_policy("pol-1") == full_policy()
    snapshot = await stores.config.snapshot()
    assert list(snapshot.policies) == [full_policy()] and snapshot.version == before + 1


async def test_update_and_delete_policy(stores: SqlStores) -> None:
    await stores.config.create_policy(full_policy())
    changed = dataclasses.replace(full_policy(), name="renamed", document={"config": {"rules": {}}})
    await stores.config.update_policy(changed)
    assert await stores.config.list_policies() == [changed]
    with pytest.raises(NotFound):
        await stores.config.update_policy(full_policy("ghost"))
    assert await stores.config.delete_policy("pol-1") is True
    assert await stores.config.delete_policy("pol-1") is False
    assert await stores.config.get_policy("pol-1") is None


async def test_a_key_keeps_its_policy_id(stores: SqlStores) -> None:
    key = dataclasses.replace(full_key(), policy_id="pol-1")
    await stores.config.create_key(key)
    assert await stores.config.get_key(key.key_id) == key


async def test_tag_budgets_are_put_replaced_listed_and_deleted(stores: SqlStores) -> None:
    config = stores.config
    before = await config.version()
    await config.put_budget("team-a", (Limit("cost", 5_000_000, "mo"),), 1_700_000_000)
    await config.put_budget("team-b", (Limit("tokens", 9, "d"), Limit("requests", 3, "m")), 1_700_000_000)
    await config.put_budget("team-a", (Limit("cost", 7, "total"),), 1_700_000_100)  # replaced
    expected = {
        "team-a": (Limit("cost", 7, "total"),),
        "team-b": (Limit("tokens", 9, "d"), Limit("requests", 3, "m")),
    }
    assert await config.list_budgets() == expected
    snap = await config.snapshot()
    assert snap.budgets == expected and snap.version == await config.version() > before
    assert await config.delete_budget("team-a") and not await config.delete_budget("team-a")
    assert list(await config.list_budgets()) == ["team-b"]
