"""Alembic migrations for the SQL backends, run programmatically by `bricksllm.storage.sql.migrate`."""
