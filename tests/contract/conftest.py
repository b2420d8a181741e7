"""Fixtures for the storage contract suites: every test runs once per SQL backend.

`store_settings` points at a fresh SQLite file or a fresh PostgreSQL schema; `stores` opens
(and migrates) the backend on it and closes it after the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bricksllm.settings import Settings
from bricksllm.storage.sql import SqlStores, open_stores


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_settings(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path, sqlite_path: Path
) -> Settings:
    pg = request.getfixturevalue("pg_settings") if backend == "postgres" else None
    settings = Settings(data_dir=tmp_path, postgres=pg)
    assert settings.sqlite_path == sqlite_path
    return settings


@pytest.fixture
async def stores(store_settings: Settings) -> AsyncIterator[SqlStores]:
    opened = await open_stores(store_settings)
    try:
        yield opened
    finally:
        await opened.close()
