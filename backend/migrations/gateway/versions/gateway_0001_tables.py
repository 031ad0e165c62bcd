"""The gateway's tables: webhook endpoints, the delivery queue and log, inbound sources,
the login map, and the consumer's position.

Like every baseline, it adopts a database that has some of them already (made by
``create_all``): it keeps those, with their rows, and creates only the missing ones.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from backend.migrations.ops import key, tables

revision = "gateway_0001_tables"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    missing = {"attempts", "deliveries", "endpoints", "logins", "positions", "sources"} - tables()

    if "attempts" in missing:
        op.create_table(
            "attempts",
            sa.Column("id", key(), nullable=False),
            sa.Column(
                "delivery",
                key(),
                nullable=False,
            ),
            sa.Column("at", sa.BigInteger(), nullable=False),
            sa.Column("status", sa.Integer(), nullable=True),
            sa.Column("error", sa.Text(), nullable=True),
            sa.Column("duration_ms", sa.Integer(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        with op.batch_alter_table("attempts", schema=None) as batch_op:
            batch_op.create_index(batch_op.f("ix_attempts_delivery"), ["delivery"], unique=False)

    if "deliveries" in missing:
        op.create_table(
            "deliveries",
            sa.Column(
                "id",
                key(),
                nullable=False,
            ),
            sa.Column(
                "endpoint",
                key(),
                nullable=False,
            ),
            sa.Column(
                "board",
                key(),
                nullable=False,
            ),
            sa.Column(
                "event_id",
                key(),
                nullable=False,
            ),
            sa.Column("event_type", sa.String(length=40), nullable=False),
            sa.Column("seq", sa.BigInteger(), nullable=False),
            sa.Column("subject", sa.String(length=200), nullable=False),
            sa.Column("body", sa.Text(), nullable=False),
            sa.Column("status", sa.String(length=16), nullable=False),
            sa.Column("attempts", sa.Integer(), nullable=False),
            sa.Column("next_at", sa.BigInteger(), nullable=False),
            sa.Column("created_at", sa.BigInteger(), nullable=False),
            sa.Column("done_at", sa.BigInteger(), nullable=True),
            sa.Column("last_status", sa.Integer(), nullable=True),
            sa.Column("last_error", sa.Text(), nullable=True),
            sa.PrimaryKeyConstraint("id"),
        )
        with op.batch_alter_table("deliveries", schema=None) as batch_op:
            batch_op.create_index("ix_deliveries_due", ["status", "next_at"], unique=False)
            batch_op.create_index(batch_op.f("ix_deliveries_endpoint"), ["endpoint"], unique=False)

    if "endpoints" in missing:
        op.create_table(
            "endpoints",
            sa.Column(
                "id",
                key(),
                nullable=False,
            ),
            sa.Column(
                "board",
                key(),
                nullable=False,
            ),
            sa.Column(
                "owner",
                key(32),
                nullable=False,
            ),
            sa.Column("url", sa.String(length=2000), nullable=False),
            sa.Column("secret", sa.String(length=100), nullable=False),
            sa.Column("created_at", sa.BigInteger(), nullable=False),
            sa.Column("paused_until", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        with op.batch_alter_table("endpoints", schema=None) as batch_op:
            batch_op.create_index(batch_op.f("ix_endpoints_board"), ["board"], unique=False)

    if "logins" in missing:
        op.create_table(
            "logins",
            sa.Column(
                "board",
                key(),
                nullable=False,
            ),
            sa.Column("login", sa.String(length=100), nullable=False),
            sa.Column(
                "username",
                key(32),
                nullable=False,
            ),
            sa.PrimaryKeyConstraint("board", "login"),
        )

    if "positions" in missing:
        op.create_table(
            "positions",
            sa.Column("component", sa.String(length=32), nullable=False),
            sa.Column("seq", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("component"),
        )

    if "sources" in missing:
        op.create_table(
            "sources",
            sa.Column(
                "board",
                key(),
                nullable=False,
            ),
            sa.Column("source", sa.String(length=32), nullable=False),
            sa.Column(
                "owner",
                key(32),
                nullable=False,
            ),
            sa.Column("secret", sa.String(length=100), nullable=False),
            sa.Column("created_at", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("board", "source"),
        )


def downgrade() -> None:
    op.drop_table("sources")
    op.drop_table("positions")
    op.drop_table("logins")
    with op.batch_alter_table("endpoints", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_endpoints_board"))

    op.drop_table("endpoints")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deliveries_endpoint"))
        batch_op.drop_index("ix_deliveries_due")

    op.drop_table("deliveries")
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_attempts_delivery"))

    op.drop_table("attempts")
