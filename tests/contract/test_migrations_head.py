"""Start-up skips Alembic when the database is at `migrations.HEAD`: that constant must be the
real head, and an up-to-date database must be recognised without running a migration."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory

from bricksllm.storage import sql_engine
from bricksllm.storage.migrations import HEAD


def test_head_constant_is_alembics_head() -> None:
    config = Config()
    config.set_main_option("script_location", str(sql_engine.MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD


async def test_an_up_to_date_database_is_not_migrated_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = sql_engine.sqlite_engine(tmp_path / "db.sqlite3")
    try:
        assert not await sql_engine._at_head(engine, "public")
        await sql_engine.migrate(engine)
        assert await sql_engine._at_head(engine, "public")

        def fail(*args: object) -> None:
            raise AssertionError("Alembic ran on an up-to-date database")

        monkeypatch.setattr(sql_engine, "_alembic_upgrade", fail)
        await sql_engine.migrate(engine)
        async with engine.connect() as conn:
            assert await conn.scalar(sa.text("SELECT version_num FROM alembic_version")) == HEAD
    finally:
        await engine.dispose()
