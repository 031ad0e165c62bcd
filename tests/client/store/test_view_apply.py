"""A pulled page is stored in one statement per table (``confirm_many``) and folded into the
view from the states it just wrote (``refold_confirmed``): the rows must be exactly those
that storing and refolding the page one change at a time gives, pending events included."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import msgspec
import pytest

from client.device import Device
from client.store.view import (
    AS_CONFIRMED,
    confirm,
    confirm_many,
    pending,
    refold,
    refold_confirmed,
)
from protocol import (
    Event,
    HybridLogicalClock,
    Writer,
    merge,
    new_device_id,
    new_id,
    validate_event,
)


class _Undo(Exception):
    """Rolls a store transaction back: each way of storing starts from the same store."""


def _rows(conn: sqlite3.Connection) -> dict[str, list[tuple[Any, ...]]]:
    return {
        table: conn.execute(f"SELECT * FROM {table} ORDER BY kind, id").fetchall()
        for table in ("confirmed", "view")
    }


def _elsewhere(
    board: str, clock: HybridLogicalClock, type_: str, entity: str, **payload: Any
) -> Event:
    """An event another user's device made, as the backend reads it."""
    raw = {
        "id": new_id(),
        "type": type_,
        "schema": 1,
        "board": board,
        "entity": entity,
        "hlc": clock.now(),
        "device": clock.node,
        "payload": payload,
    }
    return msgspec.structs.replace(validate_event(raw, Writer.DEVICE), actor="someone")


def _page_of(events: list[Event]) -> list[dict[str, Any]]:
    """The pull page that says the backend stored ``events``."""
    return [
        {
            "kind": key.kind,
            "id": key.id,
            "board": state.board,
            "version": 1,
            "values": merge.values(state),
            "meta": merge.meta(state),
        }
        for key, state in merge.fold(events).items()
    ]


def test_a_page_stored_at_once_gives_the_rows_of_one_change_at_a_time(tmp_path: Path) -> None:
    device = Device(tmp_path / "phone")
    board = device.create_board("Board")
    mine = device.add_task(board, "mine")
    theirs = device.add_task(board, "theirs")
    with device.store.read() as conn:
        accepted = pending(conn, None)  # stored by the backend, as the page will say
    device.set_task(mine, title="mine, edited here")  # still pending when the page comes
    other = HybridLogicalClock(new_device_id())
    new = new_id()
    later = [
        _elsewhere(board, other, "TaskUpdated", theirs, fields={"notes": "from elsewhere"}),
        _elsewhere(board, other, "TaskCreated", new, title="made elsewhere", position="a5"),
    ]
    page = _page_of([*accepted, *later])

    def stored(store_page: Any) -> dict[str, list[tuple[Any, ...]]]:
        with pytest.raises(_Undo), device.store.write() as conn:
            store_page(conn)
            rows = _rows(conn)
            raise _Undo
        return rows

    def one_at_a_time(conn: sqlite3.Connection) -> None:
        refold(conn, [confirm(conn, change) for change in page], None)

    def at_once(conn: sqlite3.Connection) -> None:
        refold_confirmed(conn, confirm_many(conn, page), None)

    expected = stored(one_at_a_time)
    assert stored(at_once) == expected
    assert len(expected["confirmed"]) == 5  # the board, its owner, three tasks
    shown = {row[1]: msgspec.json.decode(row[4]) for row in expected["view"] if row[0] == "task"}
    assert shown[mine]["title"] == "mine, edited here"  # the pending edit, folded on top
    assert shown[theirs]["notes"] == "from elsewhere"
    assert shown[new]["title"] == "made elsewhere"
    kept = {row[1]: row[3] for row in expected["view"]}
    assert kept[new] == AS_CONFIRMED  # nothing pending on it: its state is stored once
    assert kept[mine] != AS_CONFIRMED  # the pending edit's state is the view's own
    device.close()


def test_a_view_row_with_nothing_pending_reads_its_state_from_the_confirmed_one(
    tmp_path: Path,
) -> None:
    device = Device(tmp_path / "phone")
    board = device.create_board("Board")
    task = device.add_task(board, "Write the notes", notes="first draft")
    with device.store.write() as conn:  # the backend stored them, and a pull said so
        made = pending(conn, None)
        page = _page_of(made)
        conn.execute("DELETE FROM outbox")
        refold_confirmed(conn, confirm_many(conn, page), None)
    with device.store.read() as conn:
        assert {row[0] for row in conn.execute("SELECT state FROM view")} == {AS_CONFIRMED}
    [change] = [c for c in page if c["id"] == task]
    entity = device.entity("task", task)
    assert entity is not None
    assert (entity["values"], entity["meta"]) == (change["values"], change["meta"])
    # An edit folds onto the confirmed state: the fields it does not touch are kept.
    device.set_task(task, notes="second draft")
    [shown] = device.tasks(board)
    assert (shown["title"], shown["notes"]) == ("Write the notes", "second draft")
    with device.store.read() as conn:
        (state,) = conn.execute("SELECT state FROM view WHERE id = ?", (task,)).fetchone()
    assert state != AS_CONFIRMED
    edited = device.entity("task", task)
    assert edited is not None
    assert edited["meta"]["fields"]["notes"] != change["meta"]["fields"]["notes"]
    # Once the edit is confirmed too, a refold stores the row as the confirmed state again.
    with device.store.write() as conn:
        edit = pending(conn, None)
        conn.execute("DELETE FROM outbox")
        refold(conn, [confirm(conn, c) for c in _page_of([*made, *edit]) if c["id"] == task], None)
        (state,) = conn.execute("SELECT state FROM view WHERE id = ?", (task,)).fetchone()
    assert state == AS_CONFIRMED
    assert device.tasks(board)[0]["notes"] == "second draft"
    assert device.entity("task", task) == edited
    device.close()
