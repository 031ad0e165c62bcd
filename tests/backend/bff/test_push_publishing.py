"""What a push hands the event publisher, watched through the in-memory twin (no NATS):
each accepted event once, under its id, and nothing of a rejected one. The same paths
against a real nats-server are in test_push_write_ahead.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
from sqlalchemy import insert

from backend.bff.models import BffBase, User
from backend.bff.sync.push import PushService
from backend.consumers import batches
from backend.db import Database
from backend.nats.memory import InMemoryPublisher
from backend.nats.publisher import Outgoing
from backend.nats.streams import EVENTS_STREAM, event_subject
from protocol import new_id
from tests.backend.bff.test_push_write_ahead import Author
from tests.support.nats import run


def scenario(
    tmp_path: Path, body: Callable[[PushService, InMemoryPublisher], Awaitable[None]]
) -> None:
    async def main() -> None:
        db = Database.for_component("bff", data_dir=tmp_path, url=None)
        await db.create(BffBase.metadata)
        async with db.write() as conn:
            await conn.execute(
                insert(User).values(id="alice", username="alice", password_hash="x", created_at=0)
            )
        twin = InMemoryPublisher()
        try:
            await body(PushService(db, twin), twin)
        finally:
            await db.dispose()

    run(main())


def test_accepted_events_are_stored_once_each_under_their_id(tmp_path: Path) -> None:
    async def body(service: PushService, twin: InMemoryPublisher) -> None:
        alice = Author("alice")
        board, created = alice.device.new_board("Twin")
        _, task = alice.device.new_task(board, "one")
        results = await service.push(alice.principal, alice.request(created, task))
        assert [(r.status, r.seq) for r in results] == [("accepted", 1), ("accepted", 2)]
        stored = twin.stored(EVENTS_STREAM)
        assert [m.headers["Nats-Msg-Id"] for m in stored] == [created["id"], task["id"]]
        assert {m.subject for m in stored} == {event_subject(board)}
        assert msgspec.json.decode(stored[1].data)["actor"] == "alice", "stamped by the BFF"
        [again] = await service.push(alice.principal, alice.request(task))
        assert (again.status, again.seq) == ("duplicate", 2)
        assert len(twin.stored(EVENTS_STREAM)) == 2

    scenario(tmp_path, body)


def test_a_rejected_event_never_reaches_the_publisher(tmp_path: Path) -> None:
    async def body(service: PushService, twin: InMemoryPublisher) -> None:
        alice = Author("alice")
        _, task = alice.device.new_task(new_id(), "on a board nobody created")
        [result] = await service.push(alice.principal, alice.request(task))
        assert (result.status, result.reason) == ("rejected", "forbidden")
        assert twin.stored(EVENTS_STREAM) == []

    scenario(tmp_path, body)


def test_a_batch_the_stream_refuses_whole_is_stored_one_by_one(tmp_path: Path) -> None:
    """An id on the stream that the BFF has no record of refuses the atomic batch: each
    event is then published alone, and the one stored already is a duplicate."""

    async def body(service: PushService, twin: InMemoryPublisher) -> None:
        alice = Author("alice")
        board, created = alice.device.new_board("Refused")
        await service.push(alice.principal, alice.request(created))
        _, first = alice.device.new_task(board, "already stored")
        _, second = alice.device.new_task(board, "new")
        stamped = msgspec.json.encode({**first, "actor": "alice", "received_at": 1})
        ack = await twin.publish(Outgoing(event_subject(board), stamped, first["id"]))
        results = await service.push(alice.principal, alice.request(first, second))
        assert [(r.status, r.seq) for r in results] == [("duplicate", ack.seq), ("accepted", 3)]

    scenario(tmp_path, body)


def test_what_the_push_hands_its_projector_is_what_decoding_the_stream_gives(
    tmp_path: Path,
) -> None:
    """The push keeps each stored event, decoded, for the projector beside it
    (``keep_decoded``): a projector that took it instead of decoding the stored bytes must
    see exactly the event a rebuild from the stream would see, for every kind of event."""

    async def body(service: PushService, twin: InMemoryPublisher) -> None:
        alice = Author("alice")
        device = alice.device
        board, created = device.new_board("Kept", wip_limit=3)
        task, plain = device.new_task(board, "plain")
        _, full = device.new_task(
            board,
            "full",
            notes="n\u00e9",
            status="doing",
            priority=2,
            due="2026-12-24",
            assignee="alice",
            labels=["red"],
            position="a1",
        )
        events = [
            created,
            plain,
            full,
            device.event(
                "BoardUpdated", {"fields": {"name": "Kept 2", "wip_limit": None}}, board=board
            ),
            device.event(
                "TaskUpdated",
                {"fields": {"title": "t", "due": None, "priority": 0}},
                board=board,
                entity=task,
            ),
            device.event("TaskLabelAdded", {"label": "blue"}, board=board, entity=task),
            device.event(
                "CommentAdded", {"task": task, "body": "hi"}, board=board, entity=new_id()
            ),
            device.event("TaskDeleted", {}, board=board, entity=task),
            device.event("TaskRestored", {}, board=board, entity=task),
        ]
        results = await service.push(alice.principal, alice.request(*events))
        assert [r.status for r in results] == ["accepted"] * len(events)
        stored = twin.stored(EVENTS_STREAM)
        assert len(stored) == len(events)
        for message in stored:
            # kept by the push (nothing here decodes the stream), then read as a projector would
            assert message.data in batches._decoded._entries
            kept = batches._decoded.read(message.seq, message.data)
            cold = batches._decode_one(message.data)
            assert not isinstance(kept, str) and not isinstance(cold, str)
            assert kept == msgspec.structs.replace(cold, seq=message.seq)
            assert kept.seq == message.seq
            assert kept.actor == "alice" and kept.received_at is not None

    scenario(tmp_path, body)


def test_a_bff_with_no_consumer_beside_it_keeps_nothing(tmp_path: Path) -> None:
    """The cluster's BFFs run no consumer: what they wrote would only fill their memory."""

    async def body(service: PushService, twin: InMemoryPublisher) -> None:
        quiet = PushService(service._db, twin, hand_over=False)
        alice = Author("alice")
        _, created = alice.device.new_board("Not kept")
        [result] = await quiet.push(alice.principal, alice.request(created))
        assert result.status == "accepted"
        [message] = twin.stored(EVENTS_STREAM)
        assert message.data not in batches._decoded._entries

    scenario(tmp_path, body)
