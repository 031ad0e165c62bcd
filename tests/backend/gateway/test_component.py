"""The gateway component alone, on a real SQLite database, the in-memory publisher and
httpx's MockTransport (the gateway's one network seam): the queue, the retry schedule, per
endpoint order, the fault at the end of the schedule and the resubmission."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import httpx
import msgspec
from sqlalchemy import insert, select, update

from backend.db import Database
from backend.gateway.allow import AllowList
from backend.gateway.component import Gateway
from backend.gateway.models import Attempt, Delivery, Endpoint, started_again
from backend.nats.memory import InMemoryPublisher
from backend.nats.streams import FAULTS_STREAM
from protocol import Event, HybridLogicalClock, Writer, new_device_id, new_id, validate_event

BOARD = new_id()


def task_event(title: str, seq: int) -> Event:
    device = new_device_id()
    raw = {
        "id": new_id(),
        "type": "TaskCreated",
        "schema": 1,
        "board": BOARD,
        "entity": new_id(),
        "hlc": HybridLogicalClock(device).now(),
        "device": device,
        "payload": {"title": title, "position": "a0"},
    }
    event = validate_event(raw, Writer.DEVICE)
    return msgspec.structs.replace(event, actor="alice", seq=seq, received_at=10**13 - 1)


class Harness:
    def __init__(self, tmp_path: Path, statuses: list[int], url: str) -> None:
        self.db = Database.for_component("gateway", data_dir=tmp_path, url=None)
        self.publisher = InMemoryPublisher()
        self.statuses = statuses
        self.sent: list[httpx.Request] = []
        self.url = url
        self.gateway = Gateway(
            self.db,
            self.publisher,
            allow=AllowList.parse("127.0.0.1"),
            retries=(0, 0),
            transport=httpx.MockTransport(self._answer),
        )

    def _answer(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        return httpx.Response(self.statuses.pop(0) if self.statuses else 200)

    async def start(self) -> None:
        await self.db.migrate()
        async with self.db.write() as conn:
            await conn.execute(
                insert(Endpoint).values(
                    id="e1",
                    board=BOARD,
                    owner="alice",
                    url=self.url,
                    secret="whsec_" + "A" * 44,
                    created_at=0,
                    paused_until=0,
                )
            )

    async def queue(self, *events: Event) -> None:
        async with self.db.write() as conn:
            await self.gateway.handle(conn, list(events))

    async def rounds(self, count: int) -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(self._answer)) as client:
            for _ in range(count):
                await self.gateway.send_due(client)

    async def deliveries(self) -> dict[str, Delivery]:
        async with self.db.read() as conn:
            rows = await conn.execute(select(Delivery))
            return {r.event_id: Delivery(**r._asdict()) for r in rows}

    async def tries(self) -> int:
        async with self.db.read() as conn:
            return len(list(await conn.execute(select(Attempt.id))))


def test_retries_in_order_then_faults_and_a_resubmission_queues_it_again(tmp_path: Path) -> None:
    async def body() -> None:
        h = Harness(tmp_path, [500, 502, 503], "http://127.0.0.1:9/hook")
        await h.start()
        first, second = task_event("first", 1), task_event("second", 2)
        await h.queue(first, second)
        await h.rounds(1)  # the first fails: the second waits behind it
        assert [json.loads(r.content)["data"]["id"] for r in h.sent] == [first.id]
        await h.rounds(2)  # two retries fail: the schedule (0, 0) is exhausted
        found = await h.deliveries()
        assert (found[first.id].status, found[first.id].attempts) == ("failed", 3)
        assert found[second.id].status == "delivered"  # then the endpoint went on
        [fault] = h.publisher.stored(FAULTS_STREAM)
        record = json.loads(fault.data)
        assert (record["component"], record["seq"], record["event_id"]) == ("gateway", 1, first.id)
        assert json.loads(base64.b64decode(record["data"]))["id"] == first.id
        # `outpost faults resubmit` hands the event back: its failed delivery starts again.
        await h.queue(first)
        await h.rounds(1)
        found = await h.deliveries()
        assert (found[first.id].status, found[first.id].attempts) == ("delivered", 1)
        ids = {
            r.headers["webhook-id"]
            for r in h.sent
            if json.loads(r.content)["data"]["id"] == first.id
        }
        assert ids == {found[first.id].id}  # the same webhook-id on every try
        assert await h.tries() == 5
        await h.queue(second)  # a redelivered event adds nothing and resends nothing
        await h.rounds(1)
        assert len(h.sent) == 5
        await h.db.dispose()

    asyncio.run(body())


def test_a_target_the_allow_list_refuses_is_never_contacted(tmp_path: Path) -> None:
    async def body() -> None:
        h = Harness(tmp_path, [], "http://10.0.0.1/hook")
        await h.start()
        event = task_event("x", 1)
        await h.queue(event)
        await h.rounds(3)
        found = (await h.deliveries())[event.id]
        assert (found.status, found.attempts) == ("failed", 3)
        assert "not on the allow-list" in (found.last_error or "")
        assert h.sent == []
        await h.db.dispose()

    asyncio.run(body())


def test_events_of_boards_without_endpoints_are_not_queued(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        h = Harness(tmp_path, [], "http://127.0.0.1:9/hook")
        await h.start()
        elsewhere = msgspec.structs.replace(task_event("x", 1), board=new_id())
        await h.queue(elsewhere)
        assert await h.deliveries() == {}
        await h.db.dispose()

    asyncio.run(body())


def test_a_stop_cuts_a_hanging_try_short_and_releases_the_endpoint(tmp_path: Path) -> None:
    async def body() -> None:
        h = Harness(tmp_path, [], "http://127.0.0.1:9/hook")
        await h.start()
        started = asyncio.Event()

        async def hang(request: httpx.Request) -> httpx.Response:
            started.set()
            await asyncio.Event().wait()  # a receiver that never answers
            raise AssertionError("unreachable")

        gateway = Gateway(
            h.db,
            h.publisher,
            allow=AllowList.parse("127.0.0.1"),
            retries=(0,),
            timeout_s=3600,
            transport=httpx.MockTransport(hang),
        )
        event = task_event("x", 1)
        async with h.db.write() as conn:
            await gateway.handle(conn, [event])
        stop = asyncio.Event()
        loop = asyncio.create_task(gateway.run_beside(stop))
        await started.wait()
        stop.set()
        await asyncio.wait_for(loop, 60)  # returns although the receiver never answers
        found = (await h.deliveries())[event.id]
        assert (found.status, found.attempts) == ("pending", 0)  # tried again next time
        async with h.db.read() as conn:
            paused = (await conn.execute(select(Endpoint.paused_until))).scalar()
        assert paused == 0  # released, not claimed for the lease
        await h.db.dispose()

    asyncio.run(body())


def test_a_redelivery_asked_during_the_try_sends_it_again(tmp_path: Path) -> None:
    """The owner asks to redeliver while the first try is still out (the receiver has it,
    the gateway waits for the answer): the answer of that try does not mark the delivery
    delivered over the redelivery's fresh schedule; it is sent a second time."""

    async def body() -> None:
        h = Harness(tmp_path, [], "http://127.0.0.1:9/hook")
        await h.start()
        received, answer = asyncio.Event(), asyncio.Event()

        async def slow(request: httpx.Request) -> httpx.Response:
            h.sent.append(request)
            received.set()
            await answer.wait()
            return httpx.Response(200)

        event = task_event("again", 1)
        await h.queue(event)
        async with httpx.AsyncClient(transport=httpx.MockTransport(slow)) as client:
            first = asyncio.create_task(h.gateway.send_due(client))
            await received.wait()
            delivery = (await h.deliveries())[event.id]
            async with h.db.write() as conn:  # what GatewayService.redeliver writes
                await conn.execute(
                    update(Delivery)
                    .where(Delivery.id == delivery.id)
                    .values(started_again(delivery.next_at))
                )
            answer.set()
            await first
            assert (await h.deliveries())[event.id].status == "pending"
            await h.gateway.send_due(client)
        assert len(h.sent) == 2
        again = (await h.deliveries())[event.id]
        assert (again.status, again.attempts) == ("delivered", 1)
        assert await h.tries() == 2  # both tries are in the log
        await h.db.dispose()

    asyncio.run(body())
