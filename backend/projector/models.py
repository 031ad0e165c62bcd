"""The projector's database: one row per entity (the views), and what it has applied.

``views`` holds each entity's merged state with the plain ``values`` and the ``meta`` that
the pull carries; ``version`` is this database's own change counter, unique and increasing
with every write of a row, and the pull cursor walks it. ``memberships`` answers "which
boards can this user see" at read time. ``applied`` and ``positions`` make redelivery a
no-op: they are written in the same transaction as the views.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from backend.consumers.component import positions_table
from backend.consumers.publishing import published_table
from backend.db import Key


class ProjectorBase(DeclarativeBase):
    pass


class View(ProjectorBase):
    __tablename__ = "views"
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    id: Mapped[str] = mapped_column(Key(120), primary_key=True)
    board: Mapped[str] = mapped_column(Key())
    version: Mapped[int] = mapped_column(BigInteger, unique=True)
    state: Mapped[str] = mapped_column(Text)
    values: Mapped[str | None] = mapped_column(Text, nullable=True)
    """JSON of the change's values; None while the entity is not created yet."""
    meta: Mapped[str] = mapped_column(Text)
    audience: Mapped[str | None] = mapped_column(Key(32), nullable=True, default=None)
    """The one user who may pull this row (a notice); None: every member of the board."""


class SagaPrior(ProjectorBase):
    """For each event that may turn out to be a WIP-limit cause, what its compensation
    would restore: the saga fields as they were just before it, in stream order."""

    __tablename__ = "saga_priors"
    event_id: Mapped[str] = mapped_column(Key(), primary_key=True)
    board: Mapped[str] = mapped_column(Key())
    task: Mapped[str] = mapped_column(Key())
    actor: Mapped[str] = mapped_column(Key(32))
    hlc: Mapped[str] = mapped_column(Key(120))
    restored: Mapped[str] = mapped_column(Text)


class Membership(ProjectorBase):
    __tablename__ = "memberships"
    board: Mapped[str] = mapped_column(Key(), primary_key=True)
    username: Mapped[str] = mapped_column(Key(32), primary_key=True)
    active: Mapped[bool] = mapped_column(Boolean)
    version: Mapped[int] = mapped_column(BigInteger)
    """The version of the member row: a pull that passes it learns the user's access changed."""


class Applied(ProjectorBase):
    """Every event the projector applied, with how many times (the ledger: once each)."""

    __tablename__ = "applied"
    event_id: Mapped[str] = mapped_column(Key(), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    times: Mapped[int] = mapped_column(Integer, default=1)


positions = positions_table(ProjectorBase.metadata)
published = published_table(ProjectorBase.metadata)


class Info(ProjectorBase):
    """``generation`` (the views' lifetime) and ``version`` (the last version written)."""

    __tablename__ = "info"
    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


Index("ix_views_board_version", View.board, View.version)
Index("ix_memberships_username", Membership.username, Membership.version)
