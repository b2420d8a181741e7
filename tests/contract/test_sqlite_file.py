"""The embedded database is a real SQLite file in the data directory, in WAL mode (readers never
wait for the event writer), created with its folder on first start."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from bricksllm.settings import Settings
from bricksllm.storage.sql import open_stores


async def test_first_start_creates_the_folder_and_a_wal_database(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "new" / "folder")
    stores = await open_stores(settings)
    await stores.close()
    assert settings.sqlite_path.is_file()
    with contextlib.closing(sqlite3.connect(settings.sqlite_path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"keys", "provider_settings", "custom_providers", "events", "alembic_version"} <= tables
