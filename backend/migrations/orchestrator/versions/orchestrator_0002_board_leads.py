"""Each board's own reminder lead time, set by its owner (none: ``OUTPOST_REMINDER_LEAD_S``)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from backend.migrations.ops import key, tables

revision = "orchestrator_0002_board_leads"
down_revision = "orchestrator_0001_tables"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "board_reminders" not in tables():  # a database made by create_all
        op.create_table(
            "board_reminders",
            sa.Column("board", key(), nullable=False),
            sa.Column("lead_s", sa.Integer(), nullable=False),
            sa.PrimaryKeyConstraint("board"),
        )


def downgrade() -> None:
    op.drop_table("board_reminders")
