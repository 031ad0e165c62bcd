"""The backend's NATS client: nats-py's, with a quicker reading of message headers.

Every event on ``OUTPOST_EVENTS`` carries three or four headers (``Nats-Msg-Id`` and the
atomic batch's ``Nats-Batch-Id``/``-Sequence``/``-Commit``), and every consumer that reads
it has nats-py parse them again: the projector, the saga's workload, the lake, the gateway
and the orchestrator, five times an event. nats-py's ``_parse_header_lines`` decodes each
name and value apart and checks each character of a name for whitespace in a generator:
8 µs for those four headers here, against 3.5 µs for ``parse_header_lines`` below, which
decodes the block once when it is ASCII (it always is for ours) and gives the same
mapping for any input (``tests/backend/nats/test_client.py`` compares the two on every
kind of line). The consumers' process spent about 9% of its time in header parsing during
an ingest (py-spy, 2026-11-30).

If a later nats-py stops calling ``_parse_header_lines``, the override is simply not used:
headers are read nats-py's way, as correctly, and the test that reads a real message
through this client fails to say so.
"""

from __future__ import annotations

from typing import Any

from nats.aio.client import Client

__all__ = ["OutpostClient", "parse_header_lines"]

_ASCII_WHITESPACE = " \t\n\r\x0b\x0c"
"""What ``bytes.strip()`` removes, which is what nats-py strips from names and values."""


def parse_header_lines(raw: bytes) -> dict[str, str]:
    """``Name: Value`` lines as nats-py's ``Client._parse_header_lines`` reads them: a line
    without a colon is skipped, and so is a name with whitespace in it (after stripping
    its ends) or with bytes that are not ASCII; values are stripped, and read as UTF-8 with
    replacement characters. Blocks that are not all ASCII go to nats-py's own reading."""
    if not raw.isascii():
        return Client._parse_header_lines(raw)
    out: dict[str, str] = {}
    for line in raw.decode("ascii").split("\r\n"):
        name, colon, value = line.partition(":")
        if not colon:
            continue
        name = name.strip(_ASCII_WHITESPACE)
        # A printable ASCII name has whitespace only if it has a space; the slow check is
        # for names with control characters, some of which (\x1c to \x1f) are whitespace.
        if (name.isprintable() and " " not in name) or not any(c.isspace() for c in name):
            out[name] = value.strip(_ASCII_WHITESPACE)
    return out


class OutpostClient(Client):
    """nats-py's client, reading headers with ``parse_header_lines``."""

    _parse_header_lines = staticmethod(parse_header_lines)


async def connect(servers: str | list[str], **options: Any) -> OutpostClient:
    """``nats.connect``, with ``OutpostClient``."""
    client = OutpostClient()
    await client.connect(servers, **options)
    return client
