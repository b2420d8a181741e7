"""PII policies; a key's policy; what a policy decided, recorded on each event.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "policies",
        sa.Column("id", sa.String(), nullable=False, primary_key=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("tags", Json, nullable=False),
        sa.Column("document", Json, nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
    )
    with op.batch_alter_table("keys") as keys:
        keys.add_column(sa.Column("policy_id", sa.String(), nullable=False, server_default=""))
    with op.batch_alter_table("events") as events:
        events.add_column(sa.Column("action", sa.String(), nullable=False, server_default=""))
        events.add_column(sa.Column("pii_entities", Json, nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("events") as events:
        events.drop_column("pii_entities")
        events.drop_column("action")
    with op.batch_alter_table("keys") as keys:
        keys.drop_column("policy_id")
    op.drop_table("policies")
