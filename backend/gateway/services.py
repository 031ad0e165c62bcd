"""What the gateway's routes do: registration by a board's owner, the delivery log, and
inbound deliveries translated into events.

Registration lives in the gateway's own database. Who owns a board is the BFF's to say
(its board authority, folded from every accepted event), so the service reads that one
table of the BFF's database and writes nothing there. Inbound events go through the
backend writer (``EventWriter``: the push decision path, with the id record, the
authority of the source's owner and the per-board serialization).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Mapping
from typing import Any

import msgspec
import nats.errors
from nats.aio.client import Client as NatsClient
from sqlalchemy import delete, func, insert, select, update

from backend.bff.owners import board_owner
from backend.db import Database, upsert
from backend.errors import BadRequest, StreamUnavailable
from backend.gateway.allow import AllowList
from backend.gateway.component import WAKE_SUBJECT
from backend.gateway.errors import DeliveryUnreadable, NotBoardOwner, NotRegistered
from backend.gateway.models import (
    Attempt,
    Delivery,
    Endpoint,
    InboundSource,
    Login,
    started_again,
)
from backend.gateway.schemas import (
    DeliveryInfo,
    EndpointCreated,
    EndpointInfo,
    InboundResult,
    LoginInfo,
    SourceCreated,
    SourceInfo,
    Try,
    WrittenEvent,
)
from backend.gateway.signatures import new_secret
from backend.gateway.sources import SOURCES
from backend.gateway.sources.common import Delivery as InboundDelivery
from backend.writer import EventWriter
from protocol import is_uuid
from protocol.ids import new_id
from protocol.merge import EntityState

__all__ = ["GatewayService"]

_state_decoder = msgspec.json.Decoder(EntityState)
_LOGIN_MAX = 100


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def inbound_path(source: str, board: str) -> str:
    return f"/v1/inbound/{source}/{board}"


class GatewayService:
    def __init__(
        self,
        db: Database,
        bff_db: Database,
        allow: AllowList,
        writer: EventWriter | None,
        *,
        nc: NatsClient | None = None,
    ) -> None:
        self.db = db
        self._bff_db = bff_db
        self._allow = allow
        self._writer = writer
        self._nc = nc
        """Where a redelivery wakes the gateway, in whichever process it runs."""

    async def queue(self) -> dict[str, int]:
        """Deliveries by status, for the health and the metrics."""
        counts = {"pending": 0, "delivered": 0, "failed": 0}
        async with self.db.read() as conn:
            for row in await conn.execute(
                select(Delivery.status, func.count()).group_by(Delivery.status)
            ):
                counts[row[0]] = int(row[1])
        return counts

    # -- owners ---------------------------------------------------------------------------

    async def _require_owner(self, board: str, username: str) -> None:
        owner = await board_owner(self._bff_db, board)
        if owner is None:
            raise NotRegistered(f"no board {board}")
        if owner != username:
            raise NotBoardOwner("only the board's owner manages its webhooks and sources")

    # -- outbound endpoints ---------------------------------------------------------------

    async def add_endpoint(self, username: str, board: str, url: str) -> EndpointCreated:
        await self._require_owner(board, username)
        await self._allow.check(url)
        endpoint = EndpointCreated(
            id=new_id(), board=board, url=url, secret=new_secret(), created_at=_now_ms()
        )
        async with self.db.write() as conn:
            await conn.execute(
                insert(Endpoint).values(
                    **msgspec.structs.asdict(endpoint), owner=username, paused_until=0
                )
            )
        return endpoint

    async def list_endpoints(self, username: str, board: str) -> list[EndpointInfo]:
        await self._require_owner(board, username)
        async with self.db.read() as conn:
            endpoints = list(
                await conn.execute(
                    select(Endpoint).where(Endpoint.board == board).order_by(Endpoint.created_at)
                )
            )
            counts: dict[tuple[str, str], int] = {}
            for row in await conn.execute(
                select(Delivery.endpoint, Delivery.status, func.count())
                .where(Delivery.board == board)
                .group_by(Delivery.endpoint, Delivery.status)
            ):
                counts[(row[0], row[1])] = int(row[2])
        return [
            EndpointInfo(
                id=e.id,
                board=e.board,
                url=e.url,
                created_at=e.created_at,
                pending=counts.get((e.id, "pending"), 0),
                delivered=counts.get((e.id, "delivered"), 0),
                failed=counts.get((e.id, "failed"), 0),
            )
            for e in endpoints
        ]

    async def remove_endpoint(self, username: str, board: str, endpoint: str) -> None:
        await self._require_owner(board, username)
        async with self.db.write() as conn:
            await self._endpoint(conn, board, endpoint)
            ids = select(Delivery.id).where(Delivery.endpoint == endpoint)
            await conn.execute(delete(Attempt).where(Attempt.delivery.in_(ids)))
            await conn.execute(delete(Delivery).where(Delivery.endpoint == endpoint))
            await conn.execute(delete(Endpoint).where(Endpoint.id == endpoint))

    async def deliveries(
        self, username: str, board: str, endpoint: str, limit: int
    ) -> list[DeliveryInfo]:
        """The endpoint's latest deliveries, newest first, each with its tries."""
        await self._require_owner(board, username)
        async with self.db.read() as conn:
            await self._endpoint(conn, board, endpoint)
            rows = list(
                await conn.execute(
                    select(Delivery)
                    .where(Delivery.endpoint == endpoint)
                    .order_by(Delivery.seq.desc(), Delivery.id)
                    .limit(limit)
                )
            )
            tries: dict[str, list[Try]] = {}
            if rows:
                for a in await conn.execute(
                    select(Attempt)
                    .where(Attempt.delivery.in_([r.id for r in rows]))
                    .order_by(Attempt.id)
                ):
                    tries.setdefault(a.delivery, []).append(
                        Try(at=a.at, status=a.status, error=a.error, duration_ms=a.duration_ms)
                    )
        return [
            DeliveryInfo(
                id=r.id,
                event_id=r.event_id,
                event_type=r.event_type,
                seq=r.seq,
                status=r.status,
                attempts=r.attempts,
                next_at=r.next_at if r.status == "pending" else None,
                created_at=r.created_at,
                done_at=r.done_at,
                last_status=r.last_status,
                last_error=r.last_error,
                tries=tries.get(r.id, []),
            )
            for r in rows
        ]

    async def redeliver(self, username: str, board: str, endpoint: str, delivery: str) -> None:
        """Send one delivery again, now, with a fresh schedule (same ``webhook-id``)."""
        await self._require_owner(board, username)
        now = _now_ms()
        async with self.db.write() as conn:
            await self._endpoint(conn, board, endpoint)
            result = await conn.execute(
                update(Delivery)
                .where(Delivery.id == delivery, Delivery.endpoint == endpoint)
                .values(started_again(now))
            )
            if result.rowcount != 1:
                raise NotRegistered(f"no delivery {delivery} to endpoint {endpoint}")
            await conn.execute(
                update(Endpoint).where(Endpoint.id == endpoint).values(paused_until=0)
            )
        if self._nc is not None:
            with contextlib.suppress(nats.errors.Error):  # else it looks within a second
                await self._nc.publish(WAKE_SUBJECT, b"")

    async def _endpoint(self, conn: Any, board: str, endpoint: str) -> None:
        found = (
            await conn.execute(
                select(Endpoint.id).where(Endpoint.id == endpoint, Endpoint.board == board)
            )
        ).scalar()
        if found is None:
            raise NotRegistered(f"no webhook {endpoint} on board {board}")

    # -- inbound sources and the login map ------------------------------------------------

    async def register_source(self, username: str, board: str, source: str) -> SourceCreated:
        """Register (or re-register, with a new secret) a source on a board."""
        if source not in SOURCES:
            raise NotRegistered(f"no source {source!r}: choose from {', '.join(SOURCES)}")
        await self._require_owner(board, username)
        created = SourceCreated(
            source=source, board=board, secret=new_secret(), path=inbound_path(source, board)
        )
        row = {
            "board": board,
            "source": source,
            "owner": username,
            "secret": created.secret,
            "created_at": _now_ms(),
        }
        async with self.db.write() as conn:
            await upsert(conn, InboundSource, [row], ["board", "source"])
        return created

    async def list_sources(self, username: str, board: str) -> list[SourceInfo]:
        await self._require_owner(board, username)
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(InboundSource)
                .where(InboundSource.board == board)
                .order_by(InboundSource.source)
            )
            return [
                SourceInfo(
                    source=r.source,
                    board=r.board,
                    owner=r.owner,
                    created_at=r.created_at,
                    path=inbound_path(r.source, r.board),
                )
                for r in rows
            ]

    async def remove_source(self, username: str, board: str, source: str) -> None:
        await self._require_owner(board, username)
        async with self.db.write() as conn:
            result = await conn.execute(
                delete(InboundSource).where(
                    InboundSource.board == board, InboundSource.source == source
                )
            )
            if result.rowcount != 1:
                raise NotRegistered(f"no source {source!r} on board {board}")

    async def map_login(self, username: str, board: str, login: str, target: str) -> LoginInfo:
        await self._require_owner(board, username)
        key = _login_key(login)
        async with self.db.write() as conn:
            await upsert(
                conn,
                Login,
                [{"board": board, "login": key, "username": target}],
                ["board", "login"],
            )
        return LoginInfo(login=key, username=target)

    async def list_logins(self, username: str, board: str) -> list[LoginInfo]:
        await self._require_owner(board, username)
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(Login.login, Login.username)
                .where(Login.board == board)
                .order_by(Login.login)
            )
            return [LoginInfo(login=r.login, username=r.username) for r in rows]

    async def unmap_login(self, username: str, board: str, login: str) -> None:
        await self._require_owner(board, username)
        async with self.db.write() as conn:
            result = await conn.execute(
                delete(Login).where(Login.board == board, Login.login == _login_key(login))
            )
            if result.rowcount != 1:
                raise NotRegistered(f"no login {login!r} mapped on board {board}")

    # -- inbound deliveries ---------------------------------------------------------------

    async def receive(
        self, source_name: str, board: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, InboundResult]:
        """Verify, translate and write one delivery: (HTTP status, what happened)."""
        source = SOURCES.get(source_name)
        if source is None or not is_uuid(board):
            raise NotRegistered(f"no source {source_name!r} on board {board}")
        async with self.db.read() as conn:
            registered = (
                await conn.execute(
                    select(InboundSource).where(
                        InboundSource.board == board, InboundSource.source == source_name
                    )
                )
            ).first()
            usernames = {
                r.login: r.username
                for r in await conn.execute(select(Login).where(Login.board == board))
            }
        if registered is None:
            raise NotRegistered(f"no source {source_name!r} on board {board}")
        delivery_id = source.verify(registered.secret, body, headers)
        try:
            parsed = json.loads(body)
        except ValueError as exc:
            raise DeliveryUnreadable(f"the body is not JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise DeliveryUnreadable("the body must be a JSON object")
        delivery = InboundDelivery(
            source=source_name,
            board=board,
            delivery_id=delivery_id,
            kind=source.kind(parsed, headers),
            body=parsed,
            usernames=usernames,
        )
        mapped = source.translate(delivery)
        if not mapped.events:
            return 202, InboundResult(delivery_id, "ignored", detail=mapped.ignored)
        if self._writer is None:
            raise StreamUnavailable(
                "the backend writer is not available in this process", retry_after=5
            )
        results = await self._writer.write(mapped.events, on_behalf_of=registered.owner)
        written = [
            WrittenEvent(
                id=r.id, type=e.type, status=r.status, seq=r.seq, reason=r.reason, detail=r.detail
            )
            for e, r in zip(mapped.events, results, strict=True)
        ]
        statuses = {w.status for w in written}
        if "accepted" in statuses:
            status = "written"
        elif "rejected" in statuses:
            status = "rejected"
        else:
            status = "duplicate"
        return 200, InboundResult(delivery_id, status, written)


def _login_key(login: str) -> str:
    key = login.strip().lower()
    if not key or len(key) > _LOGIN_MAX:
        raise BadRequest(f"login {login!r}: 1..{_LOGIN_MAX} characters")
    return key
