"""The ``gateway`` component: outbound webhooks, queued in its database and sent apart.

Two loops, so that a receiver that is down never slows the stream:

- **Enqueue** (the shared ``ConsumerRunner``): for each event of a board with endpoints,
  one ``Delivery`` row per endpoint, written in the same transaction as the consumer's
  position. No network here: the batch commits at once, whatever the receivers do.
- **Send** (``run_beside``): per endpoint, its due deliveries in stream order, signed per
  Standard Webhooks and posted with httpx. A 2xx is delivered; anything else (another
  status, no answer, a target the allow-list now refuses) is tried again after the next
  wait of ``OUTPOST_WEBHOOK_RETRY_S``, and the endpoint is paused until then (its later
  deliveries wait behind: a board's changes arrive in order). Past the last wait the
  delivery is ``failed`` and faulted on ``OUTPOST_FAULTS`` (``outpost.faults.gateway``),
  its event as the fault's data, and the endpoint goes on with the next delivery.
  ``outpost faults resubmit`` sends the event back to this component, which puts its
  failed deliveries back in the queue with a fresh schedule.

An endpoint is claimed (``paused_until`` set ahead, row by row) before it is sent to, so
two processes never send to one endpoint at once. Every try is logged (``Attempt``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.consumers.component import BackgroundWork, Outcome
from backend.db import Database, insert_ignore
from backend.faults.events import FaultEvent
from backend.gateway.allow import AllowList
from backend.gateway.errors import TargetRefused
from backend.gateway.models import Attempt, Delivery, Endpoint, positions, started_again
from backend.gateway.signatures import standard_headers
from backend.nats.publisher import Outgoing, Publisher
from backend.nats.streams import event_subject, fault_subject
from protocol import Event
from protocol.ids import derived_id, new_id

__all__ = ["DELIVERED_TYPES", "WAKE_SUBJECT", "Gateway", "delivery_id", "webhook_body"]

WAKE_SUBJECT = "outpost.gateway.wake"
"""A redelivery was asked for at a BFF: the gateway looks for due deliveries now, in
whichever process it runs (core NATS; a lost wake costs at most ``_IDLE_S``)."""

log = logging.getLogger(__name__)

DELIVERED_TYPES = frozenset(
    {
        "BoardCreated",
        "BoardUpdated",
        "MemberAdded",
        "MemberRemoved",
        "TaskCreated",
        "TaskUpdated",
        "TaskLabelAdded",
        "TaskLabelRemoved",
        "TaskDeleted",
        "TaskRestored",
        "CommentAdded",
        "CommentDeleted",
    }
)
"""What is sent: every change of a board and its tasks (not the saga's internal
``WipLimitExceeded``; its compensation, a ``TaskUpdated``, is sent)."""

_ENDPOINTS_AT_ONCE = 16
_PER_ENDPOINT = 50
_IDLE_S = 1.0
"""The longest the send loop sleeps when nothing is due (new work wakes it at once)."""


def delivery_id(event_id: str, endpoint: str) -> str:
    """The ``webhook-id`` of one event to one endpoint: the same on every try."""
    return derived_id("webhook-delivery", f"{endpoint}:{event_id}")


def webhook_body(event: Event) -> str:
    """What is signed and sent: the Standard Webhooks payload shape, the event as ``data``."""
    when = datetime.fromtimestamp((event.received_at or 0) / 1000, tz=UTC)
    data = msgspec.to_builtins(event)
    body = {"type": event.type, "timestamp": when.isoformat().replace("+00:00", "Z"), "data": data}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Gateway(BackgroundWork):
    name = "gateway"
    serves_pull = False
    positions = positions

    def __init__(
        self,
        db: Database,
        publisher: Publisher,
        *,
        allow: AllowList,
        retries: Sequence[float],
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        nc: NatsClient | None = None,
    ) -> None:
        self.db = db
        self._nc = nc
        """Where a redelivery asked at any BFF wakes it (``WAKE_SUBJECT``)."""
        self.publisher = publisher
        self.allow = allow
        self.retries = tuple(retries)
        self.timeout_s = timeout_s
        self._transport = transport
        self._wake = asyncio.Event()
        self.sent = 0
        self.failed_tries = 0
        self.faulted = 0

    async def prepare(self) -> None:
        await self.db.migrate()

    async def start_over(self, conn: AsyncConnection) -> None:
        # The queue and log stay: a replay derives the same delivery ids and adds nothing.
        await conn.execute(delete(positions))

    # -- enqueue (inside the runner's transaction) -----------------------------------------

    async def handle(self, conn: AsyncConnection, events: list[Event]) -> Outcome:
        relevant = [e for e in events if e.type in DELIVERED_TYPES]
        if not relevant:
            return Outcome()
        boards = {e.board for e in relevant}
        rows = await conn.execute(
            select(Endpoint.id, Endpoint.board, Endpoint.created_at).where(
                Endpoint.board.in_(boards)
            )
        )
        endpoints: dict[str, list[tuple[str, int]]] = {}
        for row in rows:
            endpoints.setdefault(row.board, []).append((row.id, row.created_at))
        now = _now_ms()
        queued: list[dict[str, Any]] = []
        for event in relevant:
            for endpoint, created_at in endpoints.get(event.board, []):
                if (event.received_at or now) < created_at:
                    continue  # decided before the endpoint was registered
                queued.append(
                    {
                        "id": delivery_id(event.id, endpoint),
                        "endpoint": endpoint,
                        "board": event.board,
                        "event_id": event.id,
                        "event_type": event.type,
                        "seq": event.seq or 0,
                        "subject": event_subject(event.board),
                        "body": webhook_body(event),
                        "status": "pending",
                        "attempts": 0,
                        "next_at": now,
                        "created_at": now,
                    }
                )
        if queued:
            await insert_ignore(conn, Delivery.__table__, queued, ["id"])
            # A resubmitted fault: its failed deliveries start a fresh schedule.
            await conn.execute(
                update(Delivery)
                .where(Delivery.id.in_([q["id"] for q in queued]), Delivery.status == "failed")
                .values(started_again(now))
            )
            self._wake.set()
        return Outcome()

    # -- send (beside the runner) ----------------------------------------------------------

    async def run_beside(self, stop: asyncio.Event) -> None:
        """Send due deliveries until ``stop``; survives its database being away."""
        async with contextlib.AsyncExitStack() as stack:
            client = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=self._transport, timeout=self.timeout_s, follow_redirects=False
                )
            )
            if self._nc is not None:
                try:
                    woken = await self._nc.subscribe(WAKE_SUBJECT, cb=self._woken)
                except nats.errors.Error as exc:  # NATS closed: the idle rounds still send
                    log.warning("gateway: no wake-ups from the BFFs: %r", exc)
                else:
                    stack.push_async_callback(_unsubscribe, woken)
            while not stop.is_set():
                busy = await self._round(client, stop)
                if busy:
                    continue
                self._wake.clear()
                waits = [asyncio.create_task(stop.wait()), asyncio.create_task(self._wake.wait())]
                await asyncio.wait(waits, timeout=_IDLE_S, return_when=asyncio.FIRST_COMPLETED)
                for task in waits:
                    task.cancel()

    async def _round(self, client: httpx.AsyncClient, stop: asyncio.Event) -> bool:
        """One ``send_due``, cut short by ``stop``: a receiver that hangs never holds up a
        shutdown (the try it was on stays pending, and its endpoint is released)."""
        work = asyncio.create_task(self.send_due(client))
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not work.done():
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
            return False
        try:
            return work.result()
        except Exception:  # the database away, say: try again shortly
            log.exception("gateway: sending webhooks failed; retrying")
            return False

    async def send_due(self, client: httpx.AsyncClient) -> bool:
        """One round: every endpoint with due deliveries sends them. Whether any was sent."""
        claimed = await self._claim(_now_ms())
        if not claimed:
            return False
        gate = asyncio.Semaphore(_ENDPOINTS_AT_ONCE)

        async def one(endpoint: Endpoint) -> None:
            async with gate:
                await self._send_endpoint(client, endpoint)

        await asyncio.gather(*(one(e) for e in claimed))
        return True

    async def _claim(self, now: int) -> list[Endpoint]:
        """The endpoints with due deliveries that no one sends to now, claimed for us."""
        lease = now + int((self.timeout_s + 5) * 1000 * _PER_ENDPOINT)
        due = select(Delivery.endpoint).where(Delivery.status == "pending", Delivery.next_at <= now)
        ready = select(Endpoint).where(Endpoint.id.in_(due), Endpoint.paused_until <= now)
        async with self.db.read() as conn:  # idle most of the time: no write lock for nothing
            endpoints = [Endpoint(**row._asdict()) for row in await conn.execute(ready)]
        if not endpoints:
            return []
        async with self.db.write() as conn:
            claimed = []
            for endpoint in endpoints:
                result = await conn.execute(
                    update(Endpoint)
                    .where(Endpoint.id == endpoint.id, Endpoint.paused_until <= now)
                    .values(paused_until=lease)
                )
                if result.rowcount == 1:
                    claimed.append(endpoint)
        return claimed

    async def _send_endpoint(self, client: httpx.AsyncClient, endpoint: Endpoint) -> None:
        now = _now_ms()
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(Delivery)
                .where(
                    Delivery.endpoint == endpoint.id,
                    Delivery.status == "pending",
                    Delivery.next_at <= now,
                )
                .order_by(Delivery.seq, Delivery.id)
                .limit(_PER_ENDPOINT)
            )
            deliveries = [Delivery(**row._asdict()) for row in rows]
        paused_until = 0
        try:
            for delivery in deliveries:
                status, error, took = await self._try(client, endpoint, delivery)
                retry_at = await self._record(delivery, status, error, took)
                if retry_at is not None:
                    paused_until = retry_at  # the rest wait behind it, in order
                    break
        finally:  # released (also when stopped mid-try): the claim only outlives a crash
            async with self.db.write() as conn:
                await conn.execute(
                    update(Endpoint)
                    .where(Endpoint.id == endpoint.id)
                    .values(paused_until=paused_until)
                )

    async def _try(
        self, client: httpx.AsyncClient, endpoint: Endpoint, delivery: Delivery
    ) -> tuple[int | None, str | None, int]:
        started = time.monotonic()
        body = delivery.body.encode()
        try:
            await self.allow.check(endpoint.url)
            headers = standard_headers(endpoint.secret, delivery.id, int(time.time()), body)
            headers["content-type"] = "application/json"
            headers["user-agent"] = "outpost-webhooks/1"
            reply = await client.post(endpoint.url, content=body, headers=headers)
        except TargetRefused as exc:
            return None, exc.detail, _ms_since(started)
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}".rstrip(": "), _ms_since(started)
        took = _ms_since(started)
        if 200 <= reply.status_code < 300:
            return reply.status_code, None, took
        return reply.status_code, f"HTTP {reply.status_code}: {reply.text[:200]}", took

    async def _record(
        self, delivery: Delivery, status: int | None, error: str | None, took: int
    ) -> int | None:
        """Log one try and move the delivery on; the time of its retry, if it has one. A
        delivery reset while it was tried (a redelivery asked for meanwhile) keeps its new
        schedule: the try is logged, and it is sent again."""
        now = _now_ms()
        attempts = delivery.attempts + 1
        values: dict[str, Any] = {"attempts": attempts, "last_status": status, "last_error": error}
        retry_at: int | None = None
        fault: FaultEvent | None = None
        if error is None:
            values.update(status="delivered", done_at=now)
        elif attempts > len(self.retries):
            values.update(status="failed", done_at=now)
            fault = self._fault(delivery, attempts, error, now)
        else:
            retry_at = now + int(self.retries[attempts - 1] * 1000)
            values["next_at"] = retry_at
        if error is not None:
            self.failed_tries += 1
            log.info("gateway: delivery %s try %d failed: %s", delivery.id, attempts, error)
        async with self.db.write() as conn:
            await conn.execute(
                insert(Attempt).values(
                    id=new_id(now),
                    delivery=delivery.id,
                    at=now,
                    status=status,
                    error=error,
                    duration_ms=took,
                )
            )
            moved = await conn.execute(
                update(Delivery)
                .where(
                    Delivery.id == delivery.id,
                    Delivery.status == "pending",
                    Delivery.attempts == delivery.attempts,
                    Delivery.next_at == delivery.next_at,
                )
                .values(values)
            )
            if moved.rowcount != 1:
                log.info("gateway: delivery %s was reset during its try: sent again", delivery.id)
                return None
            if error is None:
                self.sent += 1
            if fault is not None:  # before the commit: if it is not stored, it is tried again
                await self.publisher.publish(
                    Outgoing(
                        fault_subject(self.name),
                        msgspec.json.encode(fault),
                        f"{self.name}:delivery:{delivery.id}:{now}",
                    )
                )
                self.faulted += 1
        return retry_at

    def _fault(self, delivery: Delivery, attempts: int, error: str, now: int) -> FaultEvent:
        event = json.loads(delivery.body)["data"]
        return FaultEvent(
            component=self.name,
            seq=delivery.seq,
            subject=delivery.subject,
            error=f"webhook delivery {delivery.id} to endpoint {delivery.endpoint} failed "
            f"{attempts} times, its schedule exhausted; last: {error}",
            deliveries=attempts,
            event_id=delivery.event_id,
            data=base64.b64encode(json.dumps(event, separators=(",", ":")).encode()).decode(),
            at=now,
        )

    async def _woken(self, _msg: Msg) -> None:
        """A redelivery was asked for at a BFF (``WAKE_SUBJECT``): look for due ones now."""
        self._wake.set()


async def _unsubscribe(subscription: Subscription) -> None:
    with contextlib.suppress(nats.errors.Error):
        await subscription.unsubscribe()


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
