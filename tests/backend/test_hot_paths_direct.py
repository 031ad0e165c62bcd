"""On SQLite files, the statements between one device's action and another device's view run
straight on ``sqlite3`` (``backend/direct.py``): a push's decision with the stream's seqs it
records, and the projector's batch, send nothing through SQLAlchemy's execution, which cost
60 to 100 microseconds a statement. What they decide and write is the same as before (the
push and projector tests check that on SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest
from sqlalchemy import event, insert, select

from backend.bff.models import BffBase, User
from backend.bff.sync.push import PushService
from backend.db import Database
from backend.nats.publisher import JetStreamPublisher
from backend.nats.streams import EVENTS_STREAM, ensure_streams
from backend.projector.models import View
from backend.projector.projector import Projector
from protocol import Event, decode_stored_event
from tests.backend.bff.test_push_write_ahead import Author, statuses
from tests.support.nats import run, running_nats

pytestmark = pytest.mark.integration


@contextmanager
def statements_through_sqlalchemy(db: Database) -> Iterator[list[str]]:
    """The statements SQLAlchemy executes on ``db`` meanwhile (its transactions' own BEGIN
    goes straight to sqlite3 already, see ``backend.db``)."""
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)


async def stored_events(nc: Any) -> list[Event]:
    js = nc.jetstream()
    info = await js.stream_info(EVENTS_STREAM)
    stored = []
    for seq in range(1, info.state.last_seq + 1):
        message = await js.get_msg(EVENTS_STREAM, seq)
        stored.append(msgspec.structs.replace(decode_stored_event(message.data), seq=seq))
    return stored


def test_an_edit_is_decided_and_projected_without_sqlalchemys_execution(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_nats(tmp_path / "nats") as server:
            nc = await nats.connect(server.url)
            await ensure_streams(nc.jsm())
            bff = Database.for_component("bff", data_dir=tmp_path, url=None)
            views = Database.for_component("projector", data_dir=tmp_path, url=None)
            await bff.create(BffBase.metadata)
            await views.migrate()
            async with bff.write() as conn:
                await conn.execute(
                    insert(User).values(
                        id="alice", username="alice", password_hash="x", created_at=0
                    )
                )
            try:
                service = PushService(bff, JetStreamPublisher(nc))
                projector = Projector(views, JetStreamPublisher(nc))
                alice = Author("alice")
                board, created = alice.device.new_board("Launch")
                task, added = alice.device.new_task(board, "Write the plan")
                await service.push(alice.principal, alice.request(created, added))
                async with views.write() as conn:
                    await projector.handle(conn, await stored_events(nc))

                edit = alice.device.event(
                    "TaskUpdated", {"fields": {"title": "Plan"}}, board=board, entity=task
                )
                with statements_through_sqlalchemy(bff) as decided:
                    results = await service.push(alice.principal, alice.request(edit))
                with statements_through_sqlalchemy(views) as projected:
                    async with views.write() as conn:
                        await projector.handle(conn, (await stored_events(nc))[-1:])
                async with views.read() as conn:
                    shown = (
                        await conn.execute(select(View.values).where(View.id == task))
                    ).scalar()
            finally:
                await nc.close()
                await bff.dispose()
                await views.dispose()
        assert statuses(results) == [("accepted", None)], results
        assert msgspec.json.decode(shown or "{}")["title"] == "Plan"
        assert decided == [], "the decision and its seqs went through SQLAlchemy"
        assert projected == [], "the projector's batch went through SQLAlchemy"

    run(scenario())
