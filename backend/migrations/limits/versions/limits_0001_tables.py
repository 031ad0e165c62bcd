"""The limits tables as they were when migrations began (what ``create_all`` made until then).

The baseline of the history. On a database made before migrations (no version table) it
adopts what is there: the tables the database has are kept as they are, with their rows,
and only the missing ones are made (older Outposts had fewer tables).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from backend.migrations.ops import key, tables

revision = "limits_0001_tables"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    missing = {"rate_buckets", "signin_failures"} - tables()
    if "rate_buckets" in missing:
        op.create_table(
            "rate_buckets",
            sa.Column("key", key(200), nullable=False),
            sa.Column("tat_us", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("key"),
        )
    if "signin_failures" in missing:
        op.create_table(
            "signin_failures",
            sa.Column("key", key(200), nullable=False),
            sa.Column("failures", sa.Integer(), nullable=False),
            sa.Column("strikes", sa.Integer(), nullable=False),
            sa.Column("blocked_until_ms", sa.BigInteger(), nullable=False),
            sa.Column("checking_until_ms", sa.BigInteger(), nullable=False),
            sa.Column("expires_at_ms", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("key"),
        )
        op.create_index("ix_signin_failures_expires", "signin_failures", ["expires_at_ms"])


def downgrade() -> None:
    op.drop_index("ix_signin_failures_expires", table_name="signin_failures")
    op.drop_table("signin_failures")
    op.drop_table("rate_buckets")
