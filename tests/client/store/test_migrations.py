"""A profile made by an older version is brought up to date in place, its data kept."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

from client.app.viewmodels import NoticesViewModel
from client.device import COLUMN_END, Device
from client.store.database import STORE_FILE
from client.store.migrations import MIGRATIONS, migrate
from client.store.notices import NoticeKind
from client.store.outbox import Outbox

BEFORE_KINDS = MIGRATIONS[:1]
"""The schema before this change: notices told apart by an id prefix, and the reset
rebuild's ``confirmed_next`` made by the engine itself."""


def old_profile(folder: Path, *, rebuilding: bool) -> dict[str, str]:
    """A store as the older version left it, with one notice of each kind; returns their
    ids by kind."""
    folder.mkdir(parents=True)
    ids = {"rejected": f"rejected:{uuid.uuid4()}", "removed": f"removed:{uuid.uuid4()}"}
    ids["backend"] = str(uuid.uuid4())
    conn = sqlite3.connect(folder / STORE_FILE, isolation_level=None)
    try:
        assert migrate(conn, BEFORE_KINDS) == ["0001_initial"]
        for at, notice_id in enumerate(ids.values()):
            conn.execute(
                "INSERT INTO notices (id, board, task, reason, message, created_at) "
                "VALUES (?, 'b', NULL, 'forbidden', 'm', ?)",
                (notice_id, at + 1),
            )
        if rebuilding:  # as the engine made it, mid-rebuild
            conn.execute(
                "CREATE TABLE confirmed_next (kind TEXT NOT NULL, id TEXT NOT NULL, "
                "board TEXT NOT NULL, state BLOB NOT NULL, PRIMARY KEY (kind, id))"
            )
            conn.execute("INSERT INTO confirmed_next VALUES ('board', 'b', 'b', x'7b7d')")
    finally:
        conn.close()
    return ids


def test_a_new_store_has_every_migration(tmp_path: Path) -> None:
    device = Device(tmp_path / "profile")
    with device.store.read() as conn:
        names = [name for (name,) in conn.execute("SELECT name FROM migrations ORDER BY name")]
    device.close()
    assert names == [name for name, _ in MIGRATIONS]


def test_old_notices_get_their_kind_from_the_id_prefix(tmp_path: Path) -> None:
    ids = old_profile(tmp_path / "profile", rebuilding=False)
    device = Device(tmp_path / "profile")
    try:
        kinds = {n["id"]: n["kind"] for n in device.notices()}
        titles = {n["id"]: n["title"] for n in NoticesViewModel(device).notices}
    finally:
        device.close()
    assert kinds == {ids[kind]: NoticeKind(kind) for kind in ids}
    assert titles == {
        ids["rejected"]: "Change not saved",
        ids["removed"]: "Board no longer shared with you",
        ids["backend"]: "Change undone",
    }


def test_a_rebuild_under_way_keeps_what_it_had_pulled(tmp_path: Path) -> None:
    old_profile(tmp_path / "profile", rebuilding=True)
    device = Device(tmp_path / "profile")
    try:
        with device.store.read() as conn:
            rows = conn.execute("SELECT kind, id FROM confirmed_next").fetchall()
    finally:
        device.close()
    assert rows == [("board", "b")]


def before_migration(profile: Path, name: str, *statements: str) -> None:
    """Leave a closed profile as the version before migration ``name`` left it."""
    conn = sqlite3.connect(profile / STORE_FILE, isolation_level=None)
    try:
        for statement in statements:
            conn.execute(statement)
        conn.execute("DELETE FROM migrations WHERE name = ?", (name,))
    finally:
        conn.close()


def test_a_board_from_before_the_column_index_keeps_adding_at_the_end(tmp_path: Path) -> None:
    """A profile whose tasks were stored before ``0005_view_task_column`` (and so before
    ``0007_view_task_columns``, the task's column and position in columns of the view):
    the columns are filled from the stored values, the index is built over them, and a
    new task still goes after the last of its column, found by the index."""
    device = Device(tmp_path / "profile")
    board = device.create_board("Old board")
    tasks = [device.add_task(board, f"Task {i}") for i in range(30)]
    device.move_task(tasks[0], index=29)
    device.set_task(tasks[1], status="doing")
    device.add_comment(tasks[2], "a comment has no column")
    device.close()
    before_migration(
        tmp_path / "profile",
        "0007_view_task_columns",
        "DROP INDEX view_task_column",
        "ALTER TABLE view DROP COLUMN task_status",
        "ALTER TABLE view DROP COLUMN task_position",
    )
    before_migration(tmp_path / "profile", "0005_view_task_column")
    device = Device(tmp_path / "profile")
    try:
        added = device.add_task(board, "Added after the upgrade")
        doing = device.add_task(board, "Doing too", status="doing")
        columns = {
            status: [t["id"] for t in device.tasks(board) if t["status"] == status]
            for status in ("todo", "doing")
        }
        with device.store.read() as conn:
            plan = " ".join(
                row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {COLUMN_END}", (board, "todo"))
            )
            filled = conn.execute(
                "SELECT kind, COUNT(*), COUNT(task_status), COUNT(task_position) FROM view "
                "GROUP BY kind ORDER BY kind"
            ).fetchall()
    finally:
        device.close()
    assert "view_task_column" in plan, plan
    no_column = [("board", 1, 0, 0), ("comment", 1, 0, 0), ("member", 1, 0, 0)]
    assert filled == [*no_column, ("task", 32, 32, 32)]
    assert columns == {"todo": [*tasks[2:], tasks[0], added], "doing": [tasks[1], doing]}


def test_the_outbox_counts_sent_events_and_finds_the_next_batch_by_index(tmp_path: Path) -> None:
    """After every upload the engine counts the sent events and takes the next unsent
    batch: by ``0006_outbox_sent_unsent``'s partial indexes, not by reading every row of a
    backlog. A profile from before gets them, and the answers are the same."""
    device = Device(tmp_path / "profile")
    board = device.create_board("Backlog")
    task = device.add_task(board, "Edited")
    for i in range(30):
        device.set_task(task, title=f"Edit {i}")
    device.close()
    before_migration(  # with the first ten events sent
        tmp_path / "profile",
        "0006_outbox_sent_unsent",
        "DROP INDEX outbox_sent",
        "DROP INDEX outbox_unsent",
        "UPDATE outbox SET seq = position WHERE position <= 10",
    )
    device = Device(tmp_path / "profile")
    try:
        with device.store.read() as conn:
            outbox = Outbox(conn)
            counts = (outbox.count(), outbox.sent_count(), len(outbox.unsent(None, 500)))
            first = outbox.unsent(None, 1)[0][0]
            plans = [
                " ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {query}", args))
                for query, args in (
                    ("SELECT COUNT(*) FROM outbox WHERE seq IS NOT NULL", ()),
                    (
                        "SELECT id, body FROM outbox WHERE seq IS NULL "
                        "AND (? IS NULL OR position <= ?) ORDER BY position LIMIT ?",
                        (None, None, 500),
                    ),
                )
            ]
            eleventh = conn.execute("SELECT id FROM outbox WHERE position = 11").fetchone()[0]
    finally:
        device.close()
    assert counts == (32, 10, 22)  # the board, the task and 30 edits; ten of them sent
    assert first == eleventh  # the next batch starts at the first unsent event
    assert "outbox_sent" in plans[0] and "outbox_unsent" in plans[1], plans
