"""The storage suite: what every backend database must do, written once.

``StorageSuite`` holds the tests; each storage backend runs all of them through a subclass
that gives the ``db_url`` fixture (``test_sqlite.py``, ``test_postgresql.py``), the way
pyeventsourcing's ``tests/persistence.py`` is reused by each of its recorders. A new backend
is a new subclass; a new storage behaviour is a new method here, and every backend gets it.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Boolean,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from backend import direct
from backend.config import Settings
from backend.db import Database, insert_ignore, upsert
from backend.lake import tools
from backend.migrations import HISTORIES, MigrationError, config_for, metadata_of
from protocol import new_id
from tests.backend.lake.harness import HOUR_MS, T0, Harness, raw_file_lines, record, run

EXAMPLE_ROWS: dict[str, tuple[str, dict[str, Any]]] = {
    "bff": (
        "users",
        {
            "id": "u1",
            "username": "alice",
            "password_hash": "h",
            "created_at": 1,
            "password_reset": False,
        },
    ),
    "limits": ("rate_buckets", {"key": "127.0.0.1", "tat_us": 5}),
    "projector": ("info", {"key": "generation", "value": "g1"}),
    "workload": ("boards", {"id": "b1", "state": "{}", "wip_limit": 3}),
    "lake": ("epochs", {"epoch": 1, "started_at": 5, "stream_created": None}),
    "gateway": (
        "sources",
        {"board": "b1", "source": "github", "owner": "alice", "secret": "s", "created_at": 1},
    ),
    "orchestrator": ("boards", {"id": "b1", "owner": "alice"}),
}
"""One row per history, in a table its baseline has, to see that migrating keeps rows."""

HISTORY_NAMES = sorted(HISTORIES)

direct_metadata = MetaData()
notes = Table(
    "kept_notes",
    direct_metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("text", String(20)),
    Column("done", Boolean),
)
SOME_NOTES = select(notes.c.id).where(
    notes.c.id.in_(bindparam("ids", expanding=True)),
    notes.c.text.in_(bindparam("texts", expanding=True)),
)
RENAME_NOTE = update(notes).where(notes.c.id == bindparam("key")).values(text="B")
FIXED_NOTES = select(notes.c.id).where(notes.c.text.in_(("b", "c"))).order_by(notes.c.id)
OTHER_NOTES = (
    select(notes.c.id)
    .where(notes.c.id.not_in(bindparam("ids", expanding=True)))
    .order_by(notes.c.id)
)


def note(id_: int, text: str, *, done: bool = False) -> dict[str, Any]:
    return {"id": id_, "text": text, "done": done}


def revisions(history: str) -> list[str]:
    """The history's revisions, oldest first."""
    script = ScriptDirectory.from_config(config_for(history))
    return [step.revision for step in script.walk_revisions()][::-1]


def current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def snapshot(conn: Connection, schema: str | None) -> dict[str, Any]:
    """The tables as the database reports them: columns (type, collation, null, default),
    keys, unique constraints, indexes and foreign keys; not the version table."""
    found = inspect(conn)
    tables: dict[str, Any] = {}
    for table in sorted(set(found.get_table_names(schema=schema)) - {"alembic_version"}):
        tables[table] = {
            "columns": [
                (c["name"], c["type"].compile(conn.dialect), c["nullable"], c.get("default"))
                for c in found.get_columns(table, schema=schema)
            ],
            "primary key": found.get_pk_constraint(table, schema=schema)["constrained_columns"],
            "unique": sorted(
                (u["name"] or "", tuple(u["column_names"]))
                for u in found.get_unique_constraints(table, schema=schema)
            ),
            "indexes": sorted(
                (i["name"] or "", tuple(str(c) for c in i["column_names"]), i["unique"])
                for i in found.get_indexes(table, schema=schema)
            ),
            "foreign keys": sorted(
                (tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
                for f in found.get_foreign_keys(table, schema=schema)
            ),
        }
    return tables


class StorageSuite:
    """Storage behaviour every backend database shares. Not collected itself: the
    ``Test*`` subclasses run it, each with its own ``db_url``."""

    @pytest.fixture
    def db_url(self) -> str | None:
        raise NotImplementedError("a storage backend's subclass gives its database URL")

    @pytest.fixture
    def open_db(self, db_url: str | None, tmp_path: Path) -> Any:
        def open_db(component: str) -> Database:
            return Database.for_component(component, data_dir=tmp_path, url=db_url)

        return open_db

    # Migrations (backend/migrations): one history per component.

    @pytest.mark.parametrize("history", HISTORY_NAMES)
    def test_a_fresh_database_migrates_to_the_head_of_its_history(
        self, history: str, open_db: Any
    ) -> None:
        async def body() -> None:
            db = open_db(history)
            try:
                assert await db.migrate() == revisions(history)
                assert await db.migrate() == [], "recorded: a second start applies nothing"
                async with db.read() as conn:
                    assert await conn.run_sync(current_revision) == revisions(history)[-1]
                    tables = await conn.run_sync(
                        lambda sync: inspect(sync).get_table_names(schema=db.schema)
                    )
                assert "alembic_version" in tables, "the version table is in the component's own"
            finally:
                await db.dispose()

        asyncio.run(body())

    def test_two_processes_starting_together_migrate_once(self, open_db: Any) -> None:
        async def body() -> list[list[str]]:
            first, second = open_db("projector"), open_db("projector")
            try:
                return list(await asyncio.gather(first.migrate(), second.migrate()))
            finally:
                await first.dispose()
                await second.dispose()

        applied = asyncio.run(body())
        assert sorted(applied, key=len) == [[], revisions("projector")], applied

    @pytest.mark.parametrize("history", HISTORY_NAMES)
    def test_the_migrated_database_matches_its_models(self, history: str, open_db: Any) -> None:
        async def body() -> list[Any]:
            db = open_db(history)
            try:
                await db.migrate()
                async with db.read() as conn:
                    return await conn.run_sync(
                        lambda sync: compare_metadata(
                            MigrationContext.configure(sync), metadata_of(history)
                        )
                    )
            finally:
                await db.dispose()

        assert asyncio.run(body()) == [], "the models changed: add a revision (see the README)"

    @pytest.mark.parametrize("history", HISTORY_NAMES)
    def test_the_history_makes_exactly_the_tables_create_all_makes(
        self, history: str, open_db: Any
    ) -> None:
        async def made(db: Database, migrate: bool) -> dict[str, Any]:
            try:
                if migrate:
                    await db.migrate()
                else:
                    await db.create(metadata_of(history))
                async with db.read() as conn:
                    return await conn.run_sync(snapshot, db.schema)
            finally:
                await db.dispose()

        async def body() -> None:
            by_create_all = await made(open_db(f"{history}_made"), migrate=False)
            by_migrations = await made(open_db(history), migrate=True)
            assert by_migrations == by_create_all

        asyncio.run(body())

    @pytest.mark.parametrize("history", HISTORY_NAMES)
    def test_a_database_made_by_create_all_is_adopted_in_place_with_its_rows(
        self, history: str, open_db: Any
    ) -> None:
        table_name, row = EXAMPLE_ROWS[history]
        table = metadata_of(history).tables[table_name]

        async def body() -> None:
            db = open_db(history)
            try:
                await db.create(metadata_of(history))  # how Outpost made it before migrations
                async with db.write() as conn:
                    await conn.execute(table.insert().values(row))
                assert await db.migrate() == revisions(history)
                async with db.read() as conn:
                    kept = [dict(r._mapping) for r in await conn.execute(select(table))]
                    assert await conn.run_sync(current_revision) == revisions(history)[-1]
                assert kept == [row]
            finally:
                await db.dispose()

        asyncio.run(body())

    def test_a_shared_read_of_live_changes_answers_each_user_as_their_own_pull(
        self, open_db: Any
    ) -> None:
        """The views' info (generation, last version, watermark) is one query of both tables,
        and a shared read filters one snapshot per user: the same on every database."""
        from tests.backend.bff.test_live_shared import (
            check_shared_and_own_pages,
            shared_and_own_pages,
        )

        check_shared_and_own_pages(*asyncio.run(shared_and_own_pages(open_db("projector"))))

    def test_an_older_views_database_gets_the_audience_column_and_keeps_its_rows(
        self, open_db: Any
    ) -> None:
        async def body() -> tuple[list[str], list[Any]]:
            db = open_db("projector")
            try:
                async with db.engine.begin() as conn:  # views as the previous version made it
                    if db.schema is not None:
                        await conn.execute(text(f'CREATE SCHEMA "{db.schema}"'))
                    await conn.execute(
                        text(
                            "CREATE TABLE views (kind VARCHAR(16), id VARCHAR(120), "
                            "board VARCHAR(80), version BIGINT UNIQUE, state TEXT, "
                            '"values" TEXT, meta TEXT, PRIMARY KEY (kind, id))'
                        )
                    )
                    await conn.execute(
                        text("INSERT INTO views VALUES ('task', 't', 'b', 1, '{}', '{}', '{}')")
                    )
                await db.migrate()
                await db.migrate()  # idempotent
                async with db.read() as conn:
                    columns = await conn.run_sync(
                        lambda sync: [c["name"] for c in inspect(sync).get_columns("views")]
                    )
                    rows = list(await conn.execute(text("SELECT kind, id, audience FROM views")))
                return columns, rows
            finally:
                await db.dispose()

        columns, rows = asyncio.run(body())
        assert "audience" in columns
        assert [tuple(r) for r in rows] == [("task", "t", None)]

    @pytest.mark.parametrize("history", HISTORY_NAMES)
    def test_a_database_from_a_newer_outpost_is_refused_naming_its_revision(
        self, history: str, open_db: Any
    ) -> None:
        newer = f"{history}_9999_newer"

        async def body() -> None:
            db = open_db(history)
            try:
                await db.migrate()
                async with db.write() as conn:
                    await conn.execute(
                        text("UPDATE alembic_version SET version_num = :v"), {"v": newer}
                    )
                with pytest.raises(MigrationError, match=f"revision '{newer}'.*newer Outpost"):
                    await db.migrate()
                async with db.read() as conn:
                    assert await conn.run_sync(current_revision) == newer, "left as it was"
            finally:
                await db.dispose()

        asyncio.run(body())

    # Kept statements (backend/direct.py): straight on sqlite3 in place, else SQLAlchemy.

    def test_kept_statements_give_the_same_rows_on_every_database(self, open_db: Any) -> None:
        async def body() -> None:
            db = open_db("bff")
            try:
                await db.create(direct_metadata)
                async with db.write() as conn:
                    await direct.execute(conn, insert(notes), [note(1, "a"), note(2, "b")])
                    fresh = await insert_ignore(
                        conn, notes, [note(2, "again"), note(3, "c")], ["id"], returning=notes.c.id
                    )
                    assert fresh == [3], "the row already there is left out, and not changed"
                    await upsert(conn, notes, [note(1, "A", done=True)], ["id"])
                    await direct.execute(conn, RENAME_NOTE, [{"key": 2}])
                async with db.read() as conn:
                    rows = await direct.fetch(conn, select(notes).order_by(notes.c.id), {})
                    picked = await direct.fetch(conn, SOME_NOTES, {"ids": [3, 1], "texts": ["A"]})
                    none = await direct.fetch(conn, SOME_NOTES, {"ids": [], "texts": ["A"]})
                    fixed = await direct.fetch(conn, FIXED_NOTES, {})
                    others = await direct.fetch(conn, OTHER_NOTES, {"ids": []})
                assert rows == [(1, "A", True), (2, "B", False), (3, "c", False)]
                assert [type(done) for _, _, done in rows] == [bool] * 3, "a Boolean reads back"
                assert picked == [(1,)], "two lists, each expanded in its place"
                assert none == [], "an empty list: IN matches nothing"
                assert fixed == [(3,)], "values held in the statement itself"
                assert others == [(1,), (2,), (3,)], "an empty list: NOT IN matches everything"
            finally:
                await db.dispose()

        asyncio.run(body())

    def test_a_kept_statement_that_breaks_a_key_raises_and_writes_nothing(
        self, open_db: Any
    ) -> None:
        async def body() -> list[Any]:
            db = open_db("bff")
            try:
                await db.create(direct_metadata)
                with pytest.raises(IntegrityError):
                    async with db.write() as conn:
                        await direct.execute(conn, insert(notes), [note(1, "a")])
                        await direct.execute(conn, insert(notes), [note(1, "twice")])
                async with db.read() as conn:
                    return await direct.fetch(conn, select(notes), {})
            finally:
                await db.dispose()

        assert asyncio.run(body()) == [], "the transaction is rolled back whole"

    # Leases: one process per component.

    def test_a_lease_is_held_by_one_holder_until_released(self, open_db: Any) -> None:
        async def body() -> None:
            first = open_db("lake")
            second = open_db("lake")
            try:
                held = await first.try_lease("lake")
                assert held is not None
                assert await second.try_lease("lake") is None, "one holder at a time"
                other = await second.try_lease("workload")
                assert other is not None, "leases are per component"
                await held.release()
                taken = await second.try_lease("lake")
                assert taken is not None, "released: the next one takes it"
                await taken.release()
                await other.release()
            finally:
                await first.dispose()
                await second.dispose()

        asyncio.run(body())

    # The lake's index (its files are the lake's own, on disk whatever the database).

    def test_the_lake_keeps_its_index_through_a_crash_and_a_new_epoch(
        self, db_url: str | None, tmp_path: Path
    ) -> None:
        harness = Harness(tmp_path, db_url)
        try:
            board = new_id()
            first = [record(seq, board, T0 + seq) for seq in range(1, 4)]
            harness.batch(first)
            harness.batch([record(4, board, T0 + 4)], crash=True)
            harness.restart()
            harness.start_over()
            harness.batch([first[0], record(5, board, T0 + HOUR_MS)])  # seen already; a new one
            rows = harness.index()
            assert [(r.epoch, r.seq) for r in rows] == [(1, 1), (1, 2), (1, 3), (2, 5)]
            assert [line.seq for line in raw_file_lines(tmp_path / "lake")] == [1, 2, 3, 5]
            settings = Settings(data_dir=tmp_path, db_url=db_url)
            out = io.BytesIO()
            assert run(tools.export(settings, out, board=board)) == 4
            assert run(tools.status(settings)).epochs[-1].epoch == 2
        finally:
            harness.close()
