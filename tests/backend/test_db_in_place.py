"""The backend's SQLite files, used in place on the event loop (``backend/sqlite_inline.py``):
a write waits for another process's write lock without holding the loop, many writers of
one process take turns and lose nothing, and a write inside a write on the same file in one
task raises instead of waiting for itself."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import Column as SAColumn
from sqlalchemy import Integer, MetaData, String, insert, select
from sqlalchemy import Table as SATable

from backend.db import Database

metadata = MetaData()
notes = SATable(
    "notes", metadata, SAColumn("id", Integer, primary_key=True), SAColumn("text", String(80))
)


async def _database(folder: Path) -> Database:
    db = Database.for_component("bff", data_dir=folder, url=None)
    await db.create(metadata)
    return db


def test_a_write_waits_out_another_process_lock_while_the_loop_runs_on(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[str], list[tuple[bool, int]]]:
        db = await _database(tmp_path)
        other = sqlite3.connect(tmp_path / "bff.db", isolation_level=None, timeout=0)
        other.execute("BEGIN IMMEDIATE")  # another process's writer, holding the lock
        other.execute("INSERT INTO notes (id, text) VALUES (1, 'theirs')")
        released = threading.Event()
        ticks = 0
        waited: list[tuple[bool, int]] = []
        try:

            async def ticker() -> None:
                nonlocal ticks
                while not released.is_set():
                    ticks += 1
                    await asyncio.sleep(0.005)

            async def release_later() -> None:
                await asyncio.sleep(1.0)
                other.execute("COMMIT")
                released.set()

            async def ours() -> None:
                nonlocal ticks
                ticks = 0  # counted from here: while our write waits for the lock
                async with db.write() as conn:
                    waited.append((released.is_set(), ticks))
                    await conn.execute(insert(notes).values(id=2, text="ours"))

            ticking = asyncio.create_task(ticker())
            await asyncio.gather(ours(), release_later())
            await ticking
            async with db.read() as conn:
                texts = list(
                    (await conn.execute(select(notes.c.text).order_by(notes.c.id))).scalars()
                )
            return texts, waited
        finally:
            other.close()
            await db.dispose()

    texts, waited = asyncio.run(scenario())
    assert texts == ["theirs", "ours"]  # it waited for the lock, then wrote
    ((after_release, ticks),) = waited
    assert after_release, "the write began only once the other writer committed"
    # a write that blocked the loop would see no tick (nor the release, which runs on it)
    assert ticks >= 10, f"the loop went on with other work while the write waited: {ticks}"


def test_writers_of_one_process_take_turns_and_lose_nothing(tmp_path: Path) -> None:
    async def scenario() -> list[int]:
        db = await _database(tmp_path)
        try:

            async def writer(first: int) -> None:
                for i in range(first, first + 20):
                    async with db.write() as conn:
                        await conn.execute(insert(notes).values(id=i, text=f"note {i}"))
                        await asyncio.sleep(0)  # another writer's turn would come here

            await asyncio.gather(*(writer(n * 100) for n in range(5)))
            async with db.read() as conn:
                return list((await conn.execute(select(notes.c.id))).scalars())
        finally:
            await db.dispose()

    ids = asyncio.run(scenario())
    assert sorted(ids) == sorted(n * 100 + i for n in range(5) for i in range(20))


def test_a_write_inside_a_write_on_the_same_file_raises_instead_of_waiting(tmp_path: Path) -> None:
    async def scenario() -> None:
        db = await _database(tmp_path)
        try:
            async with db.write() as conn:
                await conn.execute(insert(notes).values(id=1, text="outer"))
                with pytest.raises(RuntimeError, match="inside another write"):
                    async with db.write():
                        pass
            async with db.read() as conn:  # the outer write went on and committed
                assert (await conn.execute(select(notes.c.text))).scalar() == "outer"
        finally:
            await db.dispose()

    asyncio.run(asyncio.wait_for(scenario(), timeout=60))


def test_every_commit_ends_in_place_and_a_write_is_on_disk_when_it_returns(
    tmp_path: Path,
) -> None:
    """Every commit, fsync and all, is made on the loop's own thread: the round trip to a
    worker thread cost more than the wait for the disk. The write is on disk (seen by
    another connection) when its transaction ends."""
    commits: list[tuple[str, bool]] = []

    async def scenario() -> list[str]:
        db = await _database(tmp_path)
        loop_thread = threading.get_ident()
        try:
            async with db.write() as conn:
                raw = await conn.get_raw_connection()
                sqlite = raw.driver_connection._conn  # type: ignore[union-attr]

                def traced(statement: str) -> None:
                    if statement.strip().upper() == "COMMIT":
                        commits.append((what, threading.get_ident() == loop_thread))

                sqlite.set_trace_callback(traced)
                what = "write"
                await conn.execute(insert(notes).values(id=1, text="kept"))
            with sqlite3.connect(tmp_path / "bff.db") as check:
                assert check.execute("SELECT text FROM notes").fetchall() == [("kept",)]
            what = "read"
            async with db.read() as conn:
                texts = list((await conn.execute(select(notes.c.text))).scalars())
            return texts
        finally:
            await db.dispose()

    assert asyncio.run(scenario()) == ["kept"]
    assert commits == [("write", True), ("read", True)]
