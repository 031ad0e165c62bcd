"""Decisions are written ahead of publishing: a push whose answer was lost (the BFF died
after the stream stored it) is answered exactly on resend, and its id cannot be claimed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest
from sqlalchemy import insert, select

from backend.bff.auth.tokens import Principal
from backend.bff.models import BffBase, EventRecord, User
from backend.bff.sync.push import PushService
from backend.bff.sync.schemas import PushRequest, PushResult
from backend.db import Database
from backend.nats.publisher import JetStreamPublisher
from backend.nats.streams import EVENTS_STREAM, ensure_streams
from protocol import HybridLogicalClock, new_device_id
from tests.support.device import Device
from tests.support.nats import run, running_nats

pytestmark = pytest.mark.integration


class Author:
    """Stamps events like a device of ``username`` (no HTTP: the service is called directly)."""

    def __init__(self, username: str) -> None:
        self.principal = Principal(user_id=username, username=username)
        self.device = Device.__new__(Device)
        self.device.device_id = new_device_id()
        self.device.clock = HybridLogicalClock(self.device.device_id)

    def request(self, *events: dict[str, Any]) -> PushRequest:
        raw = [msgspec.Raw(msgspec.json.encode(e)) for e in events]
        return PushRequest(device=self.device.device_id, protocol=1, events=raw)


class DiesAfterPublishing(PushService):
    """A BFF that dies once the stream has acknowledged, before recording the seq."""

    async def _publish(self, accepted: Any, now: int, **options: Any) -> Any:
        await super()._publish(accepted, now, **options)
        raise RuntimeError("killed between the acknowledgements and the answer")


async def scenario(tmp_path: Path, body: Any) -> None:
    async with running_nats(tmp_path / "nats") as server:
        nc = await nats.connect(server.url)
        await ensure_streams(nc.jsm())
        db = Database.for_component("bff", data_dir=tmp_path, url=None)
        await db.create(BffBase.metadata)
        async with db.write() as conn:
            for name in ("alice", "bob"):
                await conn.execute(
                    insert(User).values(id=name, username=name, password_hash="x", created_at=0)
                )
        try:
            await body(nc, db)
        finally:
            await nc.close()
            await db.dispose()


async def stored_ids(nc: Any) -> list[str]:
    js = nc.jetstream()
    info = await js.stream_info(EVENTS_STREAM)
    messages = [await js.get_msg(EVENTS_STREAM, s) for s in range(1, info.state.last_seq + 1)]
    return [msgspec.json.decode(m.data)["id"] for m in messages]


def statuses(results: list[PushResult]) -> list[tuple[str, str | None]]:
    return [(r.status, r.reason) for r in results]


def test_a_stored_event_whose_answer_was_lost_is_duplicate_on_resend_even_after_removal(
    tmp_path: Path,
) -> None:
    async def body(nc: Any, db: Database) -> None:
        service = PushService(db, JetStreamPublisher(nc))
        alice, bob = Author("alice"), Author("bob")
        board, created = alice.device.new_board("Shared")
        share = alice.device.event("MemberAdded", {"username": "bob"}, board=board)
        await service.push(alice.principal, alice.request(created, share))
        _, task = bob.device.new_task(board, "bob's task")
        with pytest.raises(RuntimeError, match="killed"):
            await DiesAfterPublishing(db, JetStreamPublisher(nc)).push(
                bob.principal, bob.request(task)
            )
        remove = alice.device.event("MemberRemoved", {"username": "bob"}, board=board)
        assert statuses(await service.push(alice.principal, alice.request(remove))) == [
            ("accepted", None)
        ]
        [again] = await service.push(bob.principal, bob.request(task))  # the same bytes
        assert (again.status, again.seq) == ("duplicate", 3), "stored before bob lost access"
        assert (await stored_ids(nc)).count(task["id"]) == 1

    run(scenario(tmp_path, body))


def test_an_id_decided_for_one_user_cannot_be_claimed_by_another(tmp_path: Path) -> None:
    async def body(nc: Any, db: Database) -> None:
        service = PushService(db, JetStreamPublisher(nc))
        alice, bob = Author("alice"), Author("bob")
        board, created = alice.device.new_board("Shared")
        share = alice.device.event("MemberAdded", {"username": "bob"}, board=board)
        await service.push(alice.principal, alice.request(created, share))
        _, task = bob.device.new_task(board, "bob's task")
        with pytest.raises(RuntimeError):
            await DiesAfterPublishing(db, JetStreamPublisher(nc)).push(
                bob.principal, bob.request(task)
            )
        own, own_created = alice.device.new_board("Mine")
        forged = {**alice.device.new_task(own, "something else")[1], "id": task["id"]}
        results = await service.push(alice.principal, alice.request(own_created, forged))
        assert statuses(results) == [("accepted", None), ("rejected", "id_conflict")]
        [resent] = await service.push(bob.principal, bob.request(task))
        assert resent.status == "duplicate"

    run(scenario(tmp_path, body))


def test_a_batch_of_new_events_is_stored_whole_at_consecutive_seqs(tmp_path: Path) -> None:
    async def body(nc: Any, db: Database) -> None:
        service = PushService(db, JetStreamPublisher(nc))
        alice = Author("alice")
        board, created = alice.device.new_board("Atomic")
        tasks = [alice.device.new_task(board, f"task {n}")[1] for n in range(50)]
        results = await service.push(alice.principal, alice.request(created, *tasks))
        assert [r.status for r in results] == ["accepted"] * 51
        assert [r.seq for r in results] == list(range(1, 52))
        assert await stored_ids(nc) == [created["id"], *(t["id"] for t in tasks)]

    run(scenario(tmp_path, body))


def test_a_batch_the_stream_refuses_whole_is_stored_one_by_one(tmp_path: Path) -> None:
    """An id already on the stream that the BFF has no record of (a restored BFF database)
    makes JetStream refuse the atomic batch: the events are then published one by one, and
    the one already stored is ``duplicate`` with its first seq."""

    async def body(nc: Any, db: Database) -> None:
        service = PushService(db, JetStreamPublisher(nc))
        alice = Author("alice")
        board, created = alice.device.new_board("Refused")
        await service.push(alice.principal, alice.request(created))
        _, first = alice.device.new_task(board, "already stored")
        _, second = alice.device.new_task(board, "new")
        stamped = {**first, "actor": "alice", "received_at": 1}
        ack = await nc.jetstream().publish(
            f"outpost.events.{board}",
            msgspec.json.encode(stamped),
            headers={"Nats-Msg-Id": first["id"]},
        )
        results = await service.push(alice.principal, alice.request(first, second))
        assert [(r.status, r.seq) for r in results] == [("duplicate", ack.seq), ("accepted", 3)]
        assert (await stored_ids(nc)).count(first["id"]) == 1

    run(scenario(tmp_path, body))


class Counting(JetStreamPublisher):
    """The real publisher, counting what it is asked to publish."""

    published = 0

    async def publish_all(self, messages: Any, **options: Any) -> Any:
        self.published += len(messages)
        return await super().publish_all(messages, **options)

    async def publish_atomic(self, messages: Any, **options: Any) -> Any:
        self.published += len(messages)
        return await super().publish_atomic(messages, **options)


async def record_seqs(db: Database, ids: list[str]) -> list[int | None]:
    async with db.read() as conn:
        rows = await conn.execute(select(EventRecord.id, EventRecord.seq))
        found = {event_id: seq for event_id, seq in rows}
    return [found[i] for i in ids]


def test_seqs_written_later_answer_a_resend_meanwhile_and_reach_the_records(
    tmp_path: Path,
) -> None:
    """With ``seqs_later_s`` the answer carries the stream's seqs before they are written:
    a resend meanwhile is answered from memory (nothing published again), the timer writes
    them, and ``close`` writes what is still waiting (a shutdown)."""

    async def body(nc: Any, db: Database) -> None:
        publisher = Counting(nc)
        service = PushService(db, publisher, seqs_later_s=60)
        alice = Author("alice")
        board, created = alice.device.new_board("Later")
        first = await service.push(alice.principal, alice.request(created))
        assert statuses(first) == [("accepted", None)]
        assert await record_seqs(db, [created["id"]]) == [None], "written at once"
        [again] = await service.push(alice.principal, alice.request(created))
        assert (again.status, again.seq) == ("duplicate", first[0].seq)
        assert publisher.published == 1, "published again, though its seq was known"
        await service.close()
        assert await record_seqs(db, [created["id"]]) == [first[0].seq]

        soon = PushService(db, publisher, seqs_later_s=0.05)
        _, task = alice.device.new_task(board, "soon")
        [stored] = await soon.push(alice.principal, alice.request(task))
        deadline = asyncio.get_running_loop().time() + 10
        while await record_seqs(db, [task["id"]]) != [stored.seq]:
            assert asyncio.get_running_loop().time() < deadline, "the timer never wrote it"
            await asyncio.sleep(0.02)

    run(scenario(tmp_path, body))


def test_a_shutdown_during_the_seqs_write_finishes_it(tmp_path: Path) -> None:
    """``close`` while the later write waits for the database (another writer holds it)
    lets that write finish: the seqs it had taken are not dropped by the shutdown."""

    async def body(nc: Any, db: Database) -> None:
        service = PushService(db, Counting(nc), seqs_later_s=0.01)
        alice = Author("alice")
        _, created = alice.device.new_board("Busy")
        [stored] = await service.push(alice.principal, alice.request(created))
        async with db.write():  # the write lock: the timer's write waits behind it
            await asyncio.sleep(0.2)
            closing = asyncio.create_task(service.close())
            await asyncio.sleep(0.05)
            assert not closing.done(), "closed while the write it should finish was waiting"
        await asyncio.wait_for(closing, 10)
        assert await record_seqs(db, [created["id"]]) == [stored.seq]

    run(scenario(tmp_path, body))
