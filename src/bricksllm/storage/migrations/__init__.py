"""Alembic migrations for the SQL backends, run programmatically by `bricksllm.storage.sql.migrate`."""

# The newest revision in versions/. Start-up compares the database with it before importing
# Alembic; tests/contract/test_migrations_head.py keeps the two in step.
HEAD = "0005_spend"
