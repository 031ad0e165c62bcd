"""The bff tables as they were when migrations began (what ``create_all`` made until then).

The baseline of the history. On a database made before migrations (no version table) it
adopts what is there: the tables the database has are kept as they are, with their rows,
and only the missing ones are made (older Outposts had fewer tables).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from backend.migrations.ops import key, tables

revision = "bff_0001_tables"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    missing = {
        "boards",
        "devices",
        "entities",
        "event_ids",
        "members",
        "users",
        "refresh_families",
        "refresh_tokens",
    } - tables()
    if "boards" in missing:
        op.create_table(
            "boards",
            sa.Column("id", key(), nullable=False),
            sa.Column("state", sa.Text(), nullable=True),
            sa.PrimaryKeyConstraint("id"),
        )
    if "devices" in missing:
        op.create_table(
            "devices",
            sa.Column("id", key(), nullable=False),
            sa.Column("username", key(32), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("ix_devices_username", "devices", ["username"])
    if "entities" in missing:
        op.create_table(
            "entities",
            sa.Column("id", key(), nullable=False),
            sa.Column("board", key(), nullable=False),
            sa.Column("kind", sa.String(length=16), nullable=False),
            sa.Column("author", key(32), nullable=True),
            sa.PrimaryKeyConstraint("id"),
        )
    if "event_ids" in missing:
        op.create_table(
            "event_ids",
            sa.Column("id", key(), nullable=False),
            sa.Column("actor", key(32), nullable=False),
            sa.Column("hash", key(64), nullable=False),
            sa.Column("seq", sa.BigInteger(), nullable=True),
            sa.PrimaryKeyConstraint("id"),
        )
    if "members" in missing:
        op.create_table(
            "members",
            sa.Column("board", key(), nullable=False),
            sa.Column("username", key(32), nullable=False),
            sa.Column("state", sa.Text(), nullable=False),
            sa.PrimaryKeyConstraint("board", "username"),
        )
    if "users" in missing:
        op.create_table(
            "users",
            sa.Column("id", key(), nullable=False),
            sa.Column("username", key(32), nullable=False),
            sa.Column("password_hash", sa.String(length=200), nullable=False),
            sa.Column("created_at", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("username"),
        )
    if "refresh_families" in missing:
        op.create_table(
            "refresh_families",
            sa.Column("id", key(), nullable=False),
            sa.Column("user_id", key(), nullable=False),
            sa.Column("generation", sa.BigInteger(), nullable=False),
            sa.Column("expires_at", sa.BigInteger(), nullable=False),
            sa.Column("revoked_at", sa.BigInteger(), nullable=True),
            sa.ForeignKeyConstraint(
                ["user_id"],
                ["users.id"],
            ),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("ix_refresh_families_revoked_at", "refresh_families", ["revoked_at"])
        op.create_index("ix_refresh_families_user_id", "refresh_families", ["user_id"])
    if "refresh_tokens" in missing:
        op.create_table(
            "refresh_tokens",
            sa.Column("token_hash", key(64), nullable=False),
            sa.Column("user_id", key(), nullable=False),
            sa.Column("expires_at", sa.BigInteger(), nullable=False),
            sa.ForeignKeyConstraint(
                ["user_id"],
                ["users.id"],
            ),
            sa.PrimaryKeyConstraint("token_hash"),
        )


def downgrade() -> None:
    op.drop_table("refresh_tokens")
    op.drop_index("ix_refresh_families_user_id", table_name="refresh_families")
    op.drop_index("ix_refresh_families_revoked_at", table_name="refresh_families")
    op.drop_table("refresh_families")
    op.drop_table("users")
    op.drop_table("members")
    op.drop_table("event_ids")
    op.drop_table("entities")
    op.drop_index("ix_devices_username", table_name="devices")
    op.drop_table("devices")
    op.drop_table("boards")
