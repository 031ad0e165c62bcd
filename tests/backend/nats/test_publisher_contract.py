"""One contract, two publishers: the real JetStream one (against a real nats-server) and the
in-memory twin pass the same assertions, so a test that uses the twin can trust it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import nats.js.errors
import pytest
from nats.aio.msg import Msg

from backend.nats.memory import InMemoryPublisher
from backend.nats.publisher import JetStreamPublisher, Outgoing, Publisher
from backend.nats.streams import (
    CHANGES_SUBJECT,
    EVENTS_STREAM,
    FAULTS_STREAM,
    ensure_streams,
    event_subject,
    fault_subject,
)
from protocol import new_id
from tests.support.nats import connected, run, running_nats, wait_until

TIMEOUT_S = 5.0


@dataclass
class Harness:
    publisher: Publisher
    stored: Callable[[str], Awaitable[list[tuple[int, str, bytes]]]]
    """(seq, subject, data) of every message a stream holds."""
    heard: Callable[[], list[tuple[str, bytes]]]
    """(subject, data) of every notice a subscriber of ``outpost.changes`` received."""


@asynccontextmanager
async def memory(_: Path) -> AsyncIterator[Harness]:
    twin = InMemoryPublisher()

    async def stored(stream: str) -> list[tuple[int, str, bytes]]:
        return [(m.seq, m.subject, m.data) for m in twin.stored(stream)]

    def heard() -> list[tuple[str, bytes]]:
        return [(n.subject, n.data) for n in twin.notices if n.subject == CHANGES_SUBJECT]

    yield Harness(twin, stored, heard)


@asynccontextmanager
async def jetstream(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_nats(tmp_path / "nats") as server, connected(server) as nc:
        await ensure_streams(nc.jsm())
        js = nc.jetstream()
        notices: list[tuple[str, bytes]] = []

        async def heard(msg: Msg) -> None:
            notices.append((msg.subject, msg.data))

        await nc.subscribe(CHANGES_SUBJECT, cb=heard)
        await nc.flush()

        async def stored(stream: str) -> list[tuple[int, str, bytes]]:
            info = await js.stream_info(stream)
            found = []
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                if info.state.messages:
                    message = await js.get_msg(stream, seq)
                    found.append((seq, message.subject or "", message.data or b""))
            return found

        yield Harness(JetStreamPublisher(nc), stored, lambda: list(notices))


HARNESSES = {"memory": memory, "jetstream": jetstream}
KINDS = ["memory", pytest.param("jetstream", marks=pytest.mark.integration)]


def contract(kind: str, tmp_path: Path, body: Callable[[Harness], Awaitable[None]]) -> None:
    async def main() -> None:
        async with HARNESSES[kind](tmp_path) as harness:
            await body(harness)

    run(main())


def event(board: str, text: str) -> Outgoing:
    return Outgoing(event_subject(board), text.encode(), new_id())


@pytest.mark.parametrize("kind", KINDS)
def test_each_stream_numbers_its_messages_from_one(kind: str, tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        first = await h.publisher.publish(event("b1", "one"))
        second = await h.publisher.publish(event("b2", "two"))
        fault = await h.publisher.publish(Outgoing(fault_subject("lake"), b"fault", "lake:1"))
        assert (first.stream, first.seq, first.duplicate) == (EVENTS_STREAM, 1, False)
        assert (second.stream, second.seq) == (EVENTS_STREAM, 2)
        assert (fault.stream, fault.seq) == (FAULTS_STREAM, 1)
        assert await h.stored(EVENTS_STREAM) == [
            (1, event_subject("b1"), b"one"),
            (2, event_subject("b2"), b"two"),
        ]

    contract(kind, tmp_path, body)


@pytest.mark.parametrize("kind", KINDS)
def test_an_id_published_twice_is_stored_once(kind: str, tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        message = event("b1", "once")
        await h.publisher.publish(event("b1", "before"))
        first = await h.publisher.publish(message)
        again = await h.publisher.publish(message)
        assert (again.seq, again.duplicate) == (first.seq, True)
        assert [data for _, _, data in await h.stored(EVENTS_STREAM)] == [b"before", b"once"]

    contract(kind, tmp_path, body)


@pytest.mark.parametrize("kind", KINDS)
def test_publish_all_confirms_each_and_stores_a_repeated_id_once(kind: str, tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        earlier = event("b1", "earlier")
        await h.publisher.publish(earlier)
        messages = [event("b1", "a"), event("b1", "b"), earlier]
        acks = await h.publisher.publish_all(messages, timeout=TIMEOUT_S)
        assert [(a.seq, a.duplicate) for a in acks if a is not None] == [
            (2, False),
            (3, False),
            (1, True),
        ]
        assert len(await h.stored(EVENTS_STREAM)) == 3

    contract(kind, tmp_path, body)


@pytest.mark.parametrize("kind", KINDS)
def test_an_atomic_batch_is_stored_whole_at_consecutive_seqs(kind: str, tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        await h.publisher.publish(event("b1", "first"))
        batch = [event("b1", f"batch {n}") for n in range(5)]
        acks = await h.publisher.publish_atomic(batch, timeout=TIMEOUT_S)
        assert acks is not None
        assert [a.seq for a in acks if a is not None] == [2, 3, 4, 5, 6]
        stored = await h.stored(EVENTS_STREAM)
        assert [data for _, _, data in stored[1:]] == [m.data for m in batch]

    contract(kind, tmp_path, body)


@pytest.mark.parametrize("kind", KINDS)
def test_an_atomic_batch_with_an_id_stored_already_is_refused_whole(
    kind: str, tmp_path: Path
) -> None:
    async def body(h: Harness) -> None:
        known = event("b1", "known")
        await h.publisher.publish(known)
        refused = await h.publisher.publish_atomic(
            [event("b1", "new"), known, event("b1", "newer")], timeout=TIMEOUT_S
        )
        assert refused is None, "the caller publishes one by one instead"
        assert [data for _, _, data in await h.stored(EVENTS_STREAM)] == [b"known"]

    contract(kind, tmp_path, body)


@pytest.mark.parametrize("kind", KINDS)
def test_a_subject_that_no_stream_takes_is_not_confirmed(kind: str, tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        with pytest.raises(nats.js.errors.NoStreamResponseError):
            await h.publisher.publish(Outgoing("outpost.nowhere.x", b"lost", new_id()))

    contract(kind, tmp_path, body)


@pytest.mark.parametrize("kind", KINDS)
def test_a_notice_is_sent_on_core_nats_and_stored_nowhere(kind: str, tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        await h.publisher.notify(CHANGES_SUBJECT, b'{"watermark": 1}')
        await wait_until(lambda: bool(h.heard()), what="the notice")
        assert h.heard() == [(CHANGES_SUBJECT, b'{"watermark": 1}')]
        assert await h.stored(EVENTS_STREAM) == []

    contract(kind, tmp_path, body)
