"""Notices: messages to this device's user, each of one kind, kept until dismissed.

The kind says who wrote the notice and so what happened: the sync engine writes
``REJECTED`` (a change the backend refused for good) and ``REMOVED`` (a board the user lost);
a pulled notice is ``BACKEND``'s (a compensation undid a change, or a reminder).
"""

from __future__ import annotations

import sqlite3
import time
from enum import StrEnum


class NoticeKind(StrEnum):
    REJECTED = "rejected"
    REMOVED = "removed"
    BACKEND = "backend"


def add_notice(
    conn: sqlite3.Connection,
    notice_id: str,
    kind: NoticeKind,
    board: str | None,
    task: str | None,
    reason: str,
    message: str,
    created_at: int | None = None,
) -> None:
    """Keep a notice; one already kept under ``notice_id`` stays as it is."""
    conn.execute(
        "INSERT OR IGNORE INTO notices (id, kind, board, task, reason, message, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            notice_id,
            NoticeKind(kind).value,
            board,
            task,
            reason,
            message,
            created_at or int(time.time() * 1000),
        ),
    )
