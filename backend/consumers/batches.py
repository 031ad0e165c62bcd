"""One fetched batch: decoded, handed to the component, and what of it is to be faulted.

A message that is not an event, or has no actor (it did not come through the BFF), is
*poison*: it can never succeed, so it is faulted at once instead of retried. A
``RawComponent`` (the lake) gets every message as stored, readable or not, and decides
itself what it cannot keep.
"""

from __future__ import annotations

import base64
import time
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

__all__ = ["Applied", "apply", "event_seq", "fault_for"]


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
    metadata = message.metadata
    if metadata.stream == RESUBMIT_STREAM:
        original = _int((message.headers or {}).get(HEADER_ORIGINAL_SEQ))
        return original if original is not None else 0
    return int(metadata.sequence.stream)


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
        try:
            event = decode_stored_event(message.data)
        except (EventRejected, UnreadableEvent) as exc:
            poison[seq] = f"undecodable event: {exc}"
            continue
        if event.actor is None:
            poison[seq] = "event has no actor: it did not come through the BFF"
            continue
        events.append(msgspec.structs.replace(event, seq=seq))
    return events, poison


def _raw_records(
    messages: list[Msg], events: list[Event], poison: dict[int, str]
) -> list[RawRecord]:
    by_seq = {e.seq: e for e in events}
    records = []
    for message in messages:
        seq = event_seq(message)
        stored = message.metadata.timestamp
        records.append(
            RawRecord(
                seq=seq,
                subject=(message.headers or {}).get(HEADER_ORIGINAL_SUBJECT, message.subject),
                data=message.data,
                time_ms=int(stored.timestamp() * 1000) if stored else int(time.time() * 1000),
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
