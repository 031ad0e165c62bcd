"""What the revisions share: the bytewise key type as it was, and what a database already has."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

__all__ = ["columns_of", "key", "tables"]


def key(length: int = 80) -> sa.types.TypeEngine[str]:
    """A string compared bytewise (``COLLATE "C"`` on PostgreSQL), as ``backend.db.Key``
    made it when these revisions were written: a revision never changes with the code."""
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def tables() -> set[str]:
    """The tables the database has now (in the component's schema: the search_path)."""
    return set(sa.inspect(op.get_bind()).get_table_names())


def columns_of(table: str) -> set[str]:
    return {column["name"] for column in sa.inspect(op.get_bind()).get_columns(table)}
