"""`SqlEventStore`: recorded requests, their queries and time-series reports.

Filtering and aggregation happen in SQL on both dialects; only the tag test and the latency
percentiles differ: PostgreSQL uses JSONB containment and `percentile_cont`, SQLite uses
`json_each` and `domain.reporting.percentile_cont` over the fetched, sorted latencies. Every
value reaches the database as a bound parameter.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bricksllm.domain.models import Event
from bricksllm.domain.reporting import bucket_starts, percentile_cont
from bricksllm.domain.text import clamp_int64, storable
from bricksllm.errors import Invalid
from bricksllm.ports import DataPoint, EventQuery, Report, ReportQuery
from bricksllm.storage.sql_engine import translate_errors
from bricksllm.storage.tables import events as events_table

# Statuses the gateway itself answers without forwarding: not admitted, not counted as usage.
REJECTED_STATUSES = (401, 403, 429)
PERCENTILES = (0.5, 0.99)

_c = events_table.c


# Request-derived strings may hold what no database stores (NUL, a lone surrogate from a header
# byte that is not UTF-8): every admitted call must still be recorded, so they are stored escaped.
_text = storable


def _count(value: int) -> int:
    """A count or amount as a BIGINT: never negative, never beyond 64 bits."""
    return max(0, clamp_int64(value))


_COLUMNS = (
    "id", "created_at", "key_id", "tags", "provider", "model", "status", "cost_micros",
    "prompt_token_count", "completion_token_count", "latency_in_ms", "path", "method", "custom_id",
    "action", "pii_entities", "route_id", "route_step", "attempts", "cached",
    "correlation_id", "request_body", "response_body",
)  # fmt: skip
_JSON_COLUMNS = frozenset({"tags", "pii_entities"})
_BODY_COLUMNS = frozenset({"request_body", "response_body"})
# What a listing reads unless it asks for the captured bodies (which may be large).
_WITHOUT_BODIES = tuple(c for c in events_table.c if c.name not in _BODY_COLUMNS)


def _insert_sql(postgres: bool, rows: int = 1) -> str:
    """The batch insert as driver SQL: compiled once, rows passed as plain tuples (the writer's
    cost per row is what limits the proxy, so SQLAlchemy's per-row processing is skipped here).
    On SQLite, `rows` rows in one statement (see `SqlEventStore.insert_events`)."""
    if postgres:
        marks = ", ".join(
            f"${i}::jsonb" if c in _JSON_COLUMNS else f"${i}" for i, c in enumerate(_COLUMNS, 1)
        )
        values = f"({marks})"
    else:
        values = ", ".join(["(" + ", ".join("?" for _ in _COLUMNS) + ")"] * rows)
    return f"INSERT INTO events ({', '.join(_COLUMNS)}) VALUES {values} ON CONFLICT (id) DO NOTHING"


def sqlite_rows_per_statement() -> int:
    """Rows in one SQLite insert: as many as its bound-parameter limit allows, up to 500."""
    with contextlib.closing(sqlite3.connect(":memory:")) as conn:
        limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    return max(1, min(500, limit // len(_COLUMNS)))


def event_values(event: Event) -> tuple[Any, ...]:
    return (
        _text(event.id),
        event.created_at,
        _text(event.key_id),
        orjson.dumps([_text(t) for t in event.tags]).decode(),
        _text(event.provider),
        _text(event.model),
        max(0, min(event.status, 999)),
        _count(event.cost_micros),
        _count(event.prompt_token_count),
        _count(event.completion_token_count),
        _count(event.latency_in_ms),
        _text(event.path),
        _text(event.method),
        _text(event.custom_id),
        event.action,
        orjson.dumps(event.pii_entities).decode(),
        _text(event.route_id),
        max(-1, min(event.route_step, 2**31 - 1)),
        max(0, min(event.attempts, 2**31 - 1)),
        event.cached,
        _text(event.correlation_id),
        _text(event.request_body),
        _text(event.response_body),
    )


def event_from_row(row: sa.Row[Any]) -> Event:
    m = row._mapping
    return Event(
        **{k: m[k] for k in m if k not in _JSON_COLUMNS and k != "cached"},
        tags=tuple(m["tags"]),
        pii_entities=tuple(m["pii_entities"]),
        cached=bool(m["cached"]),
    )


def _int(value: Any) -> int:
    """SUM over BIGINT is NUMERIC (Decimal) on PostgreSQL and NULL over no rows."""
    return int(value or 0)


class SqlEventStore:
    """Implements `ports.EventStore` on the engine it is given (which it does not own)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        self._insert = _insert_sql(self._postgres)
        if not self._postgres:
            # chunk sizes: the largest the parameter limit allows, then powers of two, so that
            # the driver's cache of prepared statements holds a few shapes, not one per size
            most = sqlite_rows_per_statement()
            self._chunks = [most, *(1 << p for p in range(most.bit_length() - 1, -1, -1) if 1 << p < most)]
            self._inserts = {n: _insert_sql(False, n) for n in self._chunks}

    async def insert_events(self, events: Sequence[Event]) -> None:
        """One statement for the batch on PostgreSQL; on SQLite, a few statements of many rows
        each, never `executemany`: SQLite's driver runs in a thread and hands the GIL back and
        forth for every row it inserts, which, with the event loop busy on another core, cut the
        writer to ~1,500 rows a second (under the proxy's rate: events piled up in memory).
        Idempotent on event id, so the writer can retry a batch whose commit succeeded but
        whose acknowledgement was lost."""
        if not events:
            return
        rows = [event_values(e) for e in events]
        async with translate_errors("recording events"), self._engine.begin() as conn:
            if self._postgres:
                await conn.exec_driver_sql(self._insert, rows)
                return
            start = 0
            for size in self._chunks:
                while len(rows) - start >= size:
                    part = rows[start : start + size]
                    await conn.exec_driver_sql(self._inserts[size], tuple(v for row in part for v in row))
                    start += size

    def _where(
        self,
        *,
        key_ids: Sequence[str] = (),
        tags: Sequence[str] = (),
        custom_ids: Sequence[str] = (),
        start: int | None = None,
        end: int | None = None,
        models: Sequence[str] = (),
        statuses: Sequence[tuple[int, int]] = (),
        correlation_id: str = "",
    ) -> list[sa.ColumnElement[bool]]:
        conditions: list[sa.ColumnElement[bool]] = []
        if key_ids:
            conditions.append(_c.key_id.in_(key_ids))
        if tags:
            conditions.extend(self._has_all_tags(tags))
        if custom_ids:
            conditions.append(_c.custom_id.in_(custom_ids))
        if correlation_id:
            conditions.append(_c.correlation_id == correlation_id)
        if start is not None:
            conditions.append(_c.created_at >= start)
        if end is not None:
            conditions.append(_c.created_at < end)
        if models:
            conditions.append(_c.model.in_(models))
        if statuses:
            conditions.append(sa.or_(*(sa.and_(_c.status >= lo, _c.status < hi) for lo, hi in statuses)))
        return conditions

    def _has_all_tags(self, tags: Sequence[str]) -> list[sa.ColumnElement[bool]]:
        if self._postgres:
            from sqlalchemy.dialects.postgresql import JSONB  # imported on PostgreSQL only

            return [sa.type_coerce(_c.tags, JSONB).contains(list(tags))]
        conditions: list[sa.ColumnElement[bool]] = []
        for tag in dict.fromkeys(tags):
            each = sa.func.json_each(_c.tags).table_valued("value")
            conditions.append(sa.exists().where(each.c.value == tag))
        return conditions

    def _query_where(self, query: EventQuery) -> list[sa.ColumnElement[bool]]:
        return self._where(
            key_ids=query.key_ids,
            tags=query.tags,
            custom_ids=(query.custom_id,) if query.custom_id else (),
            start=query.start,
            end=query.end,
            models=query.models,
            statuses=query.statuses,
            correlation_id=query.correlation_id,
        )

    async def query_events(self, query: EventQuery) -> list[Event]:
        """Newest first (ties by id). `limit` <= 0 means no limit."""
        where = self._query_where(query)
        columns = events_table.c if query.include_bodies else _WITHOUT_BODIES
        stmt = sa.select(*columns).where(*where).order_by(_c.created_at.desc(), _c.id).offset(query.offset)
        if query.limit > 0:
            stmt = stmt.limit(query.limit)
        async with translate_errors("querying events"), self._engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [event_from_row(r) for r in rows]

    async def count_events(self, query: EventQuery) -> int:
        stmt = sa.select(sa.func.count()).select_from(events_table).where(*self._query_where(query))
        async with translate_errors("counting events"), self._engine.connect() as conn:
            return _int(await conn.scalar(stmt))

    async def report(self, query: ReportQuery) -> Report:
        """One data point per bucket [start + i*increment, start + (i+1)*increment) that starts
        before `end`, empty buckets included; percentiles over the same filtered events."""
        if query.increment <= 0:
            raise Invalid("increment must be positive", fields=["increment"])
        starts = bucket_starts(query.start, query.end, query.increment)
        if not starts:
            return Report()
        where = self._where(
            key_ids=query.key_ids,
            tags=query.tags,
            custom_ids=query.custom_ids,
            start=query.start,
            end=query.end,
        )
        async with translate_errors("building a report"), self._engine.connect() as conn:
            by_bucket = await self._aggregate(conn, query, where)
            (median, p99), per_bucket = await self._percentiles(conn, query, where)
        points = []
        for i, s in enumerate(starts):
            p50_99 = per_bucket.get(i)
            point = by_bucket.get(i) or DataPoint(time_stamp=s)
            if p50_99 is not None:
                point = dataclasses.replace(point, latency_p50_ms=p50_99[0], latency_p99_ms=p50_99[1])
            points.append(point)
        return Report(data_points=points, latency_median_ms=median, latency_p99_ms=p99)

    @staticmethod
    def _bucketed(query: ReportQuery, where: list[sa.ColumnElement[bool]]) -> sa.Subquery:
        # The bucket number is computed in a subquery and grouped on by name: PostgreSQL does
        # not treat two renderings of an expression with separate bind parameters as equal.
        bucket = ((_c.created_at - query.start) // query.increment).label("bucket")
        return sa.select(bucket, events_table).where(*where).subquery()

    async def _aggregate(
        self, conn: AsyncConnection, query: ReportQuery, where: list[sa.ColumnElement[bool]]
    ) -> dict[int, DataPoint]:
        inner = self._bucketed(query, where)
        ok = sa.and_(inner.c.status >= 200, inner.c.status < 300)
        stmt = sa.select(
            inner.c.bucket,
            sa.func.count(),
            sa.func.sum(inner.c.cost_micros),
            sa.func.sum(inner.c.latency_in_ms),
            sa.func.sum(inner.c.prompt_token_count),
            sa.func.sum(inner.c.completion_token_count),
            sa.func.count().filter(ok),
        ).group_by(inner.c.bucket)
        points: dict[int, DataPoint] = {}
        for index, count, cost, latency, prompt, completion, success in await conn.execute(stmt):
            points[index] = DataPoint(
                time_stamp=query.start + index * query.increment,
                number_of_requests=_int(count),
                cost_micros=_int(cost),
                latency_sum_ms=_int(latency),
                prompt_token_count=_int(prompt),
                completion_token_count=_int(completion),
                success_count=_int(success),
            )
        return points

    async def _percentiles(
        self, conn: AsyncConnection, query: ReportQuery, where: list[sa.ColumnElement[bool]]
    ) -> tuple[tuple[float, float], dict[int, tuple[float, float]]]:
        """((median, p99) over the whole range, {bucket: (median, p99)} of non-empty buckets)."""
        if self._postgres:
            overall = sa.select(
                *(sa.func.percentile_cont(q).within_group(_c.latency_in_ms) for q in PERCENTILES)
            ).where(*where)
            row = (await conn.execute(overall)).one()
            inner = self._bucketed(query, where)
            each = sa.select(
                inner.c.bucket,
                *(sa.func.percentile_cont(q).within_group(inner.c.latency_in_ms) for q in PERCENTILES),
            ).group_by(inner.c.bucket)
            per_bucket = {int(b): (float(m), float(p)) for b, m, p in await conn.execute(each)}
            return (float(row[0] or 0.0), float(row[1] or 0.0)), per_bucket
        inner = self._bucketed(query, where)
        stmt = sa.select(inner.c.bucket, inner.c.latency_in_ms).order_by(inner.c.latency_in_ms)
        everything: list[int] = []
        by_bucket: dict[int, list[int]] = {}
        for bucket, latency in await conn.execute(stmt):
            everything.append(latency)
            by_bucket.setdefault(int(bucket), []).append(latency)  # stays sorted
        median, p99 = (percentile_cont(everything, q) for q in PERCENTILES)
        return (median, p99), {
            b: (percentile_cont(values, PERCENTILES[0]), percentile_cont(values, PERCENTILES[1]))
            for b, values in by_bucket.items()
        }

    async def key_usage(self, key_id: str, since: int) -> tuple[int, int]:
        """(events of the key since `since` that the gateway admitted, i.e. not answered
        401/403/429 by itself; cost of all its events since `since`)."""
        stmt = sa.select(
            sa.func.count().filter(_c.status.not_in(REJECTED_STATUSES)),
            sa.func.sum(_c.cost_micros),
        ).where(_c.key_id == key_id, _c.created_at >= since)
        async with translate_errors("reading key usage"), self._engine.connect() as conn:
            admitted, cost = (await conn.execute(stmt)).one()
        return _int(admitted), _int(cost)

    async def usage(self, query: EventQuery) -> tuple[int, int, int]:
        """(admitted events, cost, input + output tokens) of the events matching the query's
        key ids, tags, models and start (the rest of it ignored)."""
        stmt = sa.select(
            sa.func.count().filter(_c.status.not_in(REJECTED_STATUSES)),
            sa.func.sum(_c.cost_micros),
            sa.func.sum(_c.prompt_token_count + _c.completion_token_count),
        ).where(*self._where(key_ids=query.key_ids, tags=query.tags, models=query.models, start=query.start))
        async with translate_errors("reading usage"), self._engine.connect() as conn:
            admitted, cost, tokens = (await conn.execute(stmt)).one()
        return _int(admitted), _int(cost), _int(tokens)

    async def close(self) -> None:
        """Nothing to release: the engine belongs to `SqlStores`."""
