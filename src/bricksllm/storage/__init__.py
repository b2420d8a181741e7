"""Storage backends implementing the ports in `bricksllm.ports`.

The SQL backend (one implementation for SQLite and PostgreSQL) is opened with
`bricksllm.storage.sql.open_stores`; `app.py` is the only caller. Nothing is imported here, so
using one backend never loads the drivers of another.
"""
