"""``users.password_reset``: the account's password is a one-time one that must be changed.

``outpost users reset-password`` sets it; changing the password clears it. Every existing
user starts without it. A database made by ``create_all`` before migrations already has it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from backend.migrations.ops import columns_of

revision = "bff_0002_password_reset"
down_revision = "bff_0001_tables"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "password_reset" in columns_of("users"):
        return
    op.add_column(
        "users",
        sa.Column("password_reset", sa.Boolean(), server_default=sa.false(), nullable=False),
    )


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:  # SQLite drops a column by copying
        batch.drop_column("password_reset")
