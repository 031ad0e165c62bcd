"""Named schema migrations of the device store, each applied once in its own transaction."""

from __future__ import annotations

import sqlite3
import time

MIGRATIONS: list[tuple[str, list[str]]] = [
    (
        "0001_initial",
        [
            "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            # Events this device made, waiting for the backend. `body` is the exact JSON
            # sent, so a resend is byte for byte the same. `seq` once the backend stored it.
            """CREATE TABLE outbox (
                position INTEGER PRIMARY KEY AUTOINCREMENT,
                id TEXT NOT NULL UNIQUE,
                board TEXT NOT NULL,
                body BLOB NOT NULL,
                seq INTEGER
            )""",
            "CREATE INDEX outbox_board ON outbox (board)",
            # What the backend says, entity by entity (a pulled change, as merge state).
            """CREATE TABLE confirmed (
                kind TEXT NOT NULL, id TEXT NOT NULL, board TEXT NOT NULL, state BLOB NOT NULL,
                PRIMARY KEY (kind, id)
            )""",
            "CREATE INDEX confirmed_board ON confirmed (board)",
            # What the user sees: the confirmed state with the pending events folded on top.
            """CREATE TABLE view (
                kind TEXT NOT NULL, id TEXT NOT NULL, board TEXT NOT NULL, state BLOB NOT NULL,
                vals BLOB,
                PRIMARY KEY (kind, id)
            )""",
            "CREATE INDEX view_board ON view (board)",
            # Events the backend refused for good, kept with the reason.
            """CREATE TABLE rejected (
                id TEXT PRIMARY KEY, board TEXT NOT NULL, body BLOB NOT NULL,
                reason TEXT NOT NULL, detail TEXT NOT NULL, at INTEGER NOT NULL
            )""",
            """CREATE TABLE notices (
                id TEXT PRIMARY KEY, board TEXT, task TEXT, reason TEXT NOT NULL,
                message TEXT NOT NULL, created_at INTEGER NOT NULL,
                dismissed INTEGER NOT NULL DEFAULT 0
            )""",
        ],
    ),
    (
        # A pull after a reset rebuilds the confirmed state here, aside, and swaps it in
        # when complete. A table of the schema rather than a TEMP one: a rebuild that a
        # crash interrupts goes on after a restart. Empty unless a rebuild is under way.
        # (Devices before this migration made it themselves: IF NOT EXISTS keeps theirs.)
        "0002_confirmed_next",
        [
            """CREATE TABLE IF NOT EXISTS confirmed_next (
                kind TEXT NOT NULL, id TEXT NOT NULL, board TEXT NOT NULL, state BLOB NOT NULL,
                PRIMARY KEY (kind, id)
            )""",
        ],
    ),
    (
        # A notice's kind (client.store.notices.NoticeKind) in a column of its own; before,
        # the engine's own notices were told apart by an id prefix.
        "0003_notice_kind",
        [
            "ALTER TABLE notices ADD COLUMN kind TEXT NOT NULL DEFAULT 'backend'",
            "UPDATE notices SET kind = 'rejected' WHERE id GLOB 'rejected:*'",
            "UPDATE notices SET kind = 'removed' WHERE id GLOB 'removed:*'",
        ],
    ),
    (
        # Events the backend stored and a pull reflected, kept a while after they leave the
        # outbox (client.store.outbox.KEEP_SENT_MS): a backend restored from a backup made
        # before them has lost them, and a reset puts them back in the outbox to be pushed
        # again (the ones it still has come back `duplicate`).
        "0004_sent",
        [
            """CREATE TABLE sent (
                position INTEGER PRIMARY KEY AUTOINCREMENT,
                id TEXT NOT NULL UNIQUE,
                board TEXT NOT NULL,
                body BLOB NOT NULL,
                at INTEGER NOT NULL
            )""",
            "CREATE INDEX sent_at ON sent (at)",
        ],
    ),
    (
        # A column's last position by index, not by reading every task of the board: an
        # add task looks up where its column ends (``Device.add_task``). The expressions
        # are the query's own, so SQLite uses the index for it; tasks only.
        "0005_view_task_column",
        [
            "CREATE INDEX IF NOT EXISTS view_task_column ON view ("
            "board, json_extract(CAST(vals AS TEXT), '$.status'), "
            "json_extract(CAST(vals AS TEXT), '$.position')"
            ") WHERE kind = 'task' AND vals IS NOT NULL",
        ],
    ),
    (
        # The outbox's sent and unsent events, each by an index of its own: after every
        # upload the sync engine counts the sent ones (shown as progress) and takes the
        # next unsent batch, and with a backlog of 20,000 the count read every row's body
        # (13 ms) and the batch stepped over every sent row before the first unsent one.
        "0006_outbox_sent_unsent",
        [
            "CREATE INDEX IF NOT EXISTS outbox_sent ON outbox (seq) WHERE seq IS NOT NULL",
            "CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (position) WHERE seq IS NULL",
        ],
    ),
    (
        # A task's column and position in columns of their own, which the view's writers
        # fill, for ``view_task_column``: the index on JSON expressions parsed every task's
        # values twice on each write (a tenth of a bootstrap's inserts into ``view``).
        "0007_view_task_columns",
        [
            "ALTER TABLE view ADD COLUMN task_status TEXT",
            "ALTER TABLE view ADD COLUMN task_position TEXT",
            "UPDATE view SET "
            "task_status = json_extract(CAST(vals AS TEXT), '$.status'), "
            "task_position = json_extract(CAST(vals AS TEXT), '$.position') "
            "WHERE kind = 'task' AND vals IS NOT NULL",
            "DROP INDEX IF EXISTS view_task_column",
            "CREATE INDEX view_task_column ON view (board, task_status, task_position) "
            "WHERE task_status IS NOT NULL",
        ],
    ),
]


def migrate(
    conn: sqlite3.Connection, migrations: list[tuple[str, list[str]]] = MIGRATIONS
) -> list[str]:
    """Apply the migrations this store has not had yet; return their names. (Tests pass
    the first few of ``MIGRATIONS`` to make a store as an older version left it.)"""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)"
    )
    done = {row[0] for row in conn.execute("SELECT name FROM migrations")}
    applied = []
    for name, statements in migrations:
        if name in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO migrations (name, applied_at) VALUES (?, ?)",
                (name, int(time.time() * 1000)),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied
