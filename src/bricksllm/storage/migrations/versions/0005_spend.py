"""Several limits per key (requests, spend, tokens; per model) and tag budgets.

Revision ID: 0005_spend
Revises: 0004_logs
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0005_spend"
down_revision: str | None = "0004_logs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("keys") as keys:
        keys.add_column(sa.Column("limits", Json, nullable=False, server_default="{}"))
    op.create_table(
        "tag_budgets",
        sa.Column("tag", sa.String(), nullable=False, primary_key=True),
        sa.Column("limits", Json, nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tag_budgets")
    with op.batch_alter_table("keys") as keys:
        keys.drop_column("limits")
