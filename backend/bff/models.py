"""The BFF's own database: users and tokens, devices, the id record, the board authority.

Nothing here is a view: it is what the BFF must know, synchronously, to answer a push
exactly (``duplicate``, ``id_conflict``, ``forbidden``) however far the projector lags.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, String, Text, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from backend.db import Key


class BffBase(DeclarativeBase):
    pass


class User(BffBase):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(Key(), primary_key=True)
    username: Mapped[str] = mapped_column(Key(32), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[int] = mapped_column(BigInteger)
    password_reset: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """The password is a one-time one (``outpost users reset-password``): signing in with
    it only lets the user change it."""


class RefreshToken(BffBase):
    """Refresh tokens from before session families: only a hash of each is kept; using one
    replaces it with a family's token. No new rows are written here."""

    __tablename__ = "refresh_tokens"
    token_hash: Mapped[str] = mapped_column(Key(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    expires_at: Mapped[int] = mapped_column(BigInteger)


class RefreshFamily(BffBase):
    """Every session descended from one sign-in: its refresh token rotates within it.

    The token of ``generation`` is the only one that works; presenting an older one (a
    token used twice) revokes the family: its refresh tokens and its access tokens stop
    working (access tokens carry the family, and every BFF process reloads the revoked
    ones)."""

    __tablename__ = "refresh_families"
    id: Mapped[str] = mapped_column(Key(), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    generation: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    """Seconds; the current refresh token's expiry."""
    revoked_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    """Milliseconds; None while the family lives."""


class Device(BffBase):
    """A device id belongs to the first user who pushes it."""

    __tablename__ = "devices"
    id: Mapped[str] = mapped_column(Key(), primary_key=True)
    username: Mapped[str] = mapped_column(Key(32))


class EventRecord(BffBase):
    """id -> (actor, hash, seq), kept for ever: what makes duplicate and id_conflict exact.

    Written when the event is accepted, before it is published; ``seq`` is filled in once
    the stream has acknowledged it (None: decided, not yet known to be stored)."""

    __tablename__ = "event_ids"
    id: Mapped[str] = mapped_column(Key(), primary_key=True)
    actor: Mapped[str] = mapped_column(Key(32))
    hash: Mapped[str] = mapped_column(Key(64))
    seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class BoardAuthority(BffBase):
    """One row per board id ever pushed: the lock row, and the folded board state."""

    __tablename__ = "boards"
    id: Mapped[str] = mapped_column(Key(), primary_key=True)
    state: Mapped[str | None] = mapped_column(Text, nullable=True)
    """msgspec JSON of the board's EntityState; None until its BoardCreated is accepted."""


class MemberAuthority(BffBase):
    __tablename__ = "members"
    board: Mapped[str] = mapped_column(Key(), primary_key=True)
    username: Mapped[str] = mapped_column(Key(32), primary_key=True)
    state: Mapped[str] = mapped_column(Text)


class EntityBinding(BffBase):
    """Once an entity's first event is accepted, it belongs to that board for good."""

    __tablename__ = "entities"
    id: Mapped[str] = mapped_column(Key(), primary_key=True)
    board: Mapped[str] = mapped_column(Key())
    kind: Mapped[str] = mapped_column(String(16))
    author: Mapped[str | None] = mapped_column(Key(32), nullable=True)
    """For a comment: its author, who may delete it (with the board owner)."""


Index("ix_devices_username", Device.username)
Index("ix_refresh_families_revoked_at", RefreshFamily.revoked_at)
Index("ix_refresh_families_user_id", RefreshFamily.user_id)
