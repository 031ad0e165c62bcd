"""The projector tables as they were when migrations began (what ``create_all`` made until then).

The baseline of the history. On a database made before migrations (no version table) it
adopts what is there: the tables the database has are kept as they are, with their rows,
and only the missing ones are made (older Outposts had fewer tables).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from backend.migrations.ops import key, tables

revision = "projector_0001_tables"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    missing = {
        "applied",
        "info",
        "memberships",
        "positions",
        "published",
        "saga_priors",
        "views",
    } - tables()
    if "applied" in missing:
        op.create_table(
            "applied",
            sa.Column("event_id", key(), nullable=False),
            sa.Column("seq", sa.BigInteger(), nullable=False),
            sa.Column("times", sa.Integer(), nullable=False),
            sa.PrimaryKeyConstraint("event_id"),
        )
    if "info" in missing:
        op.create_table(
            "info",
            sa.Column("key", sa.String(length=32), nullable=False),
            sa.Column("value", sa.Text(), nullable=False),
            sa.PrimaryKeyConstraint("key"),
        )
    if "memberships" in missing:
        op.create_table(
            "memberships",
            sa.Column("board", key(), nullable=False),
            sa.Column("username", key(32), nullable=False),
            sa.Column("active", sa.Boolean(), nullable=False),
            sa.Column("version", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("board", "username"),
        )
        op.create_index("ix_memberships_username", "memberships", ["username", "version"])
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
    if "saga_priors" in missing:
        op.create_table(
            "saga_priors",
            sa.Column("event_id", key(), nullable=False),
            sa.Column("board", key(), nullable=False),
            sa.Column("task", key(), nullable=False),
            sa.Column("actor", key(32), nullable=False),
            sa.Column("hlc", key(120), nullable=False),
            sa.Column("restored", sa.Text(), nullable=False),
            sa.PrimaryKeyConstraint("event_id"),
        )
    if "views" in missing:
        op.create_table(
            "views",
            sa.Column("kind", sa.String(length=16), nullable=False),
            sa.Column("id", key(120), nullable=False),
            sa.Column("board", key(), nullable=False),
            sa.Column("version", sa.BigInteger(), nullable=False),
            sa.Column("state", sa.Text(), nullable=False),
            sa.Column("values", sa.Text(), nullable=True),
            sa.Column("meta", sa.Text(), nullable=False),
            sa.Column("audience", key(32), nullable=True),
            sa.PrimaryKeyConstraint("kind", "id"),
            sa.UniqueConstraint("version"),
        )
        op.create_index("ix_views_board_version", "views", ["board", "version"])


def downgrade() -> None:
    op.drop_index("ix_views_board_version", table_name="views")
    op.drop_table("views")
    op.drop_table("saga_priors")
    op.drop_table("published")
    op.drop_table("positions")
    op.drop_index("ix_memberships_username", table_name="memberships")
    op.drop_table("memberships")
    op.drop_table("info")
    op.drop_table("applied")
