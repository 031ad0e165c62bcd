"""The gateway's own database: webhook endpoints and their delivery queue and log, inbound
sources with their secrets, and each board's map of outside logins."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Text, case
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from backend.consumers.component import positions_table
from backend.db import Key


class GatewayBase(DeclarativeBase):
    pass


class Endpoint(GatewayBase):
    """An outbound webhook: a board's changes go to ``url``, signed with ``secret``."""

    __tablename__ = "endpoints"
    id: Mapped[str] = mapped_column(Key(), primary_key=True)
    board: Mapped[str] = mapped_column(Key(), index=True)
    owner: Mapped[str] = mapped_column(Key(32))
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[int] = mapped_column(BigInteger)
    paused_until: Mapped[int] = mapped_column(BigInteger, default=0)
    """Milliseconds: after a failed attempt the endpoint gets nothing before then, so a dead
    receiver is tried once per step of the schedule, not once per queued delivery."""


class Delivery(GatewayBase):
    """One event to one endpoint: queued, retried on the schedule, delivered or failed."""

    __tablename__ = "deliveries"
    id: Mapped[str] = mapped_column(Key(), primary_key=True)
    """The ``webhook-id``: derived from the event and the endpoint, the same on every try."""
    endpoint: Mapped[str] = mapped_column(Key(), index=True)
    board: Mapped[str] = mapped_column(Key())
    event_id: Mapped[str] = mapped_column(Key())
    event_type: Mapped[str] = mapped_column(String(40))
    seq: Mapped[int] = mapped_column(BigInteger)
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    """The JSON that is signed and sent."""
    status: Mapped[str] = mapped_column(String(16))
    """``pending``, ``delivered`` or ``failed`` (its schedule exhausted: faulted)."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[int] = mapped_column(BigInteger)
    """Milliseconds: when a pending delivery is tried next."""
    created_at: Mapped[int] = mapped_column(BigInteger)
    done_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


def started_again(now: int) -> dict[str, Any]:
    """The values that give a delivery a fresh schedule, due at ``now`` (a redelivery, a
    resubmitted fault). ``next_at`` always moves (a millisecond on, when it is ``now``
    already), so that a try under way when the delivery is reset sees it was reset and
    does not record its outcome over the new schedule (``Gateway._record``)."""
    return {
        "status": "pending",
        "attempts": 0,
        "next_at": case((Delivery.next_at == now, now + 1), else_=now),
        "done_at": None,
    }


class Attempt(GatewayBase):
    """The delivery log: every try of a delivery and how it went."""

    __tablename__ = "attempts"
    id: Mapped[str] = mapped_column(Key(), primary_key=True)
    """A UUIDv7: the log of a delivery sorts by it in the order of its tries."""
    delivery: Mapped[str] = mapped_column(Key(), index=True)
    at: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """The receiver's HTTP status, or None when there was no answer."""
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    duration_ms: Mapped[int] = mapped_column(Integer)


class InboundSource(GatewayBase):
    """A source that may deliver to a board, with the secret it signs with; its events are
    written with the authority of ``owner``, who registered it."""

    __tablename__ = "sources"
    board: Mapped[str] = mapped_column(Key(), primary_key=True)
    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(Key(32))
    secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[int] = mapped_column(BigInteger)


class Login(GatewayBase):
    """A board's map of outside logins (GitHub's, lowercase) to Outpost usernames."""

    __tablename__ = "logins"
    board: Mapped[str] = mapped_column(Key(), primary_key=True)
    login: Mapped[str] = mapped_column(String(100), primary_key=True)
    username: Mapped[str] = mapped_column(Key(32))


positions = positions_table(GatewayBase.metadata)

Index("ix_deliveries_due", Delivery.status, Delivery.next_at)
