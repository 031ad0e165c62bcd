"""A views database made before notices existed is brought up to date, not broken."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from backend.db import Database
from backend.projector.models import ProjectorBase
from backend.projector.projector import ensure_generation, upgrade


def test_an_older_views_database_gets_the_audience_column_and_keeps_its_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "projector.db"
    with sqlite3.connect(path) as old:  # the views table as the previous version made it
        old.execute(
            "CREATE TABLE views (kind VARCHAR(16), id VARCHAR(120), board VARCHAR(80), "
            'version BIGINT UNIQUE, state TEXT, "values" TEXT, meta TEXT, '
            "PRIMARY KEY (kind, id))"
        )
        old.execute("INSERT INTO views VALUES ('task', 't', 'b', 1, '{}', '{}', '{}')")

    async def open_and_upgrade() -> None:
        db = Database.for_component("projector", data_dir=tmp_path, url=None)
        try:
            await db.create(ProjectorBase.metadata)
            await upgrade(db)
            await upgrade(db)  # idempotent
            await ensure_generation(db)
        finally:
            await db.dispose()

    asyncio.run(open_and_upgrade())
    with sqlite3.connect(path) as upgraded:
        columns = [row[1] for row in upgraded.execute("PRAGMA table_info(views)")]
        rows = upgraded.execute("SELECT kind, id, audience FROM views").fetchall()
    assert "audience" in columns
    assert rows == [("task", "t", None)]
