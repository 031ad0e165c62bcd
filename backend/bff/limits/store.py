"""The counters of the abuse limits, in the ``limits`` database every BFF process shares.

Two kinds of counter, each decided in one transaction so that any number of processes
count together exactly:

- ``take``: a token bucket per key (the per-user request rate, sign-ups per address),
  kept as one number by the generic cell rate algorithm (the time its next token is due);
- ``signin_begin`` / ``signin_end``: failed sign-ins per (username, address) and per
  username, with blocks that double with each further failure, counted from the moment
  the failure is known.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, bindparam, delete, event, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.bff.limits.models import FailureRecord, RateBucket
from backend.db import Database, insert_ignore, upsert

__all__ = ["Grant", "LimitStore", "SignInPolicy"]

_PURGE_EVERY = 256
"""Forgotten counters are deleted once in this many updates of a process."""
_CHECK_LEASE_MS = 60_000
"""How long a password check holds its pair if its process dies before the outcome."""


@dataclass(frozen=True)
class Grant:
    granted: int
    """Requests taken from the bucket."""
    retry_after_s: int
    """When none were: whole seconds until one would be."""


@dataclass(frozen=True)
class SignInPolicy:
    per_address: int
    """Failures of one (username, address) before it is blocked."""
    per_username: int
    """Failures of one username, from anywhere, past which every failing address is
    blocked at its first failure (an address that has not failed is never refused)."""
    block_s: float
    """The first block; each further failure of the same pair doubles it."""
    block_max_s: float
    window_s: float
    """Failures are forgotten this long after the last one (or after a block ends)."""


@dataclass(frozen=True)
class SignInStart:
    """What ``signin_begin`` says: wait ``wait_s`` seconds, or (None) check the password at
    ``order`` in the hashing queue: 0 for an address this username signed in from before
    (within ``TRUSTED_FOR_MS``), else 1 + the pair's failures, so the owner at home goes
    ahead of every guesser, and a fresh address ahead of one that keeps failing."""

    wait_s: int | None = None
    order: int = 0


TRUSTED_FOR_MS = 30 * 24 * 3600 * 1000
"""How long a successful sign-in from an address puts its next checks first."""


_MAX_KNOWN_BLOCKS = 100_000
"""Blocked pairs a process remembers in memory (a few MB at most)."""


def system_ms() -> int:
    return time.time_ns() // 1_000_000


class LimitStore:
    def __init__(self, db: Database, clock_ms: Callable[[], int] = system_ms) -> None:
        self._db = db
        self._clock_ms = clock_ms
        self._updates = 0
        # One writer at a time from this process: SQLite makes a writer that finds the
        # lock taken sleep for milliseconds, which a queue here does not.
        self._writing: contextlib.AbstractAsyncContextManager[Any] = (
            contextlib.nullcontext() if db.is_postgres else asyncio.Lock()
        )
        self._blocked: dict[str, int] = {}
        """Pairs this process knows to be blocked, and until when (ms). A blocked pair's
        block only grows through failures, and a blocked pair has no password checked, so
        while it lasts an attempt is answered from here, with no database round trip: a
        guesser hammering past its Retry-After costs the others nothing."""

    @classmethod
    async def open(cls, db: Database) -> LimitStore:
        """Migrate the tables, and tell the database that these writes need no fsync."""
        _without_fsync(db)
        await db.migrate()
        return cls(db)

    async def take(self, key: str, rate_per_s: float, burst: int, want: int = 1) -> Grant:
        """Take up to ``want`` requests from ``key``'s bucket at once: how many it gave
        (0 when it is empty), and if none, the whole seconds until the next one."""
        interval = max(1, round(1_000_000 / rate_per_s))
        tolerance = interval * max(1, burst)
        async with self._writing, self._db.write() as conn:
            await _lock(conn, RateBucket, [key], {"tat_us": 0})
            now = self._clock_ms() * 1000
            tat = (
                await conn.execute(select(RateBucket.tat_us).where(RateBucket.key == key))
            ).scalar()
            current = now if tat is None or tat < now else int(tat)
            granted = min(want, (now + tolerance - current) // interval)
            if granted < 1:
                return Grant(0, max(1, _ceil_div(current + interval - tolerance - now, 1_000_000)))
            row = {"key": key, "tat_us": current + granted * interval}
            await upsert(conn, RateBucket, [row], ["key"])
            await self._maybe_purge(conn, now // 1000)
        return Grant(granted, 0)

    async def signin_begin(self, username: str, address: str) -> SignInStart:
        """Before a password is checked: go on (with the pair's failures so far, so that a
        check from an address with none goes first), or the seconds to wait because this
        (username, address) is blocked or already has a password being checked."""
        key = _pair_key(username, address)
        now = self._clock_ms()
        known = self._blocked.get(key, 0)
        if known > now:
            return SignInStart(wait_s=_ceil_div(known - now, 1000))
        self._blocked.pop(key, None)
        async with self._writing, self._db.write() as conn:
            await _lock(conn, FailureRecord, [key], _FORGOTTEN)
            pair = await _record(conn, key, now)
            if pair is not None and pair.blocked_until_ms > now:
                self._remember_block(key, pair.blocked_until_ms, now)
                return SignInStart(wait_s=_ceil_div(pair.blocked_until_ms - now, 1000))
            if pair is not None and pair.checking_until_ms > now:
                return SignInStart(wait_s=1)
            trusted = await _record(conn, _trusted_key(username, address), now) is not None
            checking = {"checking_until_ms": now + _CHECK_LEASE_MS}
            if pair is None:
                fresh = {"failures": 0, "strikes": 0, "blocked_until_ms": 0}
                row = {"key": key, **fresh, **checking, "expires_at_ms": now + _CHECK_LEASE_MS}
                await upsert(conn, FailureRecord, [row], ["key"])
            else:
                await conn.execute(
                    update(FailureRecord).where(FailureRecord.key == key).values(**checking)
                )
        return SignInStart(order=0 if trusted else 1 + (pair.failures if pair else 0))

    async def signin_end(
        self, username: str, address: str, policy: SignInPolicy, *, failed: bool | None
    ) -> None:
        """After the check: ``failed`` True counts a failure for the pair and the username
        and blocks the pair if either is at its limit; False (the right password) clears the
        pair; None (no answer on the password) only ends the check."""
        pair_key, user_key = _pair_key(username, address), _user_key(username)
        now = self._clock_ms()
        async with self._writing, self._db.write() as conn:
            await _lock(conn, FailureRecord, [pair_key, user_key], _FORGOTTEN)
            if failed is False:
                await conn.execute(delete(FailureRecord).where(FailureRecord.key == pair_key))
                trusted = {
                    "key": _trusted_key(username, address),
                    **_FORGOTTEN,
                    "expires_at_ms": now + TRUSTED_FOR_MS,
                }
                await upsert(conn, FailureRecord, [trusted], ["key"])
                return
            pair = await _record(conn, pair_key, now)
            if failed is None:
                if pair is not None:
                    await conn.execute(
                        update(FailureRecord)
                        .where(FailureRecord.key == pair_key)
                        .values(checking_until_ms=0)
                    )
                return
            user = await _record(conn, user_key, now)
            failures = (pair.failures if pair else 0) + 1
            strikes = pair.strikes if pair else 0
            user_failures = (user.failures if user else 0) + 1
            blocked_until = 0
            if failures >= policy.per_address or user_failures >= policy.per_username:
                block_s = min(policy.block_max_s, policy.block_s * 2**strikes)
                blocked_until = now + round(block_s * 1000)
                strikes += 1
            window_ms = round(policy.window_s * 1000)
            rows = [
                {
                    "key": pair_key,
                    "failures": failures,
                    "strikes": strikes,
                    "blocked_until_ms": blocked_until,
                    "checking_until_ms": 0,
                    "expires_at_ms": max(now, blocked_until) + window_ms,
                },
                {
                    "key": user_key,
                    "failures": user_failures,
                    "strikes": 0,
                    "blocked_until_ms": 0,
                    "checking_until_ms": 0,
                    "expires_at_ms": now + window_ms,
                },
            ]
            await upsert(conn, FailureRecord, rows, ["key"])
            await self._maybe_purge(conn, now)
        if blocked_until:
            self._remember_block(pair_key, blocked_until, now)

    def _remember_block(self, key: str, until_ms: int, now_ms: int) -> None:
        if len(self._blocked) >= _MAX_KNOWN_BLOCKS:  # bounded: forget the ones that ended
            self._blocked = {k: u for k, u in self._blocked.items() if u > now_ms}
            if len(self._blocked) >= _MAX_KNOWN_BLOCKS:
                return  # a flood of blocked pairs: the database answers the rest
        self._blocked[key] = until_ms

    async def _maybe_purge(self, conn: AsyncConnection, now_ms: int) -> None:
        """Delete what is forgotten anyway: a bucket whose time has passed is full, and a
        failure record past its expiry counts as none."""
        self._updates += 1
        if self._updates % _PURGE_EVERY:
            return
        now_us = bindparam("now_us", now_ms * 1000, type_=BigInteger)
        await conn.execute(delete(RateBucket).where(RateBucket.tat_us < now_us))
        now = bindparam("now_ms", now_ms, type_=BigInteger)
        await conn.execute(delete(FailureRecord).where(FailureRecord.expires_at_ms < now))


_FORGOTTEN = {
    "failures": 0,
    "strikes": 0,
    "blocked_until_ms": 0,
    "checking_until_ms": 0,
    "expires_at_ms": 0,
}


async def _lock(conn: AsyncConnection, model: Any, keys: list[str], blank: dict[str, int]) -> None:
    """Hold the rows of ``keys`` until the transaction ends. SQLite's ``BEGIN IMMEDIATE``
    already holds the whole database; PostgreSQL locks the rows, made first if need be (a
    blank row reads as none), so two processes never both read the old count."""
    if conn.dialect.name != "postgresql":
        return
    await insert_ignore(conn, model, [{"key": key, **blank} for key in keys], ["key"])
    await conn.execute(
        select(model.key).where(model.key.in_(keys)).order_by(model.key).with_for_update()
    )


async def _record(conn: AsyncConnection, key: str, now: int) -> Any:
    """The failure record of ``key``, unless there is none or it is forgotten."""
    row = (await conn.execute(select(FailureRecord).where(FailureRecord.key == key))).first()
    return row if row is not None and row.expires_at_ms > now else None


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-int(numerator) // denominator)


def _pair_key(username: str, address: str) -> str:
    return f"pair {address} {username}"


def _trusted_key(username: str, address: str) -> str:
    return f"trusted {address} {username}"


def _user_key(username: str) -> str:
    return f"user {username}"


def _without_fsync(db: Database) -> None:
    """Counters may be lost with the machine, never corrupted: SQLite ``synchronous=NORMAL``
    (WAL: no fsync per commit), PostgreSQL ``synchronous_commit=off``."""

    @event.listens_for(db.engine.sync_engine, "connect")
    def _configure(dbapi_connection: Any, _: Any) -> None:
        cursor = dbapi_connection.cursor()
        if db.is_postgres:
            cursor.execute("SET synchronous_commit TO OFF")
        else:
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
