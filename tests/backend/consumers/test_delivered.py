"""Where a delivered message sits in its stream (``batches.delivered``), read from its
acknowledgement subject as nats-py's ``Msg.metadata`` reads it, without its dataclasses."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js.api import AckPolicy, ConsumerConfig

from backend.consumers.batches import delivered, event_seq, stored_ms, stream_seq
from backend.faults.events import HEADER_ORIGINAL_SEQ
from backend.nats.streams import EVENTS_STREAM, RESUBMIT_STREAM, ensure_streams, event_subject
from tests.support.nats import connected, run, running_nats


def message(reply: str, headers: dict[str, str] | None = None) -> Msg:
    return Msg(_client=cast(Any, None), subject="outpost.events.b", reply=reply, headers=headers)


@pytest.mark.parametrize(
    "reply",
    [
        "$JS.ACK.OUTPOST_EVENTS.lake.1.4711.4700.1764500000000000000.25",
        "$JS.ACK._.ACCOUNTHASH.OUTPOST_EVENTS.lake.1.4711.4700.1764500000000000000.25.x9",
        "$JS.ACK._.ACCOUNTHASH.OUTPOST_EVENTS.lake.1.4711.4700.1764500000000000000.25",
        "$JS.ACK.hub.ACCOUNTHASH.OUTPOST_EVENTS.lake.3.4711.4700.1764500000000000000.0.x9",
    ],
)
def test_each_form_of_the_subject_gives_what_nats_py_reads(reply: str) -> None:
    read = message(reply)
    assert delivered(read) == ("OUTPOST_EVENTS", 4711)
    assert delivered(read) == (read.metadata.stream, read.metadata.sequence.stream)
    assert stream_seq(read) == event_seq(read) == 4711
    assert stored_ms(read) == 1764500000000 == int(read.metadata.timestamp.timestamp() * 1000)


def test_a_resubmission_counts_as_its_original_event() -> None:
    reply = f"$JS.ACK.{RESUBMIT_STREAM}.lake_resubmit.1.3.3.1764500000000000000.0"
    assert delivered(message(reply)) == (RESUBMIT_STREAM, 3)
    assert event_seq(message(reply, {HEADER_ORIGINAL_SEQ: "4711"})) == 4711
    assert event_seq(message(reply)) == 0  # no original: never an event's seq


@pytest.mark.parametrize("reply", ["", "_INBOX.abc", "$JS.ACK.too.few", "$JS.NAK.a.b.1.2.3.4.5"])
def test_a_subject_that_is_no_acknowledgement_fails_as_in_nats_py(reply: str) -> None:
    with pytest.raises(NatsError):
        delivered(message(reply))
    with pytest.raises(NatsError):
        stored_ms(message(reply))


@pytest.mark.integration
def test_messages_from_a_real_server_read_as_their_metadata(tmp_path: Path) -> None:
    async def body() -> None:
        async with running_nats(tmp_path / "nats") as server, connected(server) as nc:
            js = nc.jetstream()
            await ensure_streams(js)
            for n in range(5):
                await js.publish(event_subject("b1"), str(n).encode())
            config = ConsumerConfig(durable_name="reader", ack_policy=AckPolicy.ALL)
            pulled = await js.pull_subscribe(
                "outpost.events.>", durable="reader", stream=EVENTS_STREAM, config=config
            )
            messages = await pulled.fetch(5, timeout=5)
            assert [delivered(m) for m in messages] == [
                (m.metadata.stream, m.metadata.sequence.stream) for m in messages
            ]
            assert [stream_seq(m) for m in messages] == [1, 2, 3, 4, 5]
            for m in messages:  # whole ms here, a float in nats-py: within one ms
                assert abs(stored_ms(m) - m.metadata.timestamp.timestamp() * 1000) < 1

    run(body())
