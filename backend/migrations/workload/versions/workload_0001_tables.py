"""The workload tables as they were when migrations began (what ``create_all`` made until then).

The baseline of the history. On a database made before migrations (no version table) it
adopts what is there: the tables the database has are kept as they are, with their rows,
and only the missing ones are made (older Outposts had fewer tables).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from backend.migrations.ops import key, tables

revision = "workload_0001_tables"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    missing = {"boards", "positions", "published", "tasks"} - tables()
    if "boards" in missing:
        op.create_table(
            "boards",
            sa.Column("id", key(), nullable=False),
            sa.Column("state", sa.Text(), nullable=False),
            sa.Column("wip_limit", sa.Integer(), nullable=True),
            sa.PrimaryKeyConstraint("id"),
        )
    if "positions" in missing:
        op.create_table(
            "positions",
            sa.Column("component", sa.String(length=32), nullable=False),
            sa.Column("seq", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("component"),
        )
    if "published" in missing:
        op.create_table(
            "published",
            sa.Column("event_id", sa.String(length=80), nullable=False),
            sa.PrimaryKeyConstraint("event_id"),
        )
    if "tasks" in missing:
        op.create_table(
            "tasks",
            sa.Column("id", key(), nullable=False),
            sa.Column("board", key(), nullable=False),
            sa.Column("state", sa.Text(), nullable=False),
            sa.Column("counts_for", key(32), nullable=True),
            sa.Column("counting", sa.Boolean(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index(op.f("ix_tasks_counts_for"), "tasks", ["counts_for"])


def downgrade() -> None:
    op.drop_index(op.f("ix_tasks_counts_for"), table_name="tasks")
    op.drop_table("tasks")
    op.drop_table("published")
    op.drop_table("positions")
    op.drop_table("boards")
