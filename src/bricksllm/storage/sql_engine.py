"""Engines for SQLite and PostgreSQL, migrations, transactions and error translation.

Everything dialect-specific about *connecting* lives here: asyncpg connect arguments and
`search_path`, SQLite pragmas and BEGIN handling, the advisory-locked Alembic upgrade. Database
exceptions become `bricksllm.errors` in `translate_errors`, used by every store method.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from bricksllm.errors import Conflict, Unavailable
from bricksllm.settings import PostgresSettings
from bricksllm.storage.migrations import HEAD

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 5000
# Execution option: on SQLite, start the transaction with BEGIN IMMEDIATE (take the write lock
# up front) so a read-then-write transaction never fails on a stale snapshot.
SQLITE_IMMEDIATE = "bricksllm_sqlite_immediate"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@asynccontextmanager
async def translate_errors(action: str, *, conflict: str | None = None) -> AsyncIterator[None]:
    """Turn driver exceptions into the gateway's: IntegrityError -> Conflict (when `conflict`
    is given), anything that means "the database is not answering" -> Unavailable.

    Errors that retrying cannot fix are left alone so they surface as a 500 (and an event
    writer drops the batch instead of retrying it forever): ProgrammingError (bad SQL, missing
    privileges), DataError (a value the column rejects), an unexpected IntegrityError.
    `exc.TimeoutError` is the pool's "no connection free".
    """
    try:
        yield
    except exc.IntegrityError as e:
        if conflict is None:
            raise
        raise Conflict(conflict) from e
    except (exc.ProgrammingError, exc.DataError):
        raise
    except (exc.DBAPIError, exc.DisconnectionError, exc.TimeoutError, OSError, TimeoutError) as e:
        raise Unavailable(f"database unavailable while {action}") from e


def quote_schema(schema: str) -> str:
    if not _IDENTIFIER.fullmatch(schema):
        raise ValueError(f"PostgreSQL schema {schema!r} is not a plain SQL identifier")
    return f'"{schema}"'


def notify_channel(schema: str) -> str:
    """The LISTEN/NOTIFY channel of one schema's configuration (identifiers max 63 bytes)."""
    return f"bricksllm_config_{schema}"[:63]


def postgres_connect_args(pg: PostgresSettings, *, command_timeout: float | None) -> dict[str, Any]:
    """asyncpg connect() keyword arguments, shared by the engine and the LISTEN connection."""
    args: dict[str, Any] = {
        "ssl": pg.ssl_mode or "disable",
        "server_settings": {"search_path": quote_schema(pg.schema), "application_name": "bricksllm"},
    }
    if command_timeout is not None:
        args["command_timeout"] = command_timeout
    return args


def postgres_listen_args(pg: PostgresSettings) -> dict[str, Any]:
    """asyncpg.connect() arguments for the dedicated LISTEN connection."""
    args = postgres_connect_args(pg, command_timeout=None)
    args["server_settings"]["application_name"] = "bricksllm-listen"
    return {
        "host": pg.hosts[0],
        "port": pg.port,
        "user": pg.username or None,
        "password": pg.password or None,
        "database": pg.db_name or None,
        **args,
    }


def postgres_url(pg: PostgresSettings) -> URL:
    return URL.create(
        "postgresql+asyncpg",
        username=pg.username or None,
        password=pg.password or None,
        host=pg.hosts[0],
        port=pg.port,
        database=pg.db_name or None,
    )


def postgres_engine(pg: PostgresSettings, *, for_migrations: bool = False) -> AsyncEngine:
    """A pooled engine. The migration engine has no command timeout: it may wait on the
    advisory lock while another instance migrates."""
    timeout = None if for_migrations else max(pg.read_timeout, pg.write_timeout)
    return create_async_engine(
        postgres_url(pg),
        connect_args=postgres_connect_args(pg, command_timeout=timeout),
        pool_size=1 if for_migrations else 10,
        max_overflow=0 if for_migrations else 10,
        pool_pre_ping=True,
    )


def sqlite_engine(path: Path) -> AsyncEngine:
    """A SQLite engine in WAL mode where SQLAlchemy, not the sqlite3 module, emits BEGIN, so
    reads inside a transaction share one snapshot and DDL is transactional."""
    engine = create_async_engine(URL.create("sqlite+aiosqlite", database=str(path)))

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in ("journal_mode=WAL", "foreign_keys=ON", f"busy_timeout={SQLITE_BUSY_TIMEOUT_MS}"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        immediate = conn.get_execution_options().get(SQLITE_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


@asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction that will write: on SQLite it holds the write lock from its first statement."""
    async with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            await conn.execution_options(**{SQLITE_IMMEDIATE: True})
        async with conn.begin():
            yield conn


def _alembic_upgrade(connection: sa.Connection, schema: str | None) -> None:
    # imported here: Alembic is a large import and is only needed when a migration is due
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    config.attributes["version_table_schema"] = schema
    command.upgrade(config, "head")


async def _at_head(engine: AsyncEngine, schema: str) -> bool:
    table = "alembic_version"
    if engine.dialect.name == "postgresql":
        table = f"{quote_schema(schema)}.alembic_version"
    try:
        async with engine.connect() as conn:
            version = await conn.scalar(sa.text(f"SELECT version_num FROM {table}"))
    except exc.DBAPIError:  # no such table (a new database) or schema: migrate
        return False
    return version == HEAD


async def migrate(engine: AsyncEngine, schema: str | None = None) -> None:
    """Bring the database to the latest migration; safe to run from several processes at once.

    PostgreSQL: one transaction holding a per-schema advisory lock creates the schema if needed
    and runs Alembic (transactional DDL, so a failed upgrade leaves nothing behind). SQLite:
    BEGIN IMMEDIATE serialises concurrent starters on the file lock. A database already at
    `migrations.HEAD` is recognised with one SELECT and Alembic is not even imported (a third of
    the cold start on a slow machine).
    """
    if await _at_head(engine, schema or "public"):
        return
    async with write_transaction(engine) as conn:
        if engine.dialect.name == "postgresql":
            schema = schema or "public"
            await conn.execute(
                sa.text("SELECT pg_advisory_xact_lock(hashtext(:name))"),
                {"name": f"bricksllm.migrate.{schema}"},
            )
            exists = await conn.scalar(
                sa.text("SELECT 1 FROM pg_namespace WHERE nspname = :schema"), {"schema": schema}
            )
            if not exists:
                await conn.execute(sa.text(f"CREATE SCHEMA {quote_schema(schema)}"))
        await conn.run_sync(_alembic_upgrade, schema if engine.dialect.name == "postgresql" else None)
