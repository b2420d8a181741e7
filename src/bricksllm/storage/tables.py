"""SQLAlchemy Core tables shared by the SQLite and PostgreSQL backends.

This is what the queries are written against. The schema itself is created by the Alembic
migrations in `storage/migrations/versions/` (frozen copies, so history never changes when this
file does); a contract test checks that the migrated database matches these definitions.

Times are unix seconds (BIGINT), money is integer micro-dollars (BIGINT). List- and map-valued
fields are JSON (JSONB on PostgreSQL, so `@>` containment works on event tags).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

metadata = sa.MetaData()


class Json(sa.types.TypeDecorator[Any]):
    """JSON, as JSONB on PostgreSQL; the PostgreSQL dialect is imported only when it is used."""

    impl = sa.JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return super().load_dialect_impl(dialect)


def _text(name: str, *, primary_key: bool = False) -> sa.Column[str]:
    return sa.Column(name, sa.String(), nullable=False, primary_key=primary_key)


def _bigint(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), nullable=False)


def _json(name: str) -> sa.Column[object]:
    return sa.Column(name, Json(), nullable=False)


keys = sa.Table(
    "keys",
    metadata,
    _text("key_id", primary_key=True),
    _text("key_hash"),
    _text("name"),
    _json("tags"),
    _text("setting_id"),
    _json("setting_ids"),
    sa.Column("revoked", sa.Boolean(), nullable=False),
    _text("revoked_reason"),
    _bigint("cost_limit_micros"),
    _bigint("cost_limit_over_time_micros"),
    _text("cost_limit_unit"),
    _bigint("rate_limit_over_time"),
    _text("rate_limit_unit"),
    _text("ttl"),
    _bigint("ttl_seconds"),
    _json("allowed_paths"),
    _bigint("created_at"),
    _bigint("updated_at"),
    sa.Column("policy_id", sa.String(), nullable=False, server_default=""),
    sa.Column("should_log_request", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("should_log_response", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("limits", Json(), nullable=False, server_default="{}"),  # storage.sql_limits
    sa.UniqueConstraint("key_hash", name="uq_keys_key_hash"),
)

policies = sa.Table(
    "policies",
    metadata,
    _text("id", primary_key=True),
    _text("name"),
    _json("tags"),
    _json("document"),  # the rules as the admin API takes them (config, regexConfig, ...)
    _bigint("created_at"),
    _bigint("updated_at"),
)

provider_settings = sa.Table(
    "provider_settings",
    metadata,
    _text("id", primary_key=True),
    _text("provider"),
    _text("name"),
    _json("setting"),  # secrets: never serialise out
    _json("allowed_models"),
    _json("prices"),  # {model: {input, output, cached_input}} in USD per 1M tokens
    _bigint("created_at"),
    _bigint("updated_at"),
)

custom_providers = sa.Table(
    "custom_providers",
    metadata,
    _text("id", primary_key=True),
    _text("provider"),  # lower-cased name; unique case-insensitively because of that
    _json("route_configs"),
    _text("authentication_param"),
    _bigint("created_at"),
    _bigint("updated_at"),
    sa.UniqueConstraint("provider", name="uq_custom_providers_provider"),
)

events = sa.Table(
    "events",
    metadata,
    _text("id", primary_key=True),
    _bigint("created_at"),
    _text("key_id"),
    _json("tags"),
    _text("provider"),
    _text("model"),
    sa.Column("status", sa.Integer(), nullable=False),
    _bigint("cost_micros"),
    _bigint("prompt_token_count"),
    _bigint("completion_token_count"),
    _bigint("latency_in_ms"),
    _text("path"),
    _text("method"),
    _text("custom_id"),
    sa.Column("action", sa.String(), nullable=False, server_default=""),  # a PII policy's verdict
    sa.Column("pii_entities", Json(), nullable=False, server_default="[]"),  # entity types, never values
    sa.Column("route_id", sa.String(), nullable=False, server_default=""),  # a route call's route
    sa.Column("route_step", sa.Integer(), nullable=False, server_default="-1"),  # the step that answered
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),  # upstream requests made
    sa.Column("cached", sa.Boolean(), nullable=False, server_default=sa.false()),  # answered from the cache
    sa.Column("correlation_id", sa.String(), nullable=False, server_default=""),  # x-bricksllm-request-id
    sa.Column("request_body", sa.Text(), nullable=False, server_default=""),  # captured when the key asks
    sa.Column("response_body", sa.Text(), nullable=False, server_default=""),
    sa.Index("ix_events_created_at", "created_at"),
    sa.Index("ix_events_key_id_created_at", "key_id", "created_at"),
    sa.Index("ix_events_custom_id", "custom_id"),
    sa.Index("ix_events_correlation_id", "correlation_id"),
)

routes = sa.Table(
    "routes",
    metadata,
    _text("id", primary_key=True),
    _text("name"),
    _text("path"),  # served at /api/routes{path}
    _json("key_ids"),
    _json("steps"),  # [{provider, model, setting_id, retries, retry_interval, timeout, params}]
    _text("retry_strategy"),
    _json("cache_config"),  # {enabled, ttl}
    _bigint("created_at"),
    _bigint("updated_at"),
    sa.UniqueConstraint("path", name="uq_routes_path"),
)

# One row (id = 1). Every configuration write increments it in the same transaction, so a
# reader that sees version v also sees every write up to v.
config_version = sa.Table(
    "config_version",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
    _bigint("version"),
)

tag_budgets = sa.Table(
    "tag_budgets",
    metadata,
    _text("tag", primary_key=True),
    _json("limits"),  # [[metric, amount, unit], ...] as in storage.sql_limits
    _bigint("created_at"),
    _bigint("updated_at"),
)
