"""The in-memory configuration snapshot the proxy reads on every request (no database I/O).

The snapshot is replaced whole, never mutated, so a request sees one consistent view. It is
refreshed (1) at once after a write made through this process's admin API, (2) when the store
pushes a change made by another instance (PostgreSQL LISTEN/NOTIFY), and (3) by polling the
store's cheap `version()` every `interval` seconds, which also catches missed notifications.
Deletions propagate because every refresh loads the whole configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bricksllm.domain.models import CustomProvider, Key, Limit, ProviderSetting
from bricksllm.domain.pii import BUILTIN_ONLY, ENTITIES, Capabilities, CompiledPolicy, parse_policy
from bricksllm.domain.routes import Route
from bricksllm.outages import OutageLog
from bricksllm.ports import ConfigSnapshot, ConfigStore, Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ConfigIndex:
    version: int = -1
    keys_by_hash: dict[str, Key] = field(default_factory=dict)
    keys_by_id: dict[str, Key] = field(default_factory=dict)
    settings: dict[str, ProviderSetting] = field(default_factory=dict)
    custom_providers: dict[str, CustomProvider] = field(default_factory=dict)
    policies: dict[str, CompiledPolicy] = field(default_factory=dict)  # compiled once per change
    routes_by_path: dict[str, Route] = field(default_factory=dict)
    budgets: Mapping[str, tuple[Limit, ...]] = field(default_factory=dict)  # tag -> its budget

    @classmethod
    def build(cls, snap: ConfigSnapshot, caps: Capabilities = BUILTIN_ONLY) -> ConfigIndex:
        return cls(
            version=snap.version,
            keys_by_hash={k.key_hash: k for k in snap.keys},
            keys_by_id={k.key_id: k for k in snap.keys},
            settings={s.id: s for s in snap.settings},
            custom_providers={p.provider: p for p in snap.custom_providers},
            policies={p.id: compile_policy(p.document, caps) for p in snap.policies},
            routes_by_path={r.path: r for r in snap.routes},
            budgets=snap.budgets,
        )


# Stored policies were valid when written; read back with every entity allowed, so that one naming
# an entity the running engines cannot find still loads: `CompiledPolicy.missing` then makes its
# requests fail like an engine outage (never silently allowed).
_READ_BACK = Capabilities(engine="stored", engine_entities=ENTITIES, custom_rules=True)


def compile_policy(document: Mapping[str, Any], caps: Capabilities) -> CompiledPolicy:
    return CompiledPolicy(parse_policy(document, _READ_BACK), caps)


class ConfigCache:
    def __init__(
        self, store: ConfigStore, interval: float, metrics: Metrics, caps: Capabilities = BUILTIN_ONLY
    ) -> None:
        self._store = store
        self._caps = caps
        self._interval = interval
        self._metrics = metrics
        self.current = ConfigIndex()
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._outage = OutageLog(log, "the configuration cannot be refreshed (serving the last snapshot)")

    async def refresh(self) -> None:
        """Load the whole configuration and swap it in (serialised; newest version wins)."""
        async with self._lock:
            snap = await self._store.snapshot()
            if snap.version != self.current.version:
                self.current = ConfigIndex.build(snap, self._caps)

    def poke(self) -> None:
        """Ask for a refresh soon (called from a change notification)."""
        self._wake.set()

    async def start(self) -> None:
        await self.refresh()
        await self._store.listen(self.poke)
        self._task = asyncio.create_task(self._run(), name="config-refresh")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            try:
                if await self._store.version() != self.current.version:
                    await self.refresh()
                self._outage.recovered()
            except Exception as exc:  # a store outage must not kill the loop; the old snapshot keeps serving
                self._metrics.incr("config.refresh_error")
                self._outage.failed(exc)
