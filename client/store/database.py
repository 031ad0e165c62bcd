"""The device's SQLite file: one per profile, WAL, ``synchronous=FULL``, immediate writes.

One connection, shared by the UI thread and the sync thread under a lock: every write is
one ``BEGIN IMMEDIATE`` transaction that either commits whole or leaves nothing behind,
and any SQLite failure (disk full, read-only, corrupt) becomes a ``StoreError`` saying so.
"""

from __future__ import annotations

import contextlib
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
            migrate(self._conn)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the local store {self.path}: {exc}") from exc

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
        into the database every ``BULK_CHECKPOINT_PAGES`` pages instead of SQLite's 1,000
        (at every other page of a bootstrap), so the pages every commit rewrites (the ends
        of the tables and their indexes) are copied once per checkpoint, not once per
        commit. Every commit is still fsynced (``synchronous=FULL``); the WAL is copied
        into the database by the first commit after the bulk."""
        with self._lock:
            (previous,) = self._conn.execute("PRAGMA wal_autocheckpoint").fetchone()
            self._conn.execute(f"PRAGMA wal_autocheckpoint = {BULK_CHECKPOINT_PAGES}")
        try:
            yield
        finally:
            with self._lock:
                self._conn.execute(f"PRAGMA wal_autocheckpoint = {int(previous)}")

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
        with self._lock:
            self._conn.close()

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled back (a full disk)
            self._conn.execute("ROLLBACK")
