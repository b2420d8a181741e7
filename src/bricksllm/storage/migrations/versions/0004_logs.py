"""Request logs and capture: each event's correlation id and captured bodies; a key's capture flags.

Revision ID: 0004_logs
Revises: 0003_routes
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_logs"
down_revision: str | None = "0003_routes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("keys") as keys:
        keys.add_column(
            sa.Column("should_log_request", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        keys.add_column(
            sa.Column("should_log_response", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("events") as events:
        events.add_column(sa.Column("correlation_id", sa.String(), nullable=False, server_default=""))
        events.add_column(sa.Column("request_body", sa.Text(), nullable=False, server_default=""))
        events.add_column(sa.Column("response_body", sa.Text(), nullable=False, server_default=""))
    op.create_index("ix_events_correlation_id", "events", ["correlation_id"])


def downgrade() -> None:
    op.drop_index("ix_events_correlation_id", table_name="events")
    with op.batch_alter_table("events") as events:
        events.drop_column("response_body")
        events.drop_column("request_body")
        events.drop_column("correlation_id")
    with op.batch_alter_table("keys") as keys:
        keys.drop_column("should_log_response")
        keys.drop_column("should_log_request")
