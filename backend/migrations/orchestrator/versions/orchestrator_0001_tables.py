"""The orchestrator's tables: board owners, each task's merged state and process states."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from backend.migrations.ops import key, tables

revision = "orchestrator_0001_tables"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    missing = {"boards", "positions", "tasks"} - tables()  # a database made by create_all
    if "boards" in missing:
        op.create_table(
            "boards",
            sa.Column("id", key(), nullable=False),
            sa.Column("owner", key(32), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
    if "positions" in missing:
        op.create_table(
            "positions",
            sa.Column("component", sa.String(length=32), nullable=False),
            sa.Column("seq", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("component"),
        )
    if "tasks" in missing:
        op.create_table(
            "tasks",
            sa.Column("id", key(), nullable=False),
            sa.Column("board", key(), nullable=False),
            sa.Column("state", sa.Text(), nullable=False),
            sa.Column("reminder", sa.String(length=16), nullable=False),
            sa.Column("reminder_plan", sa.Text(), nullable=True),
            sa.Column("recurrence", sa.String(length=16), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )


def downgrade() -> None:
    op.drop_table("tasks")
    op.drop_table("positions")
    op.drop_table("boards")
