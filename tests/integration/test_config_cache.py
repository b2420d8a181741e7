"""The proxy's in-memory configuration follows the store even without a push notification:
polling the version number picks up changes and deletions made by another writer."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bricksllm.domain.models import Key, ProviderSetting, hash_secret
from bricksllm.services.config_cache import ConfigCache
from bricksllm.settings import Settings
from bricksllm.storage.sql import open_stores
from bricksllm.telemetry.metrics import NullMetrics


async def _until(check: object, within: float = 3.0) -> None:
    for _ in range(int(within / 0.02)):
        if check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the cache did not catch up")


async def test_polling_picks_up_writes_and_deletes_of_another_writer(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    reader, writer = await open_stores(settings), await open_stores(settings)  # SQLite: no NOTIFY
    cache = ConfigCache(reader.config, interval=0.05, metrics=NullMetrics())
    try:
        await cache.start()
        assert cache.current.keys_by_hash == {}
        await writer.config.create_setting(
            ProviderSetting(id="s", provider="openai", created_at=1, updated_at=1)
        )
        key = Key(
            key_id="k", name="n", key_hash=hash_secret("secret"), created_at=1, updated_at=1, setting_id="s"
        )
        await writer.config.create_key(key)
        await _until(lambda: hash_secret("secret") in cache.current.keys_by_hash)
        assert cache.current.settings["s"].provider == "openai"
        assert await writer.config.delete_key("k")
        await _until(lambda: cache.current.keys_by_hash == {})
    finally:
        await cache.stop()
        await reader.close()
        await writer.close()
