"""Routes (retries, failover, cache); what an event keeps of a route call.

Revision ID: 0003_routes
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0003_routes"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "routes",
        sa.Column("id", sa.String(), nullable=False, primary_key=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("key_ids", Json, nullable=False),
        sa.Column("steps", Json, nullable=False),
        sa.Column("retry_strategy", sa.String(), nullable=False),
        sa.Column("cache_config", Json, nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("path", name="uq_routes_path"),
    )
    with op.batch_alter_table("events") as events:
        events.add_column(sa.Column("route_id", sa.String(), nullable=False, server_default=""))
        events.add_column(sa.Column("route_step", sa.Integer(), nullable=False, server_default="-1"))
        events.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        events.add_column(sa.Column("cached", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("events") as events:
        events.drop_column("cached")
        events.drop_column("attempts")
        events.drop_column("route_step")
        events.drop_column("route_id")
    op.drop_table("routes")
