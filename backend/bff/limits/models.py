"""The ``limits`` database: counters that every BFF process reads and writes.

Nothing here needs to outlive a crash (a lost counter only forgets a few requests), so
SQLite keeps this file with ``synchronous=NORMAL`` and PostgreSQL commits it asynchronously;
it is apart from ``bff.db`` so a counter update never waits behind a push's decisions.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, Integer
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from backend.db import Key


class LimitsBase(DeclarativeBase):
    pass


class RateBucket(LimitsBase):
    """A token bucket kept as one number (GCRA): the theoretical arrival time of the next
    request, in microseconds. A request is allowed while ``tat - now <= burst * interval``,
    and moves ``tat`` on by one interval."""

    __tablename__ = "rate_buckets"
    key: Mapped[str] = mapped_column(Key(200), primary_key=True)
    tat_us: Mapped[int] = mapped_column(BigInteger)


class FailureRecord(LimitsBase):
    """Failed sign-ins of one key: a (username, address) pair or a username."""

    __tablename__ = "signin_failures"
    key: Mapped[str] = mapped_column(Key(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    strikes: Mapped[int] = mapped_column(Integer)
    """How many blocks this key has had: the next one lasts twice as long."""
    blocked_until_ms: Mapped[int] = mapped_column(BigInteger)
    checking_until_ms: Mapped[int] = mapped_column(BigInteger)
    """A password of this pair is being checked (until its outcome, or this lease ends):
    one check at a time, so concurrent guesses cannot slip past the count."""
    expires_at_ms: Mapped[int] = mapped_column(BigInteger)
    """The record is forgotten after this (a window after its last failure or block)."""


Index("ix_signin_failures_expires", FailureRecord.expires_at_ms)
