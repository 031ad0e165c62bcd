"""The backend writer (``backend/writer.py``): events the backend writes on a user's behalf
go through a push's decisions, against a real nats-server and a real SQLite BFF database.
Accepted once; a replay is ``duplicate``; a user without the authority is ``forbidden``;
the same id with other content is ``id_conflict``; only version 5 ids; no device claimed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
from sqlalchemy import select

from backend.bff.models import Device as DeviceRow
from backend.bff.sync.push import PushService
from backend.db import Database
from backend.nats.publisher import JetStreamPublisher
from backend.writer import BackendWriter
from protocol import Event, derived_id, format_hlc, new_id
from protocol.catalog import MemberAdded, TaskCreated, TaskFields, TaskUpdated
from tests.backend.bff.test_push_write_ahead import Author, scenario, stored_ids
from tests.support.nats import run

pytestmark = pytest.mark.integration


def backend_event(
    board: str, payload: Any, *, cause: str, entity: str | None = None, type_: str = ""
) -> Event:
    return Event(
        id=derived_id("writer-test", cause),
        type=type_ or type(payload).__name__,
        schema=1,
        board=board,
        entity=entity or new_id(),
        hlc=format_hlc(1_764_136_800_000, 0, "outpost-orchestrator"),
        device="outpost-orchestrator",
        payload=payload,
    )


async def board_of_alice(nc: Any, db: Database) -> tuple[Author, str]:
    alice = Author("alice")
    board, created = alice.device.new_board("Writer")
    [result] = await PushService(db, JetStreamPublisher(nc)).push(
        alice.principal, alice.request(created)
    )
    assert result.status == "accepted"
    return alice, board


def test_an_event_is_accepted_once_and_a_replay_is_duplicate(tmp_path: Path) -> None:
    async def body(nc: Any, db: Database) -> None:
        alice, board = await board_of_alice(nc, db)
        writer = BackendWriter(db, JetStreamPublisher(nc))
        task = backend_event(board, TaskCreated(title="Next", position="a1"), cause="c1")
        [first] = await writer.write([task], on_behalf_of="alice")
        assert (first.status, first.seq) == ("accepted", 2)
        [again] = await writer.write([task], on_behalf_of="alice")
        assert (again.status, again.seq) == ("duplicate", 2)
        assert (await stored_ids(nc))[1:] == [task.id], "stored once"
        message = await nc.jetstream().get_msg("OUTPOST_EVENTS", 2)
        assert msgspec.json.decode(message.data)["actor"] == "alice", "the named user's event"
        async with db.read() as conn:
            devices = set((await conn.execute(select(DeviceRow.id))).scalars())
        assert devices == {alice.device.device_id}, "the backend's writer claims no device"

    run(scenario(tmp_path, body))


def test_a_user_without_authority_on_the_board_is_forbidden(tmp_path: Path) -> None:
    async def body(nc: Any, db: Database) -> None:
        _, board = await board_of_alice(nc, db)
        writer = BackendWriter(db, JetStreamPublisher(nc))
        task = backend_event(board, TaskCreated(title="Hers", position="a1"), cause="c2")
        [result] = await writer.write([task], on_behalf_of="bob")
        assert (result.status, result.reason) == ("rejected", "forbidden")
        assert "not shared with you" in (result.detail or "")
        assert len(await stored_ids(nc)) == 1, "a rejected event never reaches the stream"

    run(scenario(tmp_path, body))


def test_owner_only_events_need_the_owner(tmp_path: Path) -> None:
    async def body(nc: Any, db: Database) -> None:
        _, board = await board_of_alice(nc, db)
        writer = BackendWriter(db, JetStreamPublisher(nc))
        invite = backend_event(board, MemberAdded(username="bob"), cause="c3", entity=board)
        [as_owner] = await writer.write([invite], on_behalf_of="alice")
        assert as_owner.status == "accepted"
        other = backend_event(board, MemberAdded(username="alice"), cause="c4", entity=board)
        [as_member] = await writer.write([other], on_behalf_of="bob")
        assert (as_member.status, as_member.reason) == ("rejected", "forbidden")
        assert "only the board's owner" in (as_member.detail or "")

    run(scenario(tmp_path, body))


def test_the_same_id_with_other_content_is_an_id_conflict(tmp_path: Path) -> None:
    async def body(nc: Any, db: Database) -> None:
        _, board = await board_of_alice(nc, db)
        writer = BackendWriter(db, JetStreamPublisher(nc))
        task = backend_event(board, TaskCreated(title="One", position="a1"), cause="c5")
        [first] = await writer.write([task], on_behalf_of="alice")
        assert first.status == "accepted"
        changed = msgspec.structs.replace(task, payload=TaskCreated(title="Two", position="a1"))
        [second] = await writer.write([changed], on_behalf_of="alice")
        assert (second.status, second.reason) == ("rejected", "id_conflict")
        [other_actor] = await writer.write([task], on_behalf_of="bob")
        assert (other_actor.status, other_actor.reason) == ("rejected", "id_conflict")

    run(scenario(tmp_path, body))


def test_only_version_5_ids_and_valid_events_are_written(tmp_path: Path) -> None:
    async def body(nc: Any, db: Database) -> None:
        _, board = await board_of_alice(nc, db)
        writer = BackendWriter(db, JetStreamPublisher(nc))
        task = backend_event(board, TaskCreated(title="v4", position="a1"), cause="c6")
        device_made = msgspec.structs.replace(task, id=new_id())
        empty = backend_event(
            board, TaskUpdated(fields=TaskFields(title="x")), cause="c7", type_="TaskCreated"
        )
        results = await writer.write([device_made, empty], on_behalf_of="alice")
        assert [(r.status, r.reason) for r in results] == [
            ("rejected", "invalid"),
            ("rejected", "invalid"),
        ]
        assert "version 5" in (results[0].detail or "")
        assert len(await stored_ids(nc)) == 1

    run(scenario(tmp_path, body))


def test_a_device_may_not_send_the_orchestrators_reminder(tmp_path: Path) -> None:
    """ReminderDue is backend-only: from a device, forbidden, and nothing is stored."""

    async def body(nc: Any, db: Database) -> None:
        alice, board = await board_of_alice(nc, db)
        task, created = alice.device.new_task(board, "Water the plants")
        reminder = alice.device.event(
            "ReminderDue",
            {"assignee": "alice", "due": "2026-01-02", "cause": created["id"], "message": "m"},
            board=board,
            entity=task,
        )
        service = PushService(db, JetStreamPublisher(nc))
        results = await service.push(alice.principal, alice.request(created, reminder))
        assert [(r.status, r.reason) for r in results] == [
            ("accepted", None),
            ("rejected", "forbidden"),
        ]
        assert "backend only" in (results[1].detail or "")
        assert len(await stored_ids(nc)) == 2

    run(scenario(tmp_path, body))
