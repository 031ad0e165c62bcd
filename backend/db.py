"""Database per component: a SQLite file under the data folder, or a PostgreSQL schema.

Each backend component (the BFF, the projector) owns one ``Database``, whose tables its
migration history makes (``Database.migrate``, ``backend.migrations``). Transactions come in
two kinds: ``write()`` takes the write lock at once (SQLite ``BEGIN IMMEDIATE``, so two
writers never deadlock upgrading a read lock), and ``read()`` gives one consistent snapshot
(SQLite WAL read transaction, PostgreSQL ``REPEATABLE READ``).
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import os
import re
import sqlite3
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, String, event, make_url, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection as SyncConnection
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.types import TypeEngine

from backend import direct
from backend.errors import LeaseLost
from backend.sqlite_inline import BUSY_TIMEOUT_MS, InlineConnection, connector

__all__ = ["Database", "Key", "insert_ignore", "upsert"]

_BEGIN_OPTION = "outpost_sqlite_begin"


def Key(length: int = 80) -> TypeEngine[str]:
    """A string compared bytewise: ids, hlcs and positions (``COLLATE "C"`` on PostgreSQL)."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


class Database:
    """One component's database, with snapshot reads and lock-first writes."""

    def __init__(self, engine: AsyncEngine, component: str, path: Path | None = None) -> None:
        self.engine = engine
        self.component = component
        self._path = path
        """The SQLite file, when its connections run in place (``backend/sqlite_inline.py``):
        its writers then take turns on an asyncio lock before ``BEGIN IMMEDIATE``."""
        self._file = "" if path is None else os.path.realpath(path)
        """The file's one name (the writers' turn is per file): resolved once, not per write."""

    @classmethod
    def for_component(cls, component: str, *, data_dir: Path, url: str | None) -> Database:
        """SQLite ``<data_dir>/<component>.db`` by default; a PostgreSQL URL gives the
        component its own schema, ``outpost_<component>``, in that database."""
        if not re.fullmatch(r"[a-z_]+", component):
            raise ValueError(f"component name {component!r} must be lowercase letters")
        if url is None or url.startswith("sqlite"):
            path = data_dir / f"{component}.db" if url is None else _file_of(url)
            if path is None:  # in memory: aiosqlite's thread, one connection
                return cls(_sqlite_engine(str(url)), component)
            engine = _sqlite_engine(f"sqlite+aiosqlite:///{path}", path)
            return cls(engine, component, path)
        if url.startswith("postgresql"):
            schema = f"outpost_{component}"
            engine = create_async_engine(
                url,
                connect_args={"server_settings": {"search_path": schema}},
                pool_pre_ping=True,
            )
            return cls(engine, component)
        raise ValueError(f"unsupported database URL {url!r}: use sqlite+aiosqlite or postgresql")

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @property
    def schema(self) -> str | None:
        """The component's PostgreSQL schema; None on SQLite (a file of its own)."""
        return f"outpost_{self.component}" if self.is_postgres else None

    async def migrate(self) -> list[str]:
        """Bring the database to the head of its component's migration history, whatever
        made it (see ``backend.migrations``); return the revisions applied."""
        from backend.migrations import migrate

        return await migrate(self)

    async def create(self, metadata: MetaData) -> None:
        """Create ``metadata``'s tables if they do not exist, with no migration history: for
        tables a test makes up. A component's own tables come from ``migrate``."""
        async with self.engine.begin() as conn:
            if self.schema is not None:
                await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
            await conn.run_sync(metadata.create_all)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that holds the write lock from its first statement."""
        if self._path is None:
            async with self.engine.connect() as conn:
                conn = await conn.execution_options(**{_BEGIN_OPTION: "BEGIN IMMEDIATE"})
                async with conn.begin():
                    yield conn
            return
        async with _writers(self._file), self._connection() as conn:
            conn = await conn.execution_options(**{_BEGIN_OPTION: _BEGIN_WAITING})
            async with conn.begin():
                yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction that sees one snapshot throughout."""
        async with self._connection() as conn:
            if self.is_postgres:
                conn = await conn.execution_options(
                    isolation_level="REPEATABLE READ", postgresql_readonly=True
                )
            async with conn.begin():
                yield conn

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection]:
        """A connection from the pool. ``async with engine.connect()`` closes it in a task
        of its own, so that a cancellation cannot cut the close short: a turn of the loop
        for every transaction, in which whatever else is ready runs first (the projector's
        batch took 1.5 ms more for it). A connection used in place (``sqlite_inline``)
        closes without ever waiting, so nothing can cut it short: it is closed here."""
        if self._path is None:
            async with self.engine.connect() as conn:
                yield conn
            return
        conn = await self.engine.connect()
        try:
            yield conn
        finally:
            await conn.close()

    async def try_lease(self, name: str) -> Lease | None:
        """Claim ``name`` for this process while it runs, or None if another process holds it.

        One consumer per component at a time: two runners of one component would take each
        other's durable consumer and write the same batch twice. A PostgreSQL session
        advisory lock (held by a connection kept open), or an exclusive ``flock`` on a file
        beside the SQLite file; either ends with the process, however it ends.
        """
        if self.is_postgres:
            conn = await self.engine.connect()
            try:
                query = text("SELECT pg_try_advisory_lock(hashtext(:name)), pg_backend_pid()")
                held, backend_pid = (await conn.execute(query, {"name": f"outpost:{name}"})).one()
                await conn.commit()
            except BaseException:
                await conn.close()
                raise
            if not held:
                await conn.close()
                return None

            async def unlock() -> None:
                # The connection goes back to the pool: its session, and the lock, would
                # live on. Unlock, or drop the connection if it cannot even do that.
                try:
                    await conn.execute(
                        text("SELECT pg_advisory_unlock(hashtext(:name))"),
                        {"name": f"outpost:{name}"},
                    )
                    await conn.commit()
                except Exception:
                    await conn.invalidate()
                await conn.close()

            async def holds(other: AsyncConnection) -> bool:
                # The lock is this lease connection's session's: after a restart of the
                # server, or if that session was ended, it is gone, and another process
                # may have taken it. Checked inside each commit's transaction.
                query = text(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
                    "AND granted AND pid = :pid "
                    "AND objid::bigint = (hashtext(:name)::bigint & 4294967295))"
                )
                found = await other.execute(query, {"pid": backend_pid, "name": f"outpost:{name}"})
                return bool(found.scalar())

            return Lease(unlock, holds)
        database = self.engine.url.database
        if not database or database == ":memory:":
            return Lease(None)
        fd = os.open(f"{database}.{name}.lease", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None

        async def release() -> None:
            os.close(fd)

        return Lease(release)

    async def dispose(self) -> None:
        await self.engine.dispose()


class Lease:
    """What ``Database.try_lease`` holds; ``release`` lets the next process have it, and
    ``check`` (in a write transaction) raises LeaseLost if it is no longer held."""

    def __init__(
        self,
        release: Callable[[], Awaitable[None]] | None,
        holds: Callable[[AsyncConnection], Awaitable[bool]] | None = None,
    ) -> None:
        self._release = release
        self._holds = holds

    async def check(self, conn: AsyncConnection) -> None:
        """Raise LeaseLost unless this lease is still held (a file lock always is: it ends
        only with the process)."""
        if self._holds is not None and not await self._holds(conn):
            raise LeaseLost(
                "this process no longer holds its lease (the database restarted, or its "
                "session was ended): rolling back and waiting for the lease again"
            )

    async def release(self) -> None:
        if self._release is not None:
            release, self._release = self._release, None
            await release()


_BEGIN_WAITING = "BEGIN IMMEDIATE, waiting"
"""``write()``'s BEGIN on a file used in place: the lock is awaited, never slept on."""
_WRITE_LOCK_WAIT_S = 30.0
"""How long a writer waits for another process's write lock (as ``busy_timeout`` did)."""


class _Turn:
    """The writers' turn on one SQLite file: a lock, and the task that holds it."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.holder: asyncio.Task[Any] | None = None


_turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _Turn]] = (
    weakref.WeakKeyDictionary()
)


@asynccontextmanager
async def _writers(path: str) -> AsyncIterator[None]:
    """The writers' turn on one SQLite file (``path``: its real path), shared by every engine
    of this event loop on it (one process can open a file twice: the BFF and a component it
    runs). A write inside a write on the same file, in one task, would wait for itself: it
    raises instead."""
    per_loop = _turns.setdefault(asyncio.get_running_loop(), {})
    turn = per_loop.setdefault(path, _Turn())
    task = asyncio.current_task()
    if task is not None and turn.holder is task:
        raise RuntimeError(f"a write on {path} inside another write on it, in the same task")
    async with turn.lock:
        turn.holder = task
        try:
            yield
        finally:
            turn.holder = None


def _file_of(url: str) -> Path | None:
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _begin_waiting(conn: SyncConnection) -> None:
    """``BEGIN IMMEDIATE`` on a connection used in place, while another process may hold the
    file's write lock: try, and between tries let the loop run (SQLAlchemy's ``await_``
    from this greenlet), instead of blocking it in SQLite's busy handler. The three
    statements go straight to ``sqlite3`` (``InlineConnection.run_now``): through
    SQLAlchemy they took most of a millisecond of every write transaction."""
    from sqlalchemy.util import await_

    inline = conn.connection.driver_connection
    run = inline.run_now if isinstance(inline, InlineConnection) else conn.exec_driver_sql
    deadline = time.monotonic() + _WRITE_LOCK_WAIT_S
    pause = 0.001
    while True:
        # Each try fails at once while the lock is held (no busy handler blocking the loop);
        # the connection's short busy timeout is back for the transaction's statements.
        try:
            run("PRAGMA busy_timeout = 0")
            try:
                run("BEGIN IMMEDIATE")
                return
            finally:
                run(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        except sqlite3.Error as exc:  # straight from sqlite3: as SQLAlchemy would raise it
            failure: Exception = OperationalError("BEGIN IMMEDIATE", None, exc)
            failure.__cause__ = exc
        except Exception as exc:
            failure = exc
        locked = isinstance(getattr(failure, "orig", failure), sqlite3.OperationalError) and (
            "locked" in str(failure) or "busy" in str(failure)
        )
        if not locked or time.monotonic() >= deadline:
            raise failure
        await_(asyncio.sleep(pause))
        pause = min(pause * 2, 0.05)


def _sqlite_engine(url: str, path: Path | None = None) -> AsyncEngine:
    if path is None:
        engine = create_async_engine(url, connect_args={"timeout": 30})
    else:
        engine = create_async_engine(url, async_creator=connector(path))

    @event.listens_for(engine.sync_engine, "connect")
    def _configure(dbapi_connection: Any, _: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cursor = dbapi_connection.cursor()
        for pragma in (
            "journal_mode=WAL",
            "synchronous=FULL",
            *(("busy_timeout=30000",) if path is None else ()),  # in place: see sqlite_inline
            "foreign_keys=ON",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: SyncConnection) -> None:
        begin = conn.get_execution_options().get(_BEGIN_OPTION, "BEGIN")
        if begin == _BEGIN_WAITING:
            _begin_waiting(conn)
        else:
            conn.exec_driver_sql(begin)

    return engine


# The statements below are built once per shape (dialect, table, columns, keys) and kept:
# building one anew costs more than executing it (SQLAlchemy makes a fresh cache key for
# every new statement object; a kept one has its key already), and the hot paths (a push's
# decision, a projector batch, a position) run several per transaction.


@functools.lru_cache(maxsize=256)
def _upsert_statement(
    dialect: str, model: Any, columns: tuple[str, ...], keys: tuple[str, ...]
) -> Any:
    statement = postgresql_insert(model) if dialect == "postgresql" else sqlite_insert(model)
    excluded = statement.excluded  # a new alias at every access: read it once
    updates = {c: excluded[c] for c in columns if c not in keys}
    return statement.on_conflict_do_update(index_elements=list(keys), set_=updates)


@functools.lru_cache(maxsize=64)
def _add_counts_statement(dialect: str, model: Any, keys: tuple[str, ...], column: str) -> Any:
    statement = postgresql_insert(model) if dialect == "postgresql" else sqlite_insert(model)
    total = getattr(model, column) + statement.excluded[column]
    return statement.on_conflict_do_update(index_elements=list(keys), set_={column: total})


@functools.lru_cache(maxsize=128)
def _insert_ignore_statement(
    dialect: str, model: Any, keys: tuple[str, ...], returning: Any
) -> Any:
    statement = postgresql_insert(model) if dialect == "postgresql" else sqlite_insert(model)
    statement = statement.on_conflict_do_nothing(index_elements=list(keys))
    return statement if returning is None else statement.returning(returning)


async def upsert(
    conn: AsyncConnection, model: Any, rows: list[dict[str, Any]], keys: list[str]
) -> None:
    """``INSERT ... ON CONFLICT (keys) DO UPDATE`` the other columns (SQLite and PostgreSQL).

    Rows go as parameter sets of one statement (like ``insert_ignore`` and ``add_counts``),
    built once for each shape of row and kept."""
    if not rows:
        return
    statement = _upsert_statement(conn.dialect.name, model, tuple(rows[0]), tuple(keys))
    await direct.execute(conn, statement, rows)


async def add_counts(
    conn: AsyncConnection, model: Any, rows: list[dict[str, Any]], keys: list[str], column: str
) -> None:
    """``INSERT ... ON CONFLICT (keys) DO UPDATE SET column = column + excluded.column``:
    a counter that adds up across writes (SQLite and PostgreSQL). One row per key."""
    if rows:
        statement = _add_counts_statement(conn.dialect.name, model, tuple(keys), column)
        await direct.execute(conn, statement, rows)


async def insert_ignore(
    conn: AsyncConnection,
    model: Any,
    rows: list[dict[str, Any]],
    keys: list[str],
    *,
    returning: Any = None,
) -> list[Any]:
    """``INSERT ... ON CONFLICT (keys) DO NOTHING`` (SQLite and PostgreSQL); with
    ``returning`` (a column), that column of the rows actually inserted."""
    if not rows:
        return []
    statement = _insert_ignore_statement(conn.dialect.name, model, tuple(keys), returning)
    if returning is None:
        await direct.execute(conn, statement, rows)
        return []
    return await direct.inserted(conn, statement, rows)
