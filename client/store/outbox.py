"""The outbox: the events this device made, waiting for the backend, in the order made.

Every statement that reads or writes the ``outbox`` table is here. An ``Outbox`` works on
the store's connection inside the caller's transaction (``Store.write()`` or ``read()``),
so an action's append, or a push's results, commit together with the view they change.

A row's life: ``append`` (unsent) -> ``mark_sent`` (the backend stored it, with its stream
``seq``) -> ``settle`` once a pull's watermark covers that seq. A final rejection ``take``s it
out; a clock rejection ``restamp``s it in place; a reset sends it all again (``resend_all``).

A reflected event does not vanish at once: ``settle`` moves it to ``sent``, where it stays
``KEEP_SENT_MS``. After a reset (the views rebuilt, or the backend restored from a backup)
``resend_all`` puts those back in the outbox, before the pending ones and in the order
made, so what a restored backend lost is pushed again; what it still has comes back
``duplicate``.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable

KEEP_SENT_MS = 14 * 24 * 3600 * 1000
"""How long a device keeps the events a pull reflected: longer than the backend's backups
are apart, so a restore loses nothing a device still has."""


class Outbox:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    # writing

    def append(self, event_id: str, board: str, body: bytes) -> None:
        """A new event; ``body`` is the exact JSON sent, so a resend is byte for byte."""
        self._conn.execute(
            "INSERT INTO outbox (id, board, body) VALUES (?, ?, ?)", (event_id, board, body)
        )

    def mark_sent(self, event_id: str, seq: int) -> None:
        """The backend stored it at ``seq``: it stays pending until a pull reflects it."""
        self.mark_all_sent([(event_id, seq)])

    def mark_all_sent(self, stored: Iterable[tuple[str, int]]) -> None:
        """``mark_sent`` for every ``(event id, seq)`` of a push's answer, in one statement."""
        self._conn.executemany(
            "UPDATE outbox SET seq = ? WHERE id = ?", ((seq, event_id) for event_id, seq in stored)
        )

    def restamp(self, event_id: str, body: bytes) -> None:
        """A new hlc for an unsent event the server found too far ahead."""
        self._conn.execute("UPDATE outbox SET body = ? WHERE id = ?", (body, event_id))

    def take(self, event_id: str) -> tuple[str, bytes] | None:
        """Remove one event and return its (board, body); None when it is not here."""
        row = self._conn.execute(
            "SELECT board, body FROM outbox WHERE id = ?", (event_id,)
        ).fetchone()
        if row is None:
            return None
        self.drop(event_id)
        return str(row[0]), bytes(row[1])

    def drop(self, event_id: str) -> None:
        self._conn.execute("DELETE FROM outbox WHERE id = ?", (event_id,))

    def drop_board(self, board: str) -> None:
        """The user lost the board: nothing of it is pushed again, not even after a reset."""
        self._conn.execute("DELETE FROM outbox WHERE board = ?", (board,))
        self._conn.execute("DELETE FROM sent WHERE board = ?", (board,))

    def settle(self, watermark: int, now_ms: int | None = None) -> None:
        """A pull at ``watermark`` reflected these events (``reflected``): out of the
        outbox, into ``sent`` for a while, in the order made (and what has been there
        longer than ``KEEP_SENT_MS`` goes). Three statements, however many there are."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        self._conn.execute(
            "INSERT OR IGNORE INTO sent (id, board, body, at) "
            "SELECT id, board, body, ? FROM outbox WHERE seq IS NOT NULL AND seq <= ? "
            "ORDER BY position",
            (now_ms, watermark),
        )
        self._conn.execute("DELETE FROM outbox WHERE seq IS NOT NULL AND seq <= ?", (watermark,))
        self._conn.execute("DELETE FROM sent WHERE at < ?", (now_ms - KEEP_SENT_MS,))

    def resend_all(self) -> None:
        """After a reset: every kept ``sent`` event back in the outbox, ahead of the pending
        ones, and every ``seq`` forgotten: all of it goes again (duplicates are harmless)."""
        pending = self._conn.execute(
            "SELECT id, board, body FROM outbox ORDER BY position"
        ).fetchall()
        kept = self._conn.execute(
            "SELECT id, board, body FROM sent WHERE id NOT IN (SELECT id FROM outbox) "
            "ORDER BY position"
        ).fetchall()
        self._conn.execute("DELETE FROM outbox")
        self._conn.executemany(
            "INSERT INTO outbox (id, board, body) VALUES (?, ?, ?)", [*kept, *pending]
        )

    def kept_count(self) -> int:
        """Reflected events kept for a reset (``settle``)."""
        return int(self._conn.execute("SELECT COUNT(*) FROM sent").fetchone()[0])

    # reading

    def count(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def sent_count(self) -> int:
        """Events the backend has stored but no pull has reflected yet (sent, awaiting
        confirmation); the rest of ``count`` waits to be sent."""
        query = "SELECT COUNT(*) FROM outbox WHERE seq IS NOT NULL"
        return int(self._conn.execute(query).fetchone()[0])

    def last_position(self) -> int:
        """The position of the newest event (0 when empty): a push's upper bound."""
        row = self._conn.execute("SELECT COALESCE(MAX(position), 0) FROM outbox").fetchone()
        return int(row[0])

    def bodies(self, boards: Iterable[str] | None = None) -> list[bytes]:
        """Every pending event's body (of some boards), in the order made."""
        if boards is None:
            rows = self._conn.execute("SELECT body FROM outbox ORDER BY position")
        else:
            wanted = sorted(set(boards))
            marks = ",".join("?" * len(wanted))
            rows = self._conn.execute(
                f"SELECT body FROM outbox WHERE board IN ({marks}) ORDER BY position", wanted
            )
        return [bytes(body) for (body,) in rows]

    def unsent(self, upto: int | None = None, limit: int = -1) -> list[tuple[str, bytes]]:
        """(id, body) of events not yet stored by the backend, in order; up to outbox
        position ``upto`` and ``limit`` events."""
        rows = self._conn.execute(
            "SELECT id, body FROM outbox WHERE seq IS NULL AND (? IS NULL OR position <= ?) "
            "ORDER BY position LIMIT ?",
            (upto, upto, limit),
        )
        return [(str(event_id), bytes(body)) for event_id, body in rows]

    def unsent_ids(self, board: str) -> list[str]:
        rows = self._conn.execute(
            "SELECT id FROM outbox WHERE board = ? AND seq IS NULL ORDER BY position", (board,)
        )
        return [str(event_id) for (event_id,) in rows]

    def reflected(self, watermark: int) -> list[tuple[str, bytes]]:
        """(id, body) of stored events a pull at ``watermark`` has reflected."""
        rows = self._conn.execute(
            "SELECT id, body FROM outbox WHERE seq IS NOT NULL AND seq <= ?", (watermark,)
        )
        return [(str(event_id), bytes(body)) for event_id, body in rows]

    def boards(self) -> set[str]:
        return {str(board) for (board,) in self._conn.execute("SELECT board FROM outbox")}
