"""The device store keeps what an action returned, and a failed action leaves nothing behind
(FAULTS row 12: disk full on the device)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from client.device import Device
from client.errors import InvalidAction, StoreError
from client.store.database import Store

BIG_NOTES = "n" * 20_000  # the longest notes a task may have: several pages per action
TABLES = ("settings", "outbox", "confirmed", "view", "rejected", "notices")


@pytest.fixture
def device(tmp_path: Path) -> Iterator[Device]:
    device = Device(tmp_path / "profile")
    try:
        yield device
    finally:
        device.close()


def rows_of(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the store, in one snapshot: what "nothing changed" means."""
    with store.read() as conn:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
            for table in TABLES
        }


def limit_pages(store: Store, pages: int) -> int:
    """Cap the file at ``pages`` pages (SQLite's ``max_page_count``): a full disk, on cue."""
    return int(store.pragma(f"max_page_count = {pages}"))


def test_the_store_runs_in_wal_mode_with_full_synchronous_writes(device: Device) -> None:
    assert device.store.pragma("journal_mode") == "wal"
    assert device.store.pragma("synchronous") == "2"  # FULL: fsync at every commit


def test_a_full_disk_fails_the_action_whole_and_the_next_action_works_once_space_is_back(
    device: Device,
) -> None:
    board = device.create_board("Groceries")
    device.add_task(board, "milk")
    pages = int(device.store.pragma("page_count"))
    assert limit_pages(device.store, pages + 40) == pages + 40

    made: list[str] = []
    with pytest.raises(StoreError) as failure:
        for _ in range(50):  # each one writes ~60 KB: the disk fills within a few
            before, pending = rows_of(device.store), device.pending_count()
            made.append(device.add_task(board, "big", notes=BIG_NOTES))
    assert made, "the disk should have had room for a few actions before it filled"
    assert "nothing was changed" in str(failure.value)
    assert "full" in str(failure.value)
    assert device.pending_count() == pending
    assert rows_of(device.store) == before
    assert device.store.integrity_check() == "ok"

    limit_pages(device.store, 1_000_000)
    task = device.add_task(board, "after", notes=BIG_NOTES)
    assert device.entity("task", task) is not None
    assert device.pending_count() == pending + 1
    titles = [t["title"] for t in device.tasks(board)]
    assert titles == ["milk", *["big"] * len(made), "after"]


def test_a_full_disk_survives_a_reopen(tmp_path: Path) -> None:
    device = Device(tmp_path / "profile")
    board = device.create_board("Groceries")
    limit_pages(device.store, int(device.store.pragma("page_count")) + 10)
    with pytest.raises(StoreError):
        for _ in range(20):
            device.add_task(board, "big", notes=BIG_NOTES)
    before = rows_of(device.store)
    device.close()

    reopened = Device(tmp_path / "profile")
    try:
        assert reopened.store.integrity_check() == "ok"
        assert rows_of(reopened.store) == before
    finally:
        reopened.close()


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"title": "x" * 501}, "title"),
        ({"title": "ok", "priority": 9}, "priority"),
    ],
    ids=["title-of-501-chars", "priority-9"],
)
def test_an_invalid_action_names_the_field_and_writes_nothing(
    device: Device, fields: dict[str, Any], named: str
) -> None:
    board = device.create_board("Groceries")
    task = device.add_task(board, "milk")
    before = rows_of(device.store)
    title = fields.pop("title")
    with pytest.raises(InvalidAction, match=named):
        device.add_task(board, title, **fields)
    with pytest.raises(InvalidAction, match=named):
        device.set_task(task, title=title, **fields)
    assert rows_of(device.store) == before
