"""The backend's NATS client reads headers as nats-py does, only sooner: the same mapping
for every kind of header block, and it is what reads them when a real nats-server delivers
an event to a consumer."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
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


class CountingClient(OutpostClient):
    """Counts what goes through the override: proof that nats-py still calls it."""

    calls = 0

    @staticmethod
    def _parse_header_lines(raw: bytes) -> dict[str, str]:
        CountingClient.calls += 1
        return parse_header_lines(raw)


@pytest.mark.integration
def test_a_consumer_of_a_real_server_reads_the_events_headers_through_it(
    nats_store: Path,
) -> None:
    async def scenario() -> None:
        async with running_nats(nats_store) as server:
            reader = CountingClient()
            await reader.connect(server.url)
            writer = await connect(server.url)
            try:
                assert isinstance(writer, OutpostClient)
                await ensure_streams(writer.jsm())
                subject = event_subject(new_id())
                ids = [new_id() for _ in range(3)]
                batch = [Outgoing(subject, b"{}", i, {"Outpost-Note": "caf\u00e9"}) for i in ids]
                await JetStreamPublisher(writer).publish_atomic(batch, timeout=5)
                js = reader.jetstream()
                sub = await js.pull_subscribe(f"{EVENTS_SUBJECT_PREFIX}.>", stream=EVENTS_STREAM)
                got = await sub.fetch(3, timeout=5)
            finally:
                await reader.close()
                await writer.close()
        assert [m.headers["Nats-Msg-Id"] for m in got if m.headers] == ids
        last = got[-1].headers or {}
        assert (last["Nats-Batch-Sequence"], last["Nats-Batch-Commit"]) == ("3", "1")
        assert all((m.headers or {}).get("Outpost-Note") == "caf\u00e9" for m in got)
        assert CountingClient.calls >= 3  # nats-py still calls the override
        assert OutpostClient._parse_header_lines is parse_header_lines  # and ours has it

    run(scenario())
