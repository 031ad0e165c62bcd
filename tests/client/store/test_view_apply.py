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
from client.store.view import confirm, confirm_many, pending, refold, refold_confirmed
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
    states = merge.fold([*accepted, *later])
    page = [
        msgspec.json.decode(
            msgspec.json.encode(
                {
                    "kind": key.kind,
                    "id": key.id,
                    "board": state.board,
                    "version": version,
                    "values": merge.values(state),
                    "meta": merge.meta(state),
                }
            )
        )
        for version, (key, state) in enumerate(states.items(), start=1)
    ]

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
    device.close()
