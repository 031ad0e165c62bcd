"""The projector finds the stored states of a batch's entities by the views' primary key, so
a batch costs the same on a board of ten tasks and beside a million others. Looked up by
the id alone, SQLite read every row of the views: with 100,000 tasks on another board,
each commit took 130 ms instead of 4 (``outpost bench``'s fan-out after its bootstrap)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import msgspec
from sqlalchemy import insert
from sqlalchemy.dialects import sqlite

from backend.db import Database
from backend.projector.models import View
from backend.projector.projector import STATES, _load_states
from protocol import merge
from protocol.merge import EntityKey

BOARD = "0f0e0d0c-0b0a-4908-8706-050403020100"


def _row(kind: str, entity: str, version: int, state: bytes) -> dict[str, object]:
    return {
        "kind": kind,
        "id": entity,
        "board": BOARD,
        "version": version,
        "state": state.decode(),
        "values": None,
        "meta": "{}",
        "audience": None,
    }


def test_states_are_found_by_the_primary_key_never_by_reading_every_row(tmp_path: Path) -> None:
    keys = [EntityKey("task", "t1"), EntityKey("board", BOARD), EntityKey("member", "m1")]
    db = Database.for_component("projector", data_dir=tmp_path, url=None)

    async def found() -> dict[EntityKey, object]:
        await db.migrate()
        async with db.write() as conn:
            rows = [
                _row(k.kind, k.id, n, msgspec.json.encode(merge.new_state(k, BOARD)))
                for n, k in enumerate([*keys, EntityKey("task", "elsewhere")], start=1)
            ]
            await conn.execute(insert(View), rows)
        async with db.read() as conn:
            states = await _load_states(conn, keys[:2])
        await db.dispose()
        return dict(states)

    states = asyncio.run(found())
    assert set(states) == set(keys[:2])  # exactly the asked for, nothing of the same ids

    kinds, ids = sorted({k.kind for k in keys}), sorted({k.id for k in keys})
    statement = STATES.params(kinds=kinds, ids=ids).compile(
        dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True, "render_postcompile": True}
    )
    with sqlite3.connect(tmp_path / "projector.db") as conn:
        plan = " / ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {statement}"))
    assert "USING INDEX sqlite_autoindex_views_1" in plan, plan  # the primary key (kind, id)
    assert "SCAN views" not in plan, plan
