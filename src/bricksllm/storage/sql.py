"""The composition root's entry to the SQL backend: `open_stores(settings)`.

It builds one engine (PostgreSQL when `settings.postgres` is set, else a SQLite file under
`settings.data_dir`), brings the schema to the latest migration and returns the config and event
stores sharing that engine.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from bricksllm.settings import Settings
from bricksllm.storage.sql_config import SqlConfigStore
from bricksllm.storage.sql_engine import (
    migrate,
    notify_channel,
    postgres_engine,
    postgres_listen_args,
    sqlite_engine,
    translate_errors,
)
from bricksllm.storage.sql_events import SqlEventStore


@dataclass(slots=True)
class SqlStores:
    """The stores of one database, sharing one engine. `close()` releases all of it."""

    config: SqlConfigStore
    events: SqlEventStore
    engine: AsyncEngine

    async def close(self) -> None:
        await self.config.close()
        await self.events.close()
        await self.engine.dispose()


async def open_stores(settings: Settings) -> SqlStores:
    """Connect to the configured database, migrate it and return its stores."""
    pg = settings.postgres
    if pg is not None:
        migration_engine = postgres_engine(pg, for_migrations=True)
        try:
            async with translate_errors("migrating the database"):
                await migrate(migration_engine, pg.schema)
        finally:
            await migration_engine.dispose()
        engine = postgres_engine(pg)
        config = SqlConfigStore(
            engine, channel=notify_channel(pg.schema), listen_args=postgres_listen_args(pg)
        )
    else:
        await asyncio.to_thread(settings.data_dir.mkdir, parents=True, exist_ok=True)
        engine = sqlite_engine(settings.sqlite_path)
        try:
            async with translate_errors("migrating the database"):
                await migrate(engine)
        except BaseException:
            await engine.dispose()
            raise
        config = SqlConfigStore(engine)
    return SqlStores(config=config, events=SqlEventStore(engine), engine=engine)
