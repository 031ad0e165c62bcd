"""The device's SQLite file: one per profile, WAL, ``synchronous=FULL``, immediate writes.

One connection, shared by the UI thread and the sync thread under a lock: every write is
one ``BEGIN IMMEDIATE`` transaction that either commits whole or leaves nothing behind,
and any SQLite failure (disk full, read-only, corrupt) becomes a ``StoreError`` saying so.

The WAL is copied into the database by a thread of the store's own (``_Checkpointer``, on
a connection of its own), not by the commit of a user's action: SQLite's automatic
checkpoint runs inside the commit that crosses 1,000 WAL pages, one action in about 80
(an action writes some 12 pages), and that action took four times as long (two more
fsyncs and the copy): it was the whole of the add-task p99. The thread is woken every
``CHECKPOINT_CHANGES`` changed rows; SQLite's own checkpoint stays, at
``BACKSTOP_PAGES``, for a WAL the thread has not kept up with.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from client.errors import StoreError
from client.store.migrations import migrate
from client.store.settings import Setting, read_setting

STORE_FILE = "outpost.db"
BULK_CHECKPOINT_PAGES = 16_384
"""WAL pages (of 4 KiB) between checkpoints during ``Store.bulk``: 64 MiB."""
CHECKPOINT_CHANGES = 150
"""Rows changed between two wakes of the checkpoint thread: some 50 actions (three rows
and 12 WAL pages each), or at once after a page of downloaded events."""
BACKSTOP_PAGES = 4_000
"""WAL pages at which a commit checkpoints itself (SQLite's ``wal_autocheckpoint``), should
the thread fall behind: 16 MiB, four times SQLite's default."""

log = logging.getLogger("outpost.store")


class Store:
    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / STORE_FILE
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=10
            )
            for pragma in ("journal_mode=WAL", "synchronous=FULL", "busy_timeout=10000"):
                self._conn.execute(f"PRAGMA {pragma}")
            self._conn.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}")
            migrate(self._conn)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the local store {self.path}: {exc}") from exc
        self._checkpointer = _Checkpointer(self.path)
        self._changes_seen = self._conn.total_changes
        self._in_bulk = False

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One transaction that holds the write lock; all of it, or none of it."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot write to the local store: {exc}") from exc
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise StoreError(
                    f"could not save to the local store ({exc}); nothing was changed"
                ) from exc
            except BaseException:
                self._rollback()
                raise
            changes = self._conn.total_changes
            if changes - self._changes_seen >= CHECKPOINT_CHANGES and not self._in_bulk:
                self._changes_seen = changes
                self._checkpointer.wake()

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for several queries."""
        with self._lock:
            try:
                self._conn.execute("BEGIN")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read the local store: {exc}") from exc
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read the local store: {exc}") from exc
            finally:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("COMMIT")

    @contextmanager
    def bulk(self) -> Iterator[None]:
        """Many large transactions in a row (a download of many pages): the WAL is copied
        into the database every ``BULK_CHECKPOINT_PAGES`` pages, by the commit that crosses
        them, instead of by the thread every ``CHECKPOINT_CHANGES`` rows (at every page of
        a bootstrap), so the pages every commit rewrites (the ends of the tables and their
        indexes) are copied once per checkpoint, not once per commit. Every commit is still
        fsynced (``synchronous=FULL``). The checkpoint thread sleeps through the bulk; the
        first commit after it copies the WAL itself if it holds more than
        ``BACKSTOP_PAGES``, and wakes the thread for the rest. (Woken at
        the bulk's end instead, the thread's copy met that commit's: a bootstrap of 100,000
        tasks took 6% longer, three paired rounds of ``outpost bench --only bootstrap``.)"""
        with self._lock:
            (previous,) = self._conn.execute("PRAGMA wal_autocheckpoint").fetchone()
            self._conn.execute(f"PRAGMA wal_autocheckpoint = {BULK_CHECKPOINT_PAGES}")
            self._in_bulk = True
        try:
            yield
        finally:
            with self._lock:
                self._conn.execute(f"PRAGMA wal_autocheckpoint = {int(previous)}")
                self._in_bulk = False

    def setting(self, key: Setting, default: str | None = None) -> str | None:
        with self._lock:
            value = read_setting(self._conn, key)
        return default if value is None else value

    def pragma(self, name: str) -> str:
        with self._lock:
            return str(self._conn.execute(f"PRAGMA {name}").fetchone()[0])

    def integrity_check(self) -> str:
        """``ok``, or what SQLite found wrong."""
        return self.pragma("integrity_check")

    def close(self) -> None:
        self._checkpointer.stop()
        with self._lock:
            self._conn.close()

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled back (a full disk)
            self._conn.execute("ROLLBACK")


class _Checkpointer:
    """A thread that copies the WAL into the database (``PRAGMA wal_checkpoint(PASSIVE)``:
    it never waits for, nor blocks, a writer or a reader) each time it is woken. Its
    failures (a full disk) are logged and left to the next wake, or to the backstop: the
    WAL keeps every committed write until a checkpoint succeeds."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._wanted = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="store-checkpoint", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wanted.set()

    def stop(self) -> None:
        """Stop the thread and wait for a checkpoint it is in to end."""
        self._stopping = True
        self._wanted.set()
        self._thread.join()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while True:
                self._wanted.wait()
                self._wanted.clear()
                if self._stopping:
                    return
                try:
                    if conn is None:
                        conn = sqlite3.connect(self._path, isolation_level=None)
                        conn.execute("PRAGMA synchronous=FULL")  # fsync the database after
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:
                    log.warning("could not checkpoint the local store %s: %s", self._path, exc)
        finally:
            if conn is not None:
                conn.close()
