"""One fetched batch: decoded, handed to the component, and what of it is to be faulted.

A message that is not an event, or has no actor (it did not come through the BFF), is
*poison*: it can never succeed, so it is faulted at once instead of retried. A
``RawComponent`` (the lake) gets every message as stored, readable or not, and decides
itself what it cannot keep.
"""

from __future__ import annotations

import base64
import functools
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
from nats.aio.msg import Msg
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.consumers.component import Component, Outcome, RawComponent, RawRecord
from backend.faults.events import (
    HEADER_FAULT_ID,
    HEADER_ORIGINAL_SEQ,
    HEADER_ORIGINAL_SUBJECT,
    FaultEvent,
)
from backend.nats.streams import RESUBMIT_STREAM
from protocol import Event, EventRejected, UnreadableEvent, decode_stored_event

__all__ = [
    "Applied",
    "DecodedEvents",
    "apply",
    "delivered",
    "event_seq",
    "fault_for",
    "keep_decoded",
    "stored_ms",
    "stream_seq",
]


@dataclass(frozen=True)
class Applied:
    """What the component made of a batch."""

    outcome: Outcome
    events: int
    """How many readable events it was given."""
    poison: dict[int, str]
    """Event seq -> why it can never be applied (to be faulted)."""


async def apply(conn: AsyncConnection, component: Component, messages: list[Msg]) -> Applied:
    """Hand ``messages`` (not yet passed) to ``component`` inside its transaction."""
    events, poison = _decode(messages)
    if isinstance(component, RawComponent):
        records = _raw_records(messages, events, poison)
        outcome = await component.handle_raw(conn, records) if records else Outcome()
        poison = dict(outcome.poison)  # it keeps what it cannot read, raw
    else:
        outcome = await component.handle(conn, events) if events else Outcome()
        poison.update(outcome.poison)
    return Applied(outcome, len(events), poison)


def event_seq(message: Msg) -> int:
    """The event's ``OUTPOST_EVENTS`` sequence: its own, or for a resubmission the original's."""
    stream, seq = delivered(message)
    if stream == RESUBMIT_STREAM:
        original = _int((message.headers or {}).get(HEADER_ORIGINAL_SEQ))
        return original if original is not None else 0
    return seq


def stream_seq(message: Msg) -> int:
    """The sequence of ``message`` in the stream it was delivered from."""
    return delivered(message)[1]


def delivered(message: Msg) -> tuple[str, int]:
    """The stream ``message`` was delivered from and its sequence there, read from its
    acknowledgement subject: ``$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>...``
    (nine tokens), or with a domain and an account hash before the stream (twelve, or
    eleven). nats-py's ``Msg.metadata`` reads the same subject into frozen dataclasses and
    a datetime, 6 µs a message against 0.6 here, and a lookup after that: a batch reads
    each message's seq several times, in every consumer. Any other subject is read by
    ``Msg.metadata``, which says what is wrong with it."""
    position = _position(message.reply or "")
    if position is None:
        metadata = message.metadata
        return metadata.stream, int(metadata.sequence.stream)
    return position[0], position[1]


def stored_ms(message: Msg) -> int | None:
    """When the stream stored ``message`` (Unix ms), from the same subject as
    ``delivered``: the lake files every event under it. None when the subject has no time."""
    position = _position(message.reply or "")
    if position is None:
        stored = message.metadata.timestamp
        return int(stored.timestamp() * 1000) if stored else None
    return position[2] // 1_000_000


@functools.lru_cache(maxsize=16384)
def _position(reply: str) -> tuple[str, int, int] | None:
    """Stream, stream seq and stored time (ns), kept for the calls that follow: each
    consumer reads a message's seq in the runner and again to decode it, and the lake reads
    its seq and time once more for the record it files."""
    tokens = reply.split(".")
    if tokens[0] == "$JS" and tokens[1:2] == ["ACK"]:
        if len(tokens) == _V1_TOKENS:
            return tokens[2], int(tokens[5]), int(tokens[7])
        if len(tokens) in _V2_TOKENS:
            return tokens[4], int(tokens[7]), int(tokens[9])
    return None


_V1_TOKENS = 9
_V2_TOKENS = (11, 12)


def fault_for(
    component: str, message: Msg, error: str, attempts: int | None
) -> tuple[FaultEvent, str]:
    """The fault event of ``message`` and its ``Nats-Msg-Id`` (one fault per event and
    component, and one per resubmission)."""
    metadata = message.metadata
    headers: Mapping[str, str] = message.headers or {}
    fault = FaultEvent(
        component=component,
        seq=event_seq(message),
        subject=headers.get(HEADER_ORIGINAL_SUBJECT, message.subject),
        error=error,
        deliveries=max(attempts or 0, metadata.num_delivered or 1),
        event_id=_readable_id(message.data),
        data=base64.b64encode(message.data).decode(),
        at=int(time.time() * 1000),
    )
    msg_id = f"{component}:{fault.seq}"
    if metadata.stream == RESUBMIT_STREAM:
        fault.resubmit_seq = metadata.sequence.stream
        fault.resubmitted_from = _int(headers.get(HEADER_FAULT_ID))
        msg_id = f"{component}:resubmit:{fault.resubmit_seq}"
    return fault, msg_id


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _decode(messages: list[Msg]) -> tuple[list[Event], dict[int, str]]:
    events, poison = [], {}
    for message in messages:
        seq = event_seq(message)
        decoded = _decoded.read(seq, message.data)
        if isinstance(decoded, str):
            poison[seq] = decoded
        else:
            events.append(decoded)
    return events, poison


class DecodedEvents:
    """The events this process decoded or wrote lately, by their stored bytes: each
    consumer reads every event (the lake, the saga's check, the gateway and the
    orchestrator share a process), and the first to read one decodes it for them all; the
    BFF's push keeps what it wrote (``keep``), so that the projector beside it decodes
    nothing. The same bytes always decode to the same event (only the seq, which is not in
    them, differs: a stream made again after a loss numbers its events from 1 again), and
    an ``Event`` is frozen, so sharing one is safe.

    Keyed by seq with 4,096 entries, the consumers' process decoded about 40% of events
    twice in an ingest (its consumers drift apart by more than that) and the projector
    took the push's decoding for only a third of them (it often reads an event before the
    push has its acknowledgement, and so its seq); and dropping the oldest of a ``dict``
    scans past every slot deleted before it. Hence bytes, 16,384 entries (about 23 MB
    when full, for events of a typical size), and an ``OrderedDict``."""

    def __init__(self, size: int = 16_384) -> None:
        self._size = size
        self._entries: OrderedDict[bytes, Event | str] = OrderedDict()

    def read(self, seq: int, data: bytes) -> Event | str:
        """The event stored at ``seq`` with ``data``, its seq set; or why it is poison."""
        entry = self._entries.get(data)
        if entry is None:
            entry = _decode_one(data)
            self.keep(data, entry)
        if isinstance(entry, str) or entry.seq == seq:
            return entry
        numbered = msgspec.structs.replace(entry, seq=seq)
        self._entries[data] = numbered  # the next reader, at the same seq, takes it as is
        return numbered

    def keep(self, data: bytes, entry: Event | str) -> None:
        """Remember what ``data`` decodes to. A writer of ``data`` in this process hands
        over what it encoded: that must be what ``decode_stored_event`` makes of it."""
        entries = self._entries
        entries[data] = entry
        if len(entries) > self._size:
            entries.popitem(last=False)  # the oldest in, as the consumers move on


def _decode_one(data: bytes) -> Event | str:
    try:
        event = decode_stored_event(data)
    except (EventRejected, UnreadableEvent) as exc:
        return f"undecodable event: {exc}"
    if event.actor is None:
        return "event has no actor: it did not come through the BFF"
    return event


_decoded = DecodedEvents()


def keep_decoded(data: bytes, event: Event) -> None:
    """``DecodedEvents.keep`` on this process's events: see there."""
    _decoded.keep(data, event)


def _raw_records(
    messages: list[Msg], events: list[Event], poison: dict[int, str]
) -> list[RawRecord]:
    by_seq = {e.seq: e for e in events}
    records = []
    for message in messages:
        seq = event_seq(message)
        stored = stored_ms(message)
        records.append(
            RawRecord(
                seq=seq,
                subject=(message.headers or {}).get(HEADER_ORIGINAL_SUBJECT, message.subject),
                data=message.data,
                time_ms=stored if stored is not None else int(time.time() * 1000),
                event=by_seq.get(seq),
                error=poison.get(seq),
            )
        )
    return records


def _readable_id(data: bytes) -> str | None:
    try:
        raw: Any = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return None
    event_id = raw.get("id") if isinstance(raw, dict) else None
    return event_id if isinstance(event_id, str) else None
