"""The circuit breaker of the consumer runner, against a real nats-server.

A small real component with its own SQLite database records the events it applies; it
fails on command, so each kind of failure can be watched: a transient one is retried
without a fault, one past the retry budget faults only that message, an outage opens the
breaker and faults nothing, and a resubmission reaches only the component it is meant for.
A component a pull reads sends its change notices on NATS, and to a hub beside it in place.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest
from nats.aio.client import Client
from sqlalchemy import BigInteger, Column, MetaData, String, Table, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.consumers.component import Outcome, positions_table
from backend.consumers.runner import ConsumerRunner
from backend.db import Database
from backend.faults import stream
from backend.faults.events import HEADER_ORIGINAL_SEQ, HEADER_ORIGINAL_SUBJECT
from backend.nats import EmbeddedNats
from backend.nats.streams import (
    CHANGES_SUBJECT,
    EVENTS_STREAM,
    FAULTS_STREAM,
    ensure_streams,
    event_subject,
    resubmit_subject,
)
from protocol import Event, HybridLogicalClock, new_device_id, new_id
from tests.support.nats import connected, run, running_nats, wait_until

pytestmark = pytest.mark.integration

BOARD = new_id()
SENTINEL_SEQ = 1_000_000


class Recorder:
    """A component that records (seq, event id) of what it applies, and fails on command."""

    serves_pull = False

    def __init__(self, name: str, db: Database, fail: Callable[[Event], None]) -> None:
        self.name = name
        self.db = db
        self.fail = fail
        self.metadata = MetaData()
        self.positions = positions_table(self.metadata)
        self.applied = Table(
            "applied",
            self.metadata,
            Column("seq", BigInteger, primary_key=True),
            Column("event_id", String(40), nullable=False),
        )

    async def prepare(self) -> None:
        await self.db.create(self.metadata)

    async def handle(self, conn: AsyncConnection, events: list[Event]) -> Outcome:
        for event in events:
            self.fail(event)
            await conn.execute(insert(self.applied).values(seq=event.seq, event_id=event.id))
        return Outcome()

    async def start_over(self, conn: AsyncConnection) -> None:
        raise AssertionError("not expected here")

    async def seqs(self) -> list[int]:
        async with self.db.read() as conn:
            rows = await conn.execute(select(self.applied.c.seq).order_by(self.applied.c.seq))
            return [int(s) for s in rows.scalars()]


def event(clock: HybridLogicalClock, device: str, title: str) -> bytes:
    """A TaskCreated as the BFF puts it on the stream (with its actor)."""
    task = new_id()
    return msgspec.json.encode(
        {
            "id": new_id(),
            "type": "TaskCreated",
            "schema": 1,
            "board": BOARD,
            "entity": task,
            "hlc": clock.now(),
            "device": device,
            "payload": {"title": title, "position": "a0"},
            "actor": "alice",
            "received_at": 1,
        }
    )


class Stage:
    def __init__(self, nc: Client, tmp: Path, server: EmbeddedNats) -> None:
        self.nc = nc
        self.server = server
        self.tmp = tmp
        self.device = new_device_id()
        self.clock = HybridLogicalClock(self.device)
        self.databases: list[Database] = []

    async def publish(self, count: int, title: str = "task") -> list[int]:
        js = self.nc.jetstream()
        seqs = []
        for _ in range(count):
            ack = await js.publish(event_subject(BOARD), event(self.clock, self.device, title))
            seqs.append(ack.seq)
        return seqs

    async def component(
        self, name: str, fail: Callable[[Event], None], kind: type[Recorder] = Recorder
    ) -> Recorder:
        db = Database.for_component(name, data_dir=self.tmp, url=None)
        self.databases.append(db)
        component = kind(name, db, fail)
        await component.prepare()
        return component

    async def faults(self) -> list[dict[str, Any]]:
        js = self.nc.jetstream()
        found = []
        info = await js.stream_info(FAULTS_STREAM)
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            if info.state.messages:
                message = await js.get_msg(FAULTS_STREAM, seq)
                if not (message.subject or "").endswith(".resolved"):
                    found.append(msgspec.json.decode(message.data or b"{}"))
        return found


@asynccontextmanager
async def stage(tmp: Path) -> AsyncIterator[Stage]:
    async with running_nats(tmp / "nats") as server, connected(server) as nc:
        await ensure_streams(nc.jsm())
        result = Stage(nc, tmp, server)
        try:
            yield result
        finally:
            for db in result.databases:
                await db.dispose()


@asynccontextmanager
async def running(runner: ConsumerRunner) -> AsyncIterator[ConsumerRunner]:
    task = asyncio.create_task(runner.run())
    try:
        yield runner
    finally:
        runner.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)


def fast(nc: Client, component: Recorder, **options: Any) -> ConsumerRunner:
    return ConsumerRunner(
        nc,
        component,
        fetch_timeout=0.2,
        initial_backoff=0.05,
        max_backoff=0.2,
        **options,
    )


def test_a_transient_failure_is_retried_without_a_fault(tmp_path: Path) -> None:
    async def body() -> None:
        async with stage(tmp_path) as s:
            seqs = await s.publish(5)
            failures = {"left": 3}

            def fail(e: Event) -> None:
                if e.seq == seqs[2] and failures["left"]:
                    failures["left"] -= 1
                    raise RuntimeError("a bug that passes")

            component = await s.component("flaky", fail)
            async with running(fast(s.nc, component, max_attempts=5)) as runner:
                await wait_until_async(lambda: component.seqs(), seqs)
                # The batch is committed (and readable) a moment before the runner closes
                # its breaker: wait for that, as a health check would see it.
                await wait_until(lambda: runner.breaker.state == "closed", what="closed")
                assert runner.stats.retries >= 3
                status = await runner.status()
                assert status["lag_events"] == 0 and status["lag_ms"] == 0
            assert await s.faults() == []

    run(body())


def test_a_message_past_the_retry_budget_is_faulted_alone_and_order_is_kept(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        async with stage(tmp_path) as s:
            seqs = await s.publish(6)
            bad = seqs[2]

            def fail(e: Event) -> None:
                if e.seq == bad:
                    raise ValueError("this one never works")

            component = await s.component("strict", fail)
            async with running(fast(s.nc, component, max_attempts=4)) as runner:
                expected = [seq for seq in seqs if seq != bad]
                await wait_until_async(lambda: component.seqs(), expected)
                later = await s.publish(2)
                await wait_until_async(lambda: component.seqs(), expected + later)
                assert runner.breaker.state == "closed"
            [fault] = await s.faults()
            assert fault["component"] == "strict"
            assert fault["seq"] == bad
            assert fault["deliveries"] == 4
            assert "ValueError: this one never works" in fault["error"]
            assert fault["subject"] == event_subject(BOARD)
            assert msgspec.json.decode(base64.b64decode(fault["data"]))["type"] == "TaskCreated"

    run(body())


def test_a_database_outage_opens_the_breaker_and_faults_nothing(tmp_path: Path) -> None:
    async def body() -> None:
        async with stage(tmp_path) as s:
            down = {"now": True}
            tries = {"count": 0}

            def fail(e: Event) -> None:
                if down["now"]:
                    tries["count"] += 1
                    raise OperationalError("INSERT", {}, ConnectionRefusedError("refused"))

            component = await s.component("views", fail)
            async with running(fast(s.nc, component, max_attempts=2)) as runner:
                seqs = await s.publish(4)
                await wait_until(lambda: runner.breaker.state == "open", what="breaker open")
                # many more tries than the budget of 2: an outage is never the message's fault
                await wait_until(lambda: tries["count"] >= 6, what="six tries", timeout_s=30)
                status = await runner.status()
                assert status["breaker"] == "open"
                assert "database unavailable" in status["last_error"]
                assert status["lag_events"] == 4
                assert status["lag_ms"] > 0
                assert await component.seqs() == []
                down["now"] = False
                await wait_until_async(lambda: component.seqs(), seqs)
                await wait_until(lambda: runner.breaker.state == "closed", what="closed")
                assert runner.breaker.openings == 1
            assert await s.faults() == []

    run(body())


def test_a_resubmission_reaches_only_its_component_and_keeps_its_seq(tmp_path: Path) -> None:
    async def body() -> None:
        async with stage(tmp_path) as s:
            seqs = await s.publish(3)
            bad = seqs[1]
            fixed = {"now": False}

            def fail(e: Event) -> None:
                if e.seq == bad and not fixed["now"]:
                    raise IntegrityError("INSERT", {}, Exception("a bug"))

            one = await s.component("one", fail)
            other = await s.component("other", lambda e: None)
            async with (
                running(fast(s.nc, one, max_attempts=2)),
                running(fast(s.nc, other)),
            ):
                await wait_until_async(lambda: one.seqs(), [seqs[0], seqs[2]])
                await wait_until_async(lambda: other.seqs(), seqs)
                js = s.nc.jetstream()
                [fault] = await stream.list_faults(js)
                assert (fault.event.component, fault.event.seq) == ("one", bad)
                fixed["now"] = True  # the bug is fixed
                await stream.resubmit(js, stream.select([fault], [fault.id]))
                await wait_until_async(lambda: one.seqs(), seqs)
                # A sentinel resubmitted to the other after it: once the other has it, a
                # misrouted copy of the first (earlier on the same stream) would have come.
                await js.publish(
                    resubmit_subject("other"),
                    event(s.clock, s.device, "sentinel"),
                    headers={
                        HEADER_ORIGINAL_SEQ: str(SENTINEL_SEQ),
                        HEADER_ORIGINAL_SUBJECT: event_subject(BOARD),
                    },
                )
                await wait_until_async(lambda: other.seqs(), [*seqs, SENTINEL_SEQ])
                assert await stream.list_faults(js) == []
                [resolved] = await stream.list_faults(js, include_resolved=True)
                assert resolved.resolution is not None
                assert resolved.resolution.action == "resubmitted"

    run(body())


class Keeper(Recorder):
    """A recorder that also keeps each event object it was handed."""

    def __init__(self, name: str, db: Database, fail: Callable[[Event], None]) -> None:
        super().__init__(name, db, fail)
        self.handed: dict[int, Event] = {}

    async def handle(self, conn: AsyncConnection, events: list[Event]) -> Outcome:
        self.handed.update((e.seq, e) for e in events if e.seq is not None)
        return await super().handle(conn, events)


def test_consumers_of_one_process_share_each_decoding_and_acknowledge_once_a_batch(
    tmp_path: Path,
) -> None:
    """Two components in one process each apply all 300 events, from one decoding of each
    (the same frozen object); each of their batches is acknowledged by one message, and
    afterwards nothing of theirs waits for an acknowledgement."""

    async def body() -> None:
        async with stage(tmp_path) as s:
            acks: dict[str, int] = {"archive": 0, "checker": 0}

            async def count(message: Any) -> None:
                consumer = message.subject.split(".")[3]
                acks[consumer] = acks.get(consumer, 0) + 1

            listening = await s.nc.subscribe(f"$JS.ACK.{EVENTS_STREAM}.*.>", cb=count)
            seqs = await s.publish(300)
            first = await s.component("archive", lambda e: None, kind=Keeper)
            second = await s.component("checker", lambda e: None, kind=Keeper)
            assert isinstance(first, Keeper) and isinstance(second, Keeper)
            runners = [fast(s.nc, first, batch=64), fast(s.nc, second, batch=64)]
            async with running(runners[0]), running(runners[1]):
                await wait_until_async(lambda: first.seqs(), seqs)
                await wait_until_async(lambda: second.seqs(), seqs)
                await s.nc.flush()
                for runner in runners:
                    info = await s.nc.jetstream().consumer_info(EVENTS_STREAM, runner.durable)
                    assert info.num_ack_pending == 0
                    assert info.ack_floor.stream_seq == seqs[-1]
            await listening.unsubscribe()
            assert all(first.handed[seq] is second.handed[seq] for seq in seqs)
            for runner in runners:
                # one per batch: 300 events in batches of at most 64 take 5 or more
                assert acks[runner.durable] == runner.stats.batches
                assert 5 <= runner.stats.batches < 300

    run(body())


async def wait_until_async(
    read: Callable[[], Any], expected: list[int], timeout_s: float = 15.0
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while (got := await read()) != expected:
        if loop.time() > deadline:
            pytest.fail(f"expected {expected}, got {got}")
        await asyncio.sleep(0.05)


class Serving(Recorder):
    """A recorder a pull reads: its batches send change notices."""

    serves_pull = True

    async def handle(self, conn: AsyncConnection, events: list[Event]) -> Outcome:
        await super().handle(conn, events)
        return Outcome(boards={BOARD})


def test_change_notices_go_on_nats_and_to_a_hub_in_the_same_process(tmp_path: Path) -> None:
    """A component a pull reads sends a change notice after each batch: on NATS, alone (as
    ``outpost backend consume`` runs it, where no hub listens); handed over in place too
    with ``notify_here`` (beside the BFF), the NATS copy marked with the hub's origin. A
    hub that fails to take one costs no batch."""

    async def body() -> None:
        async with stage(tmp_path) as s:
            heard: list[dict[str, Any]] = []

            async def on_notice(message: Any) -> None:
                heard.append(msgspec.json.decode(message.data))

            await s.nc.subscribe(CHANGES_SUBJECT, cb=on_notice)
            alone = await s.component("alone", lambda e: None, Serving)
            [first] = await s.publish(1)
            async with running(fast(s.nc, alone)) as runner:
                await wait_until_async(lambda: alone.seqs(), [first])
                await wait_until(lambda: [n["watermark"] for n in heard] == [first])
                assert runner.stats.retries == 0 and runner.breaker.state == "closed"
            assert heard[0]["origin"] == "" and heard[0]["boards"] == [BOARD]

            beside = await s.component("beside", lambda e: None, Serving)
            handed: list[bytes] = []
            runner = fast(s.nc, beside)
            runner.notify_here("hub-1", lambda data, written: handed.append(data))
            heard.clear()
            [second] = await s.publish(1)
            async with running(runner):
                await wait_until_async(lambda: beside.seqs(), [first, second])
                await wait_until(lambda: len(heard) == 1)
            assert [msgspec.json.decode(h)["origin"] for h in handed] == ["hub-1"]
            assert heard[0]["origin"] == "hub-1"

            def broken_hub(data: bytes, written: object) -> None:
                raise RuntimeError("a hub that cannot take it")

            third = await s.component("third", lambda e: None, Serving)
            runner = fast(s.nc, third)
            runner.notify_here("hub-2", broken_hub)
            heard.clear()
            async with running(runner):
                await wait_until_async(lambda: third.seqs(), [first, second])
                await wait_until(lambda: len(heard) == 1)
                assert runner.stats.retries == 0 and runner.breaker.state == "closed"

    run(body())
