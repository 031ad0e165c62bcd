"""SQLite for the async engine without a thread hop per statement.

aiosqlite runs every call (execute, fetch, close, commit) on a worker thread and wakes the
event loop when it is done: two thread switches and a loop wake-up per call, some 0.5 to
0.8 ms of CPU and, on a busy machine, milliseconds of waiting for each of the dozen
statements a push or a page makes. SQLite's own work for those statements is tens of
microseconds (an indexed lookup, an fsync of the WAL of 0.1 ms here). So the backend's
SQLite files use this driver: the same ``sqlite3`` connection, called in place on the event
loop, behind the small part of aiosqlite's interface that SQLAlchemy's aiosqlite dialect
uses (``create_async_engine(..., async_creator=connector(path))``). Only a commit that
waits for the disk (one that wrote a row) goes to a thread: one hop per write transaction
instead of some twenty, and none for a read.

A call in place must never wait for a lock another coroutine of this loop holds: that
coroutine could not run to release it. Hence ``busy_timeout`` is short on these
connections, and ``Database.write`` (``backend/db.py``) takes an asyncio lock per file
before ``BEGIN IMMEDIATE`` and retries that ``BEGIN`` with asyncio sleeps while another
process holds the file's write lock. Readers in WAL mode take no lock.
"""

from __future__ import annotations

import asyncio
import contextlib
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
        self._settled = conn.total_changes
        """``total_changes`` when the last transaction ended: unchanged at a commit, the
        transaction wrote no row (a read)."""

    @property
    def _connection(self) -> sqlite3.Connection | None:
        return self._conn

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> InlineCursor:
        return InlineCursor(self._conn.cursor())

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> InlineCursor:
        return await self.cursor().execute(sql, parameters)

    async def commit(self) -> None:
        # The one call that waits for the disk (the WAL's fsync, now and then a checkpoint):
        # on a thread, so the loop runs on meanwhile. The connection is this transaction's
        # alone until the commit returns.
        if not self._conn.in_transaction:
            return
        if self._conn.total_changes == self._settled:
            # A read (no row written): its commit only ends the snapshot, with nothing to
            # wait for on disk, so it ends here instead of a thread's round trip (a live
            # page's read took 3 ms, most of it that round trip).
            self._conn.commit()
            return
        try:
            done = asyncio.ensure_future(asyncio.to_thread(self._conn.commit))
            try:
                await asyncio.shield(done)
            except asyncio.CancelledError:
                # Cancelled while the commit runs on its thread: let it end before anything
                # else (a rollback as the connection goes back to the pool) touches the
                # connection, then go on being cancelled.
                with contextlib.suppress(Exception):
                    await done
                raise
        finally:
            self._settled = self._conn.total_changes

    async def rollback(self) -> None:
        self._conn.rollback()
        self._settled = self._conn.total_changes

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
