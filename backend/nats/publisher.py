"""The one seam through which the backend writes to NATS: ``Publisher``.

Every write goes through it: the events a push accepted (``bff/sync/push.py``), the
saga's events and compensations (``consumers/publishing.py``), fault events and change
notices (``consumers/runner.py``) and what ``outpost faults`` records
(``faults/stream.py``). Two implementations share one contract test
(``tests/backend/nats/test_publisher_contract.py``):

- ``JetStreamPublisher``: the real one, over a nats-py connection;
- ``InMemoryPublisher`` (``memory.py``): a twin for tests, which records what was published
  and behaves like the stream where callers rely on it (a ``Nats-Msg-Id`` published twice
  is stored once; an atomic batch is stored whole or refused).

A publish that NATS does not confirm raises what nats-py raises (a ``nats.errors.Error``,
or ``OSError``): the consumer runner tells such an outage from a bad message by that type.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js.api import PubAck
from nats.js.client import JetStreamContext

__all__ = ["Ack", "JetStreamPublisher", "Outgoing", "Publisher"]

log = logging.getLogger(__name__)

HEADER_MSG_ID = "Nats-Msg-Id"

_ATOMIC_DUPLICATE = 10201
"""JetStream: an atomic batch holds a message id already inside the duplicate window."""
_ATOMIC_DISABLED = frozenset({10174})
"""JetStream: atomic publish is not enabled on this stream."""


@dataclass(frozen=True)
class Ack:
    """A message the stream has stored: at ``seq``, or earlier (``duplicate``: its id was
    stored before, and ``seq`` is the first copy's)."""

    stream: str
    seq: int
    duplicate: bool = False


@dataclass(frozen=True)
class Outgoing:
    """One message to store, deduplicated by ``msg_id`` (``Nats-Msg-Id``)."""

    subject: str
    data: bytes
    msg_id: str
    headers: Mapping[str, str] = field(default_factory=dict)
    """Headers besides ``Nats-Msg-Id``."""

    def all_headers(self) -> dict[str, str]:
        return {**self.headers, HEADER_MSG_ID: self.msg_id}


class Publisher(Protocol):
    """Writes to NATS: stored messages (JetStream) and notices (core NATS, no stream)."""

    async def publish(self, message: Outgoing, *, timeout: float | None = None) -> Ack:
        """Store one message and wait for the stream to confirm it."""
        ...

    async def publish_all(
        self, messages: Sequence[Outgoing], *, timeout: float
    ) -> list[Ack | None]:
        """Send every message first, then await the confirmations together: one per message,
        None where none came within ``timeout`` (stored or not, nobody can say)."""
        ...

    async def publish_atomic(
        self, messages: Sequence[Outgoing], *, timeout: float
    ) -> list[Ack | None] | None:
        """Store ``messages`` as one atomic batch, at consecutive seqs, or not at all.

        None when the stream refuses the batch (an id already stored, atomic batches not
        enabled): the caller then uses ``publish_all``. A None per message when no answer
        came: unknown."""
        ...

    async def notify(self, subject: str, data: bytes) -> None:
        """Send a notice on core NATS (no stream, no confirmation): a hint such as a change
        notice, which nobody may rely on."""
        ...


def _ack(ack: PubAck) -> Ack:
    return Ack(stream=ack.stream, seq=ack.seq, duplicate=bool(ack.duplicate))


class JetStreamPublisher:
    """``Publisher`` over a nats-py connection."""

    def __init__(self, nc: NatsClient) -> None:
        self._nc: NatsClient | None = nc
        self._js = nc.jetstream()
        self._atomic = True
        """False once a stream said it takes no atomic batches: no more asking."""

    @classmethod
    def for_stream(cls, js: JetStreamContext) -> JetStreamPublisher:
        """One that has only a JetStream context (no connection of its own): it stores
        messages (``publish``, ``publish_all``) but sends no atomic batch (``None``: the
        caller publishes each) and no notice."""
        publisher = cls.__new__(cls)
        publisher._nc, publisher._js, publisher._atomic = None, js, False
        return publisher

    def _connection(self) -> NatsClient:
        if self._nc is None:
            raise RuntimeError("this publisher has no NATS connection: build it with one")
        return self._nc

    async def publish(self, message: Outgoing, *, timeout: float | None = None) -> Ack:
        ack = await self._js.publish(
            message.subject, message.data, timeout=timeout, headers=message.all_headers()
        )
        return _ack(ack)

    async def publish_all(
        self, messages: Sequence[Outgoing], *, timeout: float
    ) -> list[Ack | None]:
        futures: list[asyncio.Future[PubAck] | None] = []
        for message in messages:
            try:
                futures.append(
                    await self._js.publish_async(
                        message.subject,
                        message.data,
                        headers=message.all_headers(),
                        wait_stall=timeout,
                    )
                )
            except (nats.errors.Error, nats.js.errors.Error, OSError):
                futures.append(None)  # the connection is gone: this one was not sent
        pending = [f for f in futures if f is not None]
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        acks: list[Ack | None] = []
        for sent in futures:
            if sent is not None and sent.done() and not sent.cancelled() and not sent.exception():
                acks.append(_ack(sent.result()))
            else:
                if sent is not None:
                    sent.cancel()
                acks.append(None)
        return acks

    async def publish_atomic(
        self, messages: Sequence[Outgoing], *, timeout: float
    ) -> list[Ack | None] | None:
        """A JetStream atomic batch (``Nats-Batch-Id``/``-Sequence``/``-Commit``)."""
        if not messages:
            return []
        if not self._atomic:
            return None
        nc = self._connection()
        batch_id = uuid.uuid4().hex
        last = len(messages)
        try:
            for number, message in enumerate(messages[:-1], start=1):
                headers = {
                    **message.all_headers(),
                    "Nats-Batch-Id": batch_id,
                    "Nats-Batch-Sequence": str(number),
                }
                await nc.publish(message.subject, message.data, headers=headers)
            final = messages[-1]
            headers = {
                **final.all_headers(),
                "Nats-Batch-Id": batch_id,
                "Nats-Batch-Sequence": str(last),
                "Nats-Batch-Commit": "1",
            }
            reply = await nc.request(final.subject, final.data, timeout=timeout, headers=headers)
            answer = msgspec.json.decode(reply.data)
        except (nats.errors.Error, nats.js.errors.Error, OSError, msgspec.DecodeError) as exc:
            # Stored or not, nobody can say: the caller answers "unavailable" and a resend
            # publishes one by one, where the duplicate window answers exactly.
            log.info("atomic batch not confirmed: %r", exc)
            return [None] * last
        error = answer.get("error") if isinstance(answer, dict) else None
        if error is not None or answer.get("count") != last:
            code = (error or {}).get("err_code")
            if code in _ATOMIC_DISABLED or (error is None and "batch" not in answer):
                # This stream (or a server before 2.12, which stores batch messages one by
                # one and answers the commit like any publish) does not take atomic batches.
                self._atomic = False
            if code != _ATOMIC_DUPLICATE:
                log.warning("atomic batch refused (%s): publishing one by one", error or answer)
            return None
        first = int(answer["seq"]) - last + 1
        stream = str(answer["stream"])
        return [Ack(stream=stream, seq=first + offset) for offset in range(last)]

    async def notify(self, subject: str, data: bytes) -> None:
        await self._connection().publish(subject, data)
