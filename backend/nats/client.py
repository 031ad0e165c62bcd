"""The backend's NATS client: nats-py's, with quicker reading and writing of headers.

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

Writing is the same story the other way: the push publishes every event with three
headers, and nats-py checks each name against a pattern and encodes each name and value
apart, 7.5 µs a message. ``header_block`` checks a name once (names repeat: the same few
on every message) and gives the same bytes (compared in the tests), in about 1.5 µs.

If a later nats-py stops calling ``_parse_header_lines`` or ``_send_publish``, the
overrides are simply not used: headers are handled nats-py's way, as correctly, and the
tests that send and read real messages through this client fail to say so.

Reading a fetched batch has the same kind of cost: ``take_queued_at_once`` makes a pull
subscription's ``fetch`` take what has already arrived without a task a message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from nats import errors
from nats.aio.client import Client
from nats.js.client import JetStreamContext
from nats.protocol.command import hpub_cmd

__all__ = [
    "OutpostClient",
    "connect",
    "header_block",
    "parse_header_lines",
    "take_queued_at_once",
]

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


_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
"""A header name nats-py sends: an HTTP token (its ``_HEADER_KEY_RE``)."""
_NAMES: dict[str, bytes] = {}
"""Names seen and checked, as ``b"Name: "`` (``b""`` for one that is only blanks)."""
_NAMES_KEPT = 256


def header_block(headers: Mapping[str, str]) -> bytes:
    """The ``NATS/1.0`` block nats-py's ``_send_publish`` makes of ``headers``: names
    stripped, a blank one skipped, any other that is not a token refused
    (``BadHeaderError``); values stripped, their line breaks made spaces."""
    parts = [b"NATS/1.0\r\n"]
    for name, value in headers.items():
        line = _NAMES.get(name)
        if line is None:
            line = _checked(name)
        if line:
            value = value.strip()
            if "\r" in value or "\n" in value:  # a value cannot end the block
                value = value.replace("\r", " ").replace("\n", " ")
            parts.append(line + value.encode() + b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def _checked(name: str) -> bytes:
    stripped = name.strip()
    if stripped and not _NAME.fullmatch(stripped):
        raise errors.BadHeaderError(stripped)
    line = stripped.encode() + b": " if stripped else b""
    if len(_NAMES) < _NAMES_KEPT:
        _NAMES[name] = line
    return line


class OutpostClient(Client):
    """nats-py's client, reading headers with ``parse_header_lines`` and writing them with
    ``header_block``."""

    _parse_header_lines = staticmethod(parse_header_lines)

    async def _send_publish(
        self,
        subject: str,
        reply: str,
        payload: bytes,
        payload_size: int,
        headers: dict[str, Any] | None,
    ) -> None:
        if headers is None or subject == "":
            await super()._send_publish(subject, reply, payload, payload_size, headers)
            return
        command = hpub_cmd(subject, reply, header_block(headers), payload)
        self.stats["out_msgs"] += 1
        self.stats["out_bytes"] += payload_size
        await self._send_command(command)
        if self._flush_queue is not None and self._flush_queue.empty():
            await self._flush_pending()


async def connect(servers: str | list[str], **options: Any) -> OutpostClient:
    """``nats.connect``, with ``OutpostClient``."""
    client = OutpostClient()
    await client.connect(servers, **options)
    return client


def take_queued_at_once(subscription: JetStreamContext.PullSubscription) -> None:
    """Make ``fetch`` take the messages that have already arrived without a task each.

    nats-py's ``fetch`` reads a batch one ``next_msg`` at a time, and each call makes a
    task, a ``wait_for`` and a uuid4 even when the message is already in the queue: 17 µs
    a message here, for every consumer (five read every event). A message that is there is
    now taken as ``next_msg`` itself would take it, at once; an empty queue still waits
    the library's way. Left as it is if nats-py's internals are not what this expects."""
    inner = getattr(subscription, "_sub", None)
    queue = getattr(inner, "_pending_queue", None)
    if inner is None or queue is None or not hasattr(inner, "_pending_size"):
        return
    waiting = inner.next_msg

    async def next_msg(timeout: float | None = 1.0) -> Any:
        if queue.empty() or inner._cb is not None or inner._conn.is_closed:
            return await waiting(timeout)
        message = queue.get_nowait()
        inner._pending_size -= len(message.data)
        queue.task_done()
        return message

    inner.next_msg = next_msg
