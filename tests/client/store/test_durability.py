"""The device store keeps what an action returned, and a failed action leaves nothing behind
(FAULTS row 12: disk full on the device); its WAL is copied into the database off the
actions' way."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from client.device import Device
from client.errors import InvalidAction, StoreError
from client.store.database import BACKSTOP_PAGES, Store
from tests.support.nats import wait_until

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


def rows_in_the_database_file(store: Store, copy: Path) -> int:
    """Outbox rows the database file itself holds, its WAL left aside: what checkpoints
    have copied there. The copy is opened ``immutable`` (no WAL, no locks); one torn by a
    checkpoint writing the file meanwhile counts as none, and is taken again."""
    copy.write_bytes(store.path.read_bytes())
    conn = sqlite3.connect(f"file:{copy}?immutable=1", uri=True)
    try:
        (count,) = conn.execute("SELECT count(*) FROM outbox").fetchone()
    except sqlite3.DatabaseError:  # no tables copied yet, or a torn copy
        return 0
    finally:
        conn.close()
    return int(count)


def file_holds(store: Store, copy: Path, rows: int) -> None:
    """Until the database file holds ``rows`` outbox rows (``rows_in_the_database_file``)."""
    asyncio.run(
        wait_until(
            lambda: rows_in_the_database_file(store, copy) >= rows,
            timeout_s=30,
            what=f"{rows} outbox rows in the database file itself",
        )
    )


def test_the_wal_is_copied_into_the_database_by_the_stores_thread_not_by_an_actions_commit(
    device: Device, tmp_path: Path
) -> None:
    """SQLite's own checkpoint ran inside the commit of one action in about 80 and made it
    four times as slow: the add-task p99. The store's thread copies the WAL instead, and
    SQLite's stays only as a backstop, far above what a hundred actions write."""
    assert int(device.store.pragma("wal_autocheckpoint")) == BACKSTOP_PAGES
    board = device.create_board("Groceries")
    for i in range(100):  # some 300 changed rows and 1,200 WAL pages: under the backstop
        device.add_task(board, f"task {i}")
    file_holds(device.store, tmp_path / "copy.db", 50)
    assert [t["title"] for t in device.tasks(board)] == [f"task {i}" for i in range(100)]


def test_a_bulk_download_is_copied_after_it_not_during_it(
    device: Device, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """During ``Store.bulk`` the thread sleeps (the bulk checkpoints every 64 MiB, so that
    the pages every commit rewrites are copied once); the first commit after it wakes it."""
    wakes: list[None] = []
    wake = device.store._checkpointer.wake
    monkeypatch.setattr(device.store._checkpointer, "wake", lambda: (wakes.append(None), wake()))
    board = device.create_board("Groceries")
    with device.store.bulk():
        for i in range(100):
            device.add_task(board, f"task {i}")
    assert not wakes
    device.add_task(board, "after")
    assert len(wakes) == 1
    file_holds(device.store, tmp_path / "copy.db", 101)


def test_a_closed_store_leaves_no_thread_behind(tmp_path: Path) -> None:
    before = {t for t in threading.enumerate() if t.name == "store-checkpoint"}
    device = Device(tmp_path / "profile")
    board = device.create_board("Groceries")
    for i in range(60):
        device.add_task(board, f"task {i}")  # wakes the thread: it has its connection open
    device.close()
    assert {t for t in threading.enumerate() if t.name == "store-checkpoint"} == before
    reopened = Device(tmp_path / "profile")
    try:
        assert len(reopened.tasks(board)) == 60
    finally:
        reopened.close()
