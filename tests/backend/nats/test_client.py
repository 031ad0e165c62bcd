"""The backend's NATS client reads and writes headers as nats-py does, only sooner: the same
mapping for every kind of header block, the same bytes for every kind of header to send,
and it is what handles them when events go through a real nats-server."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest
from nats import errors
from nats.aio.client import Client

from backend.nats.client import OutpostClient, connect, parse_header_lines
from backend.nats.publisher import JetStreamPublisher, Outgoing
from backend.nats.streams import EVENTS_STREAM, EVENTS_SUBJECT_PREFIX, ensure_streams, event_subject
from protocol import new_id
from tests.support.nats import run, running_nats

nats_py = Client._parse_header_lines

BLOCKS = [
    # what every event on the stream carries
    b"Nats-Msg-Id: 0b5e\r\nNats-Batch-Id: 3134\r\nNats-Batch-Sequence: 2\r\n"
    b"Nats-Batch-Commit: 1\r\n",
    b"Nats-Msg-Id:no-space\r\n",
    b"Padded :  value with  spaces \t\r\n",
    b"Name: a: b: c\r\n",  # the first colon ends the name
    b"No colon here\r\nGood: yes\r\n",
    b"Bad Name: skipped\r\nGood: kept\r\n",
    b"Tab\tName: skipped\r\n",
    b"Sep\x1cName: skipped (a control character Python calls whitespace)\r\n",
    b"Nul\x00Name: kept (a control character that is not whitespace)\r\n",
    b"\x1cLead: skipped (bytes.strip leaves it, so it is inside the name)\r\n",
    b": empty name\r\n",
    b"Same: one\r\nSame: two\r\n",  # the last one wins
    b"Caf\xc3\xa9: a name that is not ASCII is skipped\r\nOk: 1\r\n",
    b"Value: caf\xc3\xa9 and \xff broken\r\n",
    b"Lone\rCR: in a name\r\nLone\nLF: too\r\n",
    b"",
    b"\r\n\r\n",
]


@pytest.mark.parametrize("block", BLOCKS)
def test_each_kind_of_header_block_reads_as_nats_py_reads_it(block: bytes) -> None:
    assert parse_header_lines(block) == nats_py(block)


def test_random_header_blocks_read_as_nats_py_reads_them() -> None:
    pieces = [b"a", b"Z", b"-", b":", b" ", b"\t", b"\r\n", b"\r", b"\n", b"\x0b", b"\x1c"]
    pieces += [b"\x1f", b"\x00", b"\x7f", b"\xc3\xa9", b"\xff"]
    rng = random.Random(20261130)
    for _ in range(20_000):
        block = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 24)))
        assert parse_header_lines(block) == nats_py(block), block


class Sent:
    """Keeps the protocol commands a client would send (no connection needed)."""

    sent: list[bytes]

    async def _send_command(self, command: bytes, priority: bool = False) -> None:
        self.sent.append(bytes(command))


class NatsPySends(Sent, Client):
    pass


class OursSends(Sent, OutpostClient):
    pass


HEADERS: list[dict[str, str]] = [
    # what the push sends with every event of an atomic batch
    {"Nats-Msg-Id": "0b5e", "Nats-Batch-Id": "3134", "Nats-Batch-Sequence": "17"},
    {"Nats-Msg-Id": "0b5e", "Nats-Batch-Id": "3134", "Nats-Batch-Commit": "1"},
    {"  Padded  ": "  value  "},
    {"Breaks": "one\r\ntwo\nthree\r"},  # a value cannot end the block
    {"   ": "a blank name is skipped", "Kept": "yes"},
    {"Unicode-Value": "caf\u00e9 \u2603"},
    {"Empty-Value": ""},
    {},
]


def sent_by(client: Sent, headers: dict[str, str] | None) -> list[bytes]:
    client.sent = []
    asyncio.run(client._send_publish("outpost.events.b", "_INBOX.r", b"{}", 2, headers))  # type: ignore[attr-defined]
    return client.sent


@pytest.mark.parametrize("headers", [*HEADERS, None])
def test_each_kind_of_header_to_send_is_written_as_nats_py_writes_it(
    headers: dict[str, str] | None,
) -> None:
    theirs, ours = NatsPySends(), OursSends()
    for _ in range(2):  # the second time, from the names it checked the first
        assert sent_by(ours, headers) == sent_by(theirs, headers)
    assert ours.stats == theirs.stats


@pytest.mark.parametrize("name", ["Bad Name", "Colon:", "caf\u00e9", "Tab\tName"])
def test_a_header_name_nats_py_refuses_is_refused_every_time(name: str) -> None:
    with pytest.raises(errors.BadHeaderError):
        sent_by(NatsPySends(), {name: "x"})
    for _ in range(2):  # a refused name is never kept as checked
        with pytest.raises(errors.BadHeaderError):
            sent_by(OursSends(), {name: "x"})


class CountingClient(OutpostClient):
    """Counts what goes through the overrides: proof that nats-py still calls them."""

    calls = 0
    sends = 0

    @staticmethod
    def _parse_header_lines(raw: bytes) -> dict[str, str]:
        CountingClient.calls += 1
        return parse_header_lines(raw)

    async def _send_publish(self, *args: Any, **options: Any) -> None:
        CountingClient.sends += 1
        await super()._send_publish(*args, **options)


@pytest.mark.integration
def test_events_sent_and_read_through_a_real_server_keep_their_headers(
    nats_store: Path,
) -> None:
    async def scenario() -> None:
        async with running_nats(nats_store) as server:
            reader = await connect(server.url)
            writer = CountingClient()
            await writer.connect(server.url)
            try:
                assert isinstance(reader, OutpostClient)
                await ensure_streams(writer.jsm())
                subject = event_subject(new_id())
                ids = [new_id() for _ in range(3)]
                batch = [Outgoing(subject, b"{}", i, {"Outpost-Note": "caf\u00e9"}) for i in ids]
                await JetStreamPublisher(writer).publish_atomic(batch, timeout=5)
                js = reader.jetstream()
                sub = await js.pull_subscribe(f"{EVENTS_SUBJECT_PREFIX}.>", stream=EVENTS_STREAM)
                got = await sub.fetch(3, timeout=5)
                counting = CountingClient()
                await counting.connect(server.url)
                sub = await counting.jetstream().pull_subscribe(
                    f"{EVENTS_SUBJECT_PREFIX}.>", stream=EVENTS_STREAM
                )
                assert [m.headers for m in await sub.fetch(3, timeout=5)] == [
                    m.headers for m in got
                ]
                await counting.close()
            finally:
                await reader.close()
                await writer.close()
        assert [m.headers["Nats-Msg-Id"] for m in got if m.headers] == ids
        last = got[-1].headers or {}
        assert (last["Nats-Batch-Sequence"], last["Nats-Batch-Commit"]) == ("3", "1")
        assert all((m.headers or {}).get("Outpost-Note") == "caf\u00e9" for m in got)
        # nats-py still calls the overrides: the batch was sent and read through them
        assert CountingClient.sends >= 3
        assert CountingClient.calls >= 3
        assert OutpostClient._parse_header_lines is parse_header_lines

    run(scenario())
