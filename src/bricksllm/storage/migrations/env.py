"""Alembic environment: always online, on a connection handed over by `migrate()`.

`migrate()` opens the connection, starts the transaction (and on PostgreSQL takes the advisory
lock) and passes it in `config.attributes["connection"]`; Alembic runs inside that transaction.
There is no alembic.ini and no offline (--sql) mode.
"""

from __future__ import annotations

from alembic import context

from bricksllm.storage.tables import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("bricksllm migrations run through bricksllm.storage.sql.migrate(engine)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table_schema=config.attributes.get("version_table_schema"),
)
with context.begin_transaction():
    context.run_migrations()
