"""Decisions are written ahead of publishing: a push whose answer was lost (the BFF died
after the stream stored it) is answered exactly on resend, and its id cannot be claimed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest
from sqlalchemy import insert

from backend.bff.auth.tokens import Principal
from backend.bff.models import BffBase, User
from backend.bff.sync.push import PushService
from backend.bff.sync.schemas import PushRequest, PushResult
from backend.db import Database
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

    async def _publish(self, accepted: Any, now: int) -> Any:
        await super()._publish(accepted, now)
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
        service = PushService(db, nc.jetstream())
        alice, bob = Author("alice"), Author("bob")
        board, created = alice.device.new_board("Shared")
        share = alice.device.event("MemberAdded", {"username": "bob"}, board=board)
        await service.push(alice.principal, alice.request(created, share))
        _, task = bob.device.new_task(board, "bob's task")
        with pytest.raises(RuntimeError, match="killed"):
            await DiesAfterPublishing(db, nc.jetstream()).push(bob.principal, bob.request(task))
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
        service = PushService(db, nc.jetstream())
        alice, bob = Author("alice"), Author("bob")
        board, created = alice.device.new_board("Shared")
        share = alice.device.event("MemberAdded", {"username": "bob"}, board=board)
        await service.push(alice.principal, alice.request(created, share))
        _, task = bob.device.new_task(board, "bob's task")
        with pytest.raises(RuntimeError):
            await DiesAfterPublishing(db, nc.jetstream()).push(bob.principal, bob.request(task))
        own, own_created = alice.device.new_board("Mine")
        forged = {**alice.device.new_task(own, "something else")[1], "id": task["id"]}
        results = await service.push(alice.principal, alice.request(own_created, forged))
        assert statuses(results) == [("accepted", None), ("rejected", "id_conflict")]
        [resent] = await service.push(bob.principal, bob.request(task))
        assert resent.status == "duplicate"

    run(scenario(tmp_path, body))
