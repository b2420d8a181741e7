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

from bricksllm.errors import Conflict, StorageRejected, Unavailable
from bricksllm.settings import PostgresSettings
from bricksllm.storage.migrations import HEAD

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 5000
# Execution option: on SQLite, start the transaction with BEGIN IMMEDIATE (take the write lock
# up front) so a read-then-write transaction never fails on a stale snapshot.
SQLITE_IMMEDIATE = "bricksllm_sqlite_immediate"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# SQLSTATE classes that mean "the server cannot serve now" (connection, resources, shutdown,
# system error, a transaction to retry); every other SQLSTATE is about the statement or its data.
_OUTAGE_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57", "58"})
# A write reaching a server that no longer accepts writes (a primary demoted or made read-only
# while the connection stayed open): the primary is elsewhere now, so it is an outage of this
# connection, not a refusal of the data.
_READ_ONLY_SQLSTATE = "25006"
_SQLITE_REFUSALS = frozenset(
    {"IntegrityError", "DataError", "ProgrammingError", "InterfaceError", "NotSupportedError"}
)


def is_outage(error: BaseException) -> bool:
    """Whether `error` means the database is unreachable or overloaded (retrying may succeed),
    as opposed to refusing this statement's data (retrying the same data never will).

    Drivers blur the two: asyncpg reports a value it cannot encode (a lone surrogate, an
    integer beyond 64 bits) as an `InterfaceError`, the class it also uses for a closed
    connection, and SQLAlchemy wraps both alike. So the cause chain is inspected: a `ValueError`
    (asyncpg's client-side DataError, encoding and overflow errors) or a SQLSTATE outside the
    outage classes is a refusal; sockets, timeouts, invalidated connections, SQLite's
    operational errors (locked, disk full, I/O, a corrupt file) and the outage SQLSTATEs are outages.
    """
    seen = 0
    node: BaseException | None = error
    while node is not None and seen < 8:
        if isinstance(node, ValueError):  # UnicodeError, OverflowError's kin, asyncpg DataError
            return False
        if isinstance(node, exc.DBAPIError) and node.connection_invalidated:
            return True
        if isinstance(node, OSError | TimeoutError | exc.DisconnectionError | exc.TimeoutError):
            return True
        state = getattr(node, "sqlstate", None) or getattr(node, "pgcode", None)
        if isinstance(state, str) and len(state) == 5:
            return state[:2] in _OUTAGE_SQLSTATE_CLASSES or state == _READ_ONLY_SQLSTATE
        if type(node).__module__ == "sqlite3":  # locked, disk full, I/O, not a database file
            return type(node).__name__ not in _SQLITE_REFUSALS
        if type(node).__module__.startswith("asyncpg") and type(node).__name__ in {
            "InterfaceError",
            "ConnectionDoesNotExistError",
            "InternalClientError",
            "TargetServerAttributeNotMatched",  # every host is up but none accepts writes (yet)
        }:
            return True
        node = node.__cause__ or node.__context__
        seen += 1
    return False


@asynccontextmanager
async def translate_errors(action: str, *, conflict: str | None = None) -> AsyncIterator[None]:
    """Turn driver exceptions into the gateway's, once, at the storage boundary:
    IntegrityError -> Conflict (when `conflict` is given); an outage (`is_outage`) ->
    Unavailable, which callers may retry; anything else the database or driver refused ->
    StorageRejected, which must never be retried as if the database were down (an event batch
    holding one such row would otherwise block every row behind it). `exc.TimeoutError` is the
    pool's "no connection free".
    """
    try:
        yield
    except exc.IntegrityError as e:
        if conflict is None:
            raise StorageRejected(f"the database refused the data while {action}") from e
        raise Conflict(conflict) from e
    except (exc.SQLAlchemyError, OSError, TimeoutError, ValueError) as e:
        if is_outage(e):
            raise Unavailable(f"database unavailable while {action}") from e
        raise StorageRejected(f"the database refused the data while {action}") from e


def quote_schema(schema: str) -> str:
    if not _IDENTIFIER.fullmatch(schema):
        raise ValueError(f"PostgreSQL schema {schema!r} is not a plain SQL identifier")
    return f'"{schema}"'


def notify_channel(schema: str) -> str:
    """The LISTEN/NOTIFY channel of one schema's configuration (identifiers max 63 bytes)."""
    return f"bricksllm_config_{schema}"[:63]


def postgres_connect_args(pg: PostgresSettings, *, command_timeout: float | None) -> dict[str, Any]:
    """`pg_connect.connect_writable` keyword arguments, shared by the engine and the LISTEN
    connection: every POSTGRESQL_HOSTS entry, tried in order with its own connect timeout, the
    first that accepts writes kept (a host that refuses or does not answer, a standby, a server
    with `default_transaction_read_only` are skipped), so each new connection follows a
    failover by itself."""
    args: dict[str, Any] = {
        "addresses": pg.addresses(),
        "connect_timeout": pg.connect_timeout,
        "user": pg.username or None,
        "password": pg.password or None,
        "database": pg.db_name or None,
        "ssl": pg.ssl_mode or "disable",
        "server_settings": {"search_path": quote_schema(pg.schema), "application_name": "bricksllm"},
    }
    if command_timeout is not None:
        args["command_timeout"] = command_timeout
    return args


def postgres_listen_args(pg: PostgresSettings) -> dict[str, Any]:
    """The same for the dedicated LISTEN connection (NOTIFY is sent by the primary's
    transactions, so it listens on the primary too)."""
    args = postgres_connect_args(pg, command_timeout=None)
    args["server_settings"]["application_name"] = "bricksllm-listen"
    return args


def postgres_url(pg: PostgresSettings) -> URL:
    """The dialect and the database; connections are made by `connect_writable`."""
    return URL.create("postgresql+asyncpg", database=pg.db_name or None)


def postgres_engine(pg: PostgresSettings, *, for_migrations: bool = False) -> AsyncEngine:
    """A pooled engine. The migration engine has no command timeout: it may wait on the
    advisory lock while another instance migrates."""
    timeout = None if for_migrations else max(pg.read_timeout, pg.write_timeout)
    connect_args = postgres_connect_args(pg, command_timeout=timeout)

    from bricksllm.storage.pg_connect import connect_writable  # asyncpg: loaded on PostgreSQL only

    async def connect() -> Any:
        return await connect_writable(**connect_args)

    engine = create_async_engine(
        postgres_url(pg),
        async_creator=connect,
        pool_size=1 if for_migrations else 10,
        max_overflow=0 if for_migrations else 10,
        pool_pre_ping=True,
    )

    @event.listens_for(engine.sync_engine, "handle_error")
    def _read_only_is_a_disconnect(context: sa.engine.ExceptionContext) -> None:
        # The server this pool is connected to stopped accepting writes (a primary demoted or
        # set read-only): drop the pool's connections, so the next ones go through the host
        # list again and land on the new primary.
        if getattr(context.original_exception, "sqlstate", None) == _READ_ONLY_SQLSTATE:
            context.is_disconnect = True

    return engine


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
