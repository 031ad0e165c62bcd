"""The decodings the consumers of one process share (``batches.DecodedEvents``)."""

from __future__ import annotations

import msgspec

from backend.consumers.batches import DecodedEvents
from protocol import Event, HybridLogicalClock, new_device_id, new_id


def stored(title: str, *, actor: str | None = "alice") -> bytes:
    device = new_device_id()
    return msgspec.json.encode(
        {
            "id": new_id(),
            "type": "TaskCreated",
            "schema": 1,
            "board": new_id(),
            "entity": new_id(),
            "hlc": HybridLogicalClock(device).now(),
            "device": device,
            "payload": {"title": title, "position": "a0"},
            "actor": actor,
            "received_at": 1,
        }
    )


def test_a_second_reader_gets_the_first_decoding_with_its_seq() -> None:
    decoded = DecodedEvents()
    data = stored("one")
    first = decoded.read(7, data)
    assert isinstance(first, Event) and first.seq == 7
    assert decoded.read(7, bytes(data)) is first  # equal bytes, another object: a hit


def test_new_bytes_at_a_known_seq_are_decoded_afresh() -> None:
    """A stream made again after a loss numbers its events from 1 again."""
    decoded = DecodedEvents()
    before = decoded.read(1, stored("before the loss"))
    after = decoded.read(1, stored("after the loss"))
    assert isinstance(before, Event) and isinstance(after, Event)
    assert after.id != before.id and after.seq == 1
    assert after.payload.title == "after the loss"  # type: ignore[union-attr]


def test_the_same_bytes_at_another_seq_are_that_seq() -> None:
    """A stream made again from the lake may store the same event at another seq."""
    decoded = DecodedEvents()
    data = stored("moved")
    first, second = decoded.read(5, data), decoded.read(9, data)
    assert isinstance(first, Event) and isinstance(second, Event)
    assert (first.seq, second.seq) == (5, 9)
    assert msgspec.structs.replace(first, seq=9) == second


def test_what_the_writer_kept_is_read_without_decoding_with_its_seq() -> None:
    decoded = DecodedEvents()
    data = stored("written here")
    cold = decoded.read(1, data)
    assert isinstance(cold, Event)
    written = msgspec.structs.replace(cold, seq=None)
    elsewhere = DecodedEvents()
    elsewhere.keep(data, written)
    read = elsewhere.read(2, data)
    assert read == msgspec.structs.replace(written, seq=2)
    assert isinstance(read, Event) and read.payload is written.payload  # not decoded again
    assert elsewhere.read(2, data) is read  # the next reader at that seq takes it as is


def test_poison_is_said_the_same_way_to_every_reader() -> None:
    decoded = DecodedEvents()
    assert decoded.read(3, b"not json") == decoded.read(3, b"not json")
    reason = decoded.read(3, b"not json")
    assert isinstance(reason, str) and reason.startswith("undecodable event")
    no_actor = decoded.read(4, stored("from nowhere", actor=None))
    assert no_actor == "event has no actor: it did not come through the BFF"


def test_it_keeps_only_the_latest_decodings() -> None:
    decoded = DecodedEvents(size=2)
    data = {seq: stored(f"task {seq}") for seq in (1, 2, 3)}
    first = decoded.read(1, data[1])
    decoded.read(2, data[2])
    decoded.read(3, data[3])
    again = decoded.read(1, data[1])
    assert again is not first and again == first  # forgotten, so decoded again, the same
