"""SQLite for the async engine without a thread hop per statement.

aiosqlite runs every call (execute, fetch, close, commit) on a worker thread and wakes the
event loop when it is done: two thread switches and a loop wake-up per call, some 0.5 to
0.8 ms of CPU and, on a busy machine, milliseconds of waiting for each of the dozen
statements a push or a page makes. SQLite's own work for those statements is tens of
microseconds (an indexed lookup, an fsync of the WAL of 0.1 ms here). So the backend's
SQLite files use this driver: the same ``sqlite3`` connection, called in place on the event
loop, behind the small part of aiosqlite's interface that SQLAlchemy's aiosqlite dialect
uses (``create_async_engine(..., async_creator=connector(path))``).

The commit too runs in place, fsync and all: the loop waits for the disk for that long
(0.1 to 1 ms on the machines the bench ran on). It went to a thread until 2026-11-30, so
that the loop could run on meanwhile; but the hop there and back cost more than the wait:
in ``outpost bench --only propagation``, with the commit timed inside ``Database.write``,
a write's commit took 3.3 to 4.2 ms at the median through the thread against 1.0 ms in
place (the worker's and then the loop's wake-ups, on a machine whose other core is busy).
Two runs of each, alternating, p50 / p99: the push's decision 5.9 to 6.5 / 18 to 20 ms
through the thread, 5.4 / 9.4 in place; the projector's batch 7.8 to 8.9 / 17 to 24 ms,
6.0 to 6.3 / 10 to 12.5; the whole action 33 to 35 / 93 to 101 ms, 31 / 45 to 56. (The
push's second commit, which records the stream's seqs, was tried on a thread, since in
place it holds the loop just as the projector's fetch returns the same events: the
projector's wait went from 5 back to 1.6 ms, but the push's answer then ran when the
projector's page was to be written, which took 3.5 ms instead of 1; the action as a whole
was no quicker, and every commit stays in place.)

A call in place must never wait for a lock another coroutine of this loop holds: that
coroutine could not run to release it. Hence ``busy_timeout`` is short on these
connections, and ``Database.write`` (``backend/db.py``) takes an asyncio lock per file
before ``BEGIN IMMEDIATE`` and retries that ``BEGIN`` with asyncio sleeps while another
process holds the file's write lock. Readers in WAL mode take no lock.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

BUSY_TIMEOUT_MS = 20
"""How long one statement may wait for a lock, blocking the loop: WAL readers never wait
for one, and writers take theirs with asyncio retries (``Database.write``)."""


class InlineCursor:
    """An aiosqlite-shaped cursor whose coroutines run the ``sqlite3`` call at once."""

    __slots__ = ("_cursor", "arraysize")

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor
        self.arraysize = cursor.arraysize

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *_: object) -> None:
        self._cursor.close()

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> InlineCursor:
        if parameters is None:
            self._cursor.execute(sql)
        else:
            self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> InlineCursor:
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def nextset(self) -> None:
        return None

    async def setinputsizes(self, *_: Any) -> None:
        return None

    async def close(self) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid


class _RunNow:
    """Stands for aiosqlite's request queue, which SQLAlchemy's dialect uses to set the
    isolation level: the function runs at once and its future is resolved."""

    __slots__ = ()

    def put_nowait(self, item: tuple[asyncio.Future[Any] | None, Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except BaseException as exc:
            if future is None:
                raise
            future.set_exception(exc)
        else:
            if future is not None:
                future.set_result(result)


class InlineConnection:
    """An aiosqlite-shaped connection over one ``sqlite3`` connection, used in place."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._tx = _RunNow()

    @property
    def _connection(self) -> sqlite3.Connection | None:
        return self._conn

    @property
    def sqlite(self) -> sqlite3.Connection:
        """The ``sqlite3`` connection itself, for statements run straight on it
        (``backend/direct.py``)."""
        return self._conn

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> InlineCursor:
        return InlineCursor(self._conn.cursor())

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> InlineCursor:
        return await self.cursor().execute(sql, parameters)

    async def commit(self) -> None:
        self._conn.commit()

    def run_now(self, sql: str) -> None:
        """One statement with no result, at once: what ``Database.write`` begins its
        transactions with (three of them through SQLAlchemy took most of a millisecond)."""
        self._conn.execute(sql)

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        self._conn.close()

    def stop(self) -> None:
        self._conn.close()

    async def create_function(self, *args: Any, **kw: Any) -> None:
        self._conn.create_function(*args, **kw)


def connector(path: Path) -> Callable[[], Awaitable[InlineConnection]]:
    """The ``async_creator`` of an engine on the SQLite file at ``path``."""

    async def connect() -> InlineConnection:
        conn = sqlite3.connect(
            path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,  # the pool may close it from another thread
        )
        return InlineConnection(conn)

    return connect
