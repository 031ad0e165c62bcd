"""``views.audience``: the one user who may pull a row (a notice), for views made before it.

The baseline's ``views`` has the column; a views table made by an Outpost older than the
notices lacks it (this was the ad hoc ``ALTER TABLE`` of the projector's start).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from backend.migrations.ops import columns_of, key

revision = "projector_0002_views_audience"
down_revision = "projector_0001_tables"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "audience" not in columns_of("views"):
        op.add_column("views", sa.Column("audience", key(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("views") as batch:  # SQLite drops a column by copying
        batch.drop_column("audience")
