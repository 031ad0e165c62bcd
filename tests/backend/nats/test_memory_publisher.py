"""The in-memory publisher: what it records, beyond the contract it shares with JetStream."""

from __future__ import annotations

from backend.nats.memory import InMemoryPublisher
from backend.nats.publisher import Outgoing
from backend.nats.streams import (
    EVENTS_STREAM,
    FAULTS_STREAM,
    RESUBMIT_STREAM,
    event_subject,
    fault_subject,
    resubmit_subject,
)
from tests.support.nats import run


def test_it_records_each_message_with_its_headers_in_its_stream() -> None:
    async def body() -> None:
        twin = InMemoryPublisher()
        await twin.publish(Outgoing(event_subject("b1"), b"event", "id-1"))
        await twin.publish(
            Outgoing(resubmit_subject("lake"), b"again", "resubmit:4", {"Outpost-Fault": "4"})
        )
        [stored] = twin.stored(RESUBMIT_STREAM)
        assert stored.headers == {"Outpost-Fault": "4", "Nats-Msg-Id": "resubmit:4"}
        assert [m.data for m in twin.stored(EVENTS_STREAM)] == [b"event"]
        assert twin.stored(FAULTS_STREAM) == []

    run(body())


def test_the_same_id_in_another_stream_is_another_message() -> None:
    async def body() -> None:
        twin = InMemoryPublisher()
        one = await twin.publish(Outgoing(event_subject("b1"), b"event", "same"))
        other = await twin.publish(Outgoing(fault_subject("lake"), b"fault", "same"))
        assert (one.stream, one.seq, other.stream, other.seq) == (
            EVENTS_STREAM,
            1,
            FAULTS_STREAM,
            1,
        )
        assert not other.duplicate

    run(body())


def test_an_atomic_batch_that_repeats_an_id_or_spans_streams_is_refused() -> None:
    async def body() -> None:
        twin = InMemoryPublisher()
        twice = [
            Outgoing(event_subject("b1"), b"x", "dup"),
            Outgoing(event_subject("b1"), b"y", "dup"),
        ]
        assert await twin.publish_atomic(twice, timeout=1) is None
        spans = [Outgoing(event_subject("b1"), b"x", "a"), Outgoing(fault_subject("c"), b"y", "b")]
        assert await twin.publish_atomic(spans, timeout=1) is None
        assert twin.streams == {}, "nothing of a refused batch is stored"

    run(body())


def test_notices_are_recorded_in_order() -> None:
    async def body() -> None:
        twin = InMemoryPublisher()
        await twin.notify("outpost.changes", b"1")
        await twin.notify("outpost.changes", b"2")
        assert [n.data for n in twin.notices] == [b"1", b"2"]
        assert twin.streams == {}

    run(body())
