"""The lake tables as they were when migrations began (what ``create_all`` made until then).

The baseline of the history. On a database made before migrations (no version table) it
adopts what is there: the tables the database has are kept as they are, with their rows,
and only the missing ones are made (older Outposts had fewer tables).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from backend.migrations.ops import key, tables

revision = "lake_0001_tables"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    missing = {"archive", "epochs", "files", "positions"} - tables()
    if "archive" in missing:
        op.create_table(
            "archive",
            sa.Column("epoch", sa.Integer(), autoincrement=False, nullable=False),
            sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
            sa.Column("event_id", key(), nullable=True),
            sa.Column("board", key(200), nullable=True),
            sa.Column("path", key(200), nullable=False),
            sa.Column("offset", sa.BigInteger(), nullable=False),
            sa.Column("line", sa.BigInteger(), nullable=False),
            sa.Column("time_ms", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("epoch", "seq"),
            sa.UniqueConstraint("event_id"),
        )
        op.create_index("ix_archive_board", "archive", ["board", "epoch", "seq"])
    if "epochs" in missing:
        op.create_table(
            "epochs",
            sa.Column("epoch", sa.Integer(), autoincrement=False, nullable=False),
            sa.Column("started_at", sa.BigInteger(), nullable=False),
            sa.Column("stream_created", sa.String(length=64), nullable=True),
            sa.PrimaryKeyConstraint("epoch"),
        )
    if "files" in missing:
        op.create_table(
            "files",
            sa.Column("path", key(200), nullable=False),
            sa.Column("epoch", sa.Integer(), nullable=False),
            sa.Column("date", sa.String(length=10), nullable=False),
            sa.Column("hour", sa.Integer(), nullable=False),
            sa.Column("first_seq", sa.BigInteger(), nullable=False),
            sa.Column("last_seq", sa.BigInteger(), nullable=False),
            sa.Column("lines", sa.BigInteger(), nullable=False),
            sa.Column("bytes", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("path"),
        )
        op.create_index("ix_files_epoch", "files", ["epoch", "first_seq"])
    if "positions" in missing:
        op.create_table(
            "positions",
            sa.Column("component", sa.String(length=32), nullable=False),
            sa.Column("seq", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("component"),
        )


def downgrade() -> None:
    op.drop_table("positions")
    op.drop_index("ix_files_epoch", table_name="files")
    op.drop_table("files")
    op.drop_table("epochs")
    op.drop_index("ix_archive_board", table_name="archive")
    op.drop_table("archive")
