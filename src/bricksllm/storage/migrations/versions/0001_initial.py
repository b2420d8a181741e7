"""Initial schema: keys, provider settings, custom providers, events, config version.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here on purpose: later changes to tables.py must come with a new migration.
Json = sa.JSON().with_variant(JSONB(), "postgresql")


def _text(name: str, *, primary_key: bool = False) -> sa.Column[str]:
    return sa.Column(name, sa.String(), nullable=False, primary_key=primary_key)


def _bigint(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), nullable=False)


def _json(name: str) -> sa.Column[object]:
    return sa.Column(name, Json, nullable=False)


def upgrade() -> None:
    op.create_table(
        "keys",
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
        sa.UniqueConstraint("key_hash", name="uq_keys_key_hash"),
    )
    op.create_table(
        "provider_settings",
        _text("id", primary_key=True),
        _text("provider"),
        _text("name"),
        _json("setting"),
        _json("allowed_models"),
        _json("prices"),
        _bigint("created_at"),
        _bigint("updated_at"),
    )
    op.create_table(
        "custom_providers",
        _text("id", primary_key=True),
        _text("provider"),
        _json("route_configs"),
        _text("authentication_param"),
        _bigint("created_at"),
        _bigint("updated_at"),
        sa.UniqueConstraint("provider", name="uq_custom_providers_provider"),
    )
    op.create_table(
        "events",
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
    )
    op.create_index("ix_events_created_at", "events", ["created_at"])
    op.create_index("ix_events_key_id_created_at", "events", ["key_id", "created_at"])
    op.create_index("ix_events_custom_id", "events", ["custom_id"])
    version = op.create_table(
        "config_version",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        _bigint("version"),
    )
    # Starts at 1 so that callers can use 0 for "nothing loaded yet".
    op.bulk_insert(version, [{"id": 1, "version": 1}])


def downgrade() -> None:
    for table in ("config_version", "events", "custom_providers", "provider_settings", "keys"):
        op.drop_table(table)
