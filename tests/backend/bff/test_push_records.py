"""A push writes its accepted events' id records ahead of publishing, one statement for the
whole batch; an id another push committed meanwhile (two users, two boards, two locks) is
a lost race: nothing of the decision is kept, and the push decides again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select

from backend.bff.models import EventRecord
from backend.bff.sync.push import _insert_new, _LostRace
from backend.db import Database
from protocol import new_id


def record(event_id: str, actor: str = "alice") -> dict[str, object]:
    return {"id": event_id, "actor": actor, "hash": "h" * 64, "seq": None}


async def _scenario(tmp_path: Path, url: str | None) -> None:
    db = Database.for_component("bff", data_dir=tmp_path, url=url)
    await db.migrate()
    try:
        batch = [new_id() for _ in range(500)]
        async with db.write() as conn:
            await _insert_new(conn, EventRecord, [record(i) for i in batch])
        taken, fresh = batch[250], new_id()
        with pytest.raises(_LostRace, match=taken):
            async with db.write() as conn:
                await _insert_new(conn, EventRecord, [record(fresh, "bob"), record(taken, "bob")])
        async with db.read() as conn:
            rows = {r.id: r.actor for r in await conn.execute(select(EventRecord))}
        assert rows == {i: "alice" for i in batch}  # bob's fresh one went with the race
    finally:
        await db.dispose()


def test_id_records_are_written_whole_or_the_race_is_lost_on_sqlite(tmp_path: Path) -> None:
    asyncio.run(_scenario(tmp_path, None))


@pytest.mark.integration
def test_id_records_are_written_whole_or_the_race_is_lost_on_postgresql(
    tmp_path: Path, pg_url: str
) -> None:
    asyncio.run(_scenario(tmp_path, pg_url))
