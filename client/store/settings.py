"""The profile's settings: every key the device keeps, named once, with one reader and writer.

Values are text (absent: None). ``Store.setting`` reads one outside a transaction; inside
one, ``read_setting``/``write_setting`` take the transaction's connection.
"""

from __future__ import annotations

import sqlite3
from enum import StrEnum


class Setting(StrEnum):
    # identity and session
    DEVICE_ID = "device_id"
    SERVER = "server"
    USERNAME = "username"
    TOKEN = "token"
    REFRESH_TOKEN = "refresh_token"
    # the clock: the correction learned from the server, the last stamp, the rebase floor
    CLOCK_OFFSET = "clock_offset"
    CLOCK_LAST = "clock_last"
    HLC_FLOOR = "hlc_floor"
    """The highest hlc accepted or pulled: a clock rebase restarts from it."""
    # pull
    CURSOR = "cursor"
    GENERATION = "generation"
    WATERMARK = "watermark"
    REBUILDING = "rebuilding"
    """"1" while a reset's rebuild fills ``confirmed_next``."""
    PENDING_WATERMARK = "pending_watermark"
    """The watermark the rebuild will have once swapped in."""


def read_setting(conn: sqlite3.Connection, key: Setting) -> str | None:
    row = conn.execute("SELECT value FROM settings WHERE key = ?", (Setting(key).value,)).fetchone()
    return None if row is None else str(row[0])


def write_setting(conn: sqlite3.Connection, key: Setting, value: str | None) -> None:
    """Set ``key`` to ``value``; None removes it."""
    if value is None:
        conn.execute("DELETE FROM settings WHERE key = ?", (Setting(key).value,))
    else:
        conn.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (Setting(key).value, value),
        )
