"""The event writer keeps events through outages, drops only what the store refuses, and flushes
on stop. A scripted in-memory store stands in for the database (the SQL stores have their own
contract suite)."""

from __future__ import annotations

from collections.abc import Sequence

from bricksllm.domain.models import Event
from bricksllm.errors import Unavailable
from bricksllm.services.events import EventWriter
from bricksllm.telemetry.metrics import InMemoryMetrics


class ScriptedStore:
    def __init__(self) -> None:
        self.rows: list[Event] = []
        self.down = False
        self.poison: set[str] = set()

    async def insert_events(self, events: Sequence[Event]) -> None:
        if self.down:
            raise Unavailable("database unreachable")
        if any(e.id in self.poison for e in events):
            raise ValueError("bad row")
        self.rows.extend(events)


def ev(i: int) -> Event:
    return Event(
        id=f"e{i}",
        created_at=i,
        key_id="k",
        provider="openai",
        model="m",
        status=200,
        path="/",
        method="POST",
    )


async def test_outage_keeps_events_and_stop_flushes_them() -> None:
    store = ScriptedStore()
    writer = EventWriter(store, InMemoryMetrics(), batch_size=3)  # type: ignore[arg-type]
    store.down = True
    for i in range(7):
        writer.record(ev(i))
    assert not await writer.flush()
    assert writer.pending == 7
    store.down = False
    await writer.stop()
    assert [e.id for e in store.rows] == [f"e{i}" for i in range(7)]


async def test_a_refused_event_is_dropped_and_counted_the_rest_written() -> None:
    store, metrics = ScriptedStore(), InMemoryMetrics()
    store.poison = {"e1"}
    writer = EventWriter(store, metrics, batch_size=10)  # type: ignore[arg-type]
    for i in range(4):
        writer.record(ev(i))
    await writer.flush()
    assert [e.id for e in store.rows] == ["e0", "e2", "e3"]
    assert writer.pending == 0 and metrics.counts["events.rejected"] == 1


async def test_full_buffer_drops_oldest_and_counts() -> None:
    store, metrics = ScriptedStore(), InMemoryMetrics()
    writer = EventWriter(store, metrics, batch_size=100, max_buffer=3)  # type: ignore[arg-type]
    for i in range(5):
        writer.record(ev(i))
    await writer.flush()
    assert [e.id for e in store.rows] == ["e2", "e3", "e4"]
    assert writer.dropped == 2 and metrics.counts["events.dropped"] == 2
