"""``InMemoryPublisher``: the ``Publisher`` twin for tests, with no NATS at all.

It records what was published and keeps the stream's promises that callers rely on: each
stream numbers its messages from 1, a ``Nats-Msg-Id`` published twice is stored once (the
second publish answers ``duplicate`` with the first seq), and an atomic batch is stored
whole at consecutive seqs, or refused whole when one of its ids is stored already.
The duplicate window is for ever here (the real one is a day by default).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import nats.js.errors

from backend.nats.publisher import Ack, Outgoing
from backend.nats.streams import (
    EVENTS_STREAM,
    EVENTS_SUBJECT_PREFIX,
    FAULTS_STREAM,
    FAULTS_SUBJECT_PREFIX,
    RESUBMIT_STREAM,
    RESUBMIT_SUBJECT_PREFIX,
)

__all__ = ["InMemoryPublisher", "Notice", "Stored"]

_STREAMS = {
    EVENTS_SUBJECT_PREFIX: EVENTS_STREAM,
    FAULTS_SUBJECT_PREFIX: FAULTS_STREAM,
    RESUBMIT_SUBJECT_PREFIX: RESUBMIT_STREAM,
}


@dataclass(frozen=True)
class Stored:
    """One message as a stream stored it."""

    stream: str
    seq: int
    subject: str
    data: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Notice:
    """One core NATS message (no stream)."""

    subject: str
    data: bytes


class InMemoryPublisher:
    """``Publisher`` that keeps every stream in memory (see the module docstring)."""

    def __init__(self) -> None:
        self.streams: dict[str, list[Stored]] = {}
        self.notices: list[Notice] = []
        self._ids: dict[tuple[str, str], int] = {}
        """(stream, Nats-Msg-Id) -> seq of the stored copy."""

    def stored(self, stream: str = EVENTS_STREAM) -> list[Stored]:
        """What ``stream`` holds, in order."""
        return list(self.streams.get(stream, []))

    async def publish(self, message: Outgoing, *, timeout: float | None = None) -> Ack:
        stream = _stream_of(message.subject)
        first = self._ids.get((stream, message.msg_id))
        if first is not None:
            return Ack(stream=stream, seq=first, duplicate=True)
        return self._store(stream, message)

    async def publish_all(
        self, messages: Sequence[Outgoing], *, timeout: float
    ) -> list[Ack | None]:
        return [await self.publish(m) for m in messages]

    async def publish_atomic(
        self, messages: Sequence[Outgoing], *, timeout: float
    ) -> list[Ack | None] | None:
        streams = {_stream_of(m.subject) for m in messages}
        if len(streams) > 1:
            return None  # a batch lives in one stream
        ids = [m.msg_id for m in messages]
        if len(set(ids)) < len(ids) or any(
            (stream, i) in self._ids for stream in streams for i in ids
        ):
            return None  # as JetStream: an id already stored refuses the whole batch
        return [await self.publish(m) for m in messages]

    async def notify(self, subject: str, data: bytes) -> None:
        self.notices.append(Notice(subject, data))

    def _store(self, stream: str, message: Outgoing) -> Ack:
        messages = self.streams.setdefault(stream, [])
        seq = len(messages) + 1
        messages.append(Stored(stream, seq, message.subject, message.data, message.all_headers()))
        self._ids[(stream, message.msg_id)] = seq
        return Ack(stream=stream, seq=seq)


def _stream_of(subject: str) -> str:
    for prefix, stream in _STREAMS.items():
        if subject.startswith(prefix + "."):
            return stream
    raise nats.js.errors.NoStreamResponseError  # as JetStream: no stream takes this subject
