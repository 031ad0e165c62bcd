"""Push: validate, authorize and durably store a batch of device events.

For each event, in order: its bytes and what later stages need (``intake``: a subject
token, keys that fit their columns), validation by ``protocol`` (``invalid``,
``unknown_type``, ``unsupported_schema``, ``forbidden``), the id record (``duplicate`` with
its first seq, or ``id_conflict``), the clock (``clock_skew``), then authorization against
everything accepted before, earlier events of this batch included. The accepted events are
published together, each with ``Nats-Msg-Id`` set to its id, and only then are their
acknowledgements awaited. All of it happens under the batch's board locks, in one
transaction of the BFF's database, so decisions on one board are serialized across BFF
processes. Only accepted events write anything: a rejected one leaves no board row, no
binding and no device claim.

Decisions are written ahead of publishing; if the stream fails mid-batch, the device gets
503 with Retry-After, and its resend publishes the same events again without deciding
again: what the stream had stored comes back as ``duplicate`` with its first seq.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from backend import direct, hops
from backend.bff.auth.tokens import Principal
from backend.bff.models import (
    BoardAuthority,
    Device,
    EntityBinding,
    EventRecord,
    MemberAuthority,
    User,
)
from backend.bff.sync.authority import Authority, Binding
from backend.bff.sync.intake import check_usable, read_device_event
from backend.bff.sync.schemas import PushRequest, PushResult
from backend.consumers.batches import keep_decoded
from backend.consumers.passed import Passed
from backend.db import Database, insert_ignore, upsert
from backend.errors import BackendError, StreamUnavailable, UnprocessableBatch
from backend.nats.publisher import Ack, Outgoing, Publisher
from backend.nats.streams import event_subject
from protocol import (
    Event,
    EventRejected,
    Reason,
    Writer,
    encode_event,
    event_hash,
    parse_hlc,
    validate_event,
)
from protocol.catalog import CommentAdded, MemberAdded
from protocol.ids import BACKEND_ID_VERSION, uuid_version
from protocol.merge import EntityState

_state_decoder = msgspec.json.Decoder(EntityState)

log = logging.getLogger(__name__)

SEQS_LATER_S = 0.25
"""How long after a push the BFF writes the stream's seqs of its events (``PushService``'s
``seqs_later_s``): pushes of the moment share one write, made while no action's projector
batch is likely to be waiting for the loop."""

SHOWN_WAIT_S = 0.05
"""How long an interactive push waits for the projector beside the BFF to show its events
(``PushService``'s ``shown``) before it answers anyway."""

SHOWN_WAIT_MAX_EVENTS = 20
"""Pushes of up to this many events wait for the projector: an action's few. A device
draining a backlog sends hundreds at a time, and goes on with its next batch at once."""

_DECIDE_ATTEMPTS = 3
"""Decisions made again when another push took the same ids first (``_LostRace``)."""


@dataclass
class _Candidate:
    index: int
    event: Event
    hash: str


def system_ms() -> int:
    return time.time_ns() // 1_000_000


class PushService:
    def __init__(
        self,
        db: Database,
        publisher: Publisher,
        *,
        max_batch_events: int = 500,
        max_clock_skew_ms: int = 300_000,
        publish_timeout_s: float = 5.0,
        clock: Callable[[], int] = system_ms,
        seqs_later_s: float = 0.0,
        hand_over: bool = True,
        shown: Passed | None = None,
    ) -> None:
        """``seqs_later_s``: write the stream's seqs of accepted events that long after the
        push (together with any others by then) instead of before its answer; 0 writes them
        before the answer. ``close`` writes what is still waiting. ``hand_over``: keep each
        event written for this process's consumers (``batches.keep_decoded``); a BFF with no
        consumer beside it (the cluster's) would only fill memory with them. ``shown``:
        how far the projector beside this BFF has passed; a push of a few events answers
        once it is past them (up to ``SHOWN_WAIT_S``), if it was caught up to them."""
        self._db = db
        self._publisher = publisher
        self._max_batch_events = max_batch_events
        self._max_skew_ms = max_clock_skew_ms
        self._publish_timeout_s = publish_timeout_s
        self._clock = clock
        self._seqs_later_s = seqs_later_s
        self._hand_over = hand_over
        self._shown = shown
        self._seqs: dict[str, int] = {}
        """Event id -> its stream seq, stored but not yet written to the id record."""
        self._seqs_writer: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()

    async def push(self, principal: Principal, request: PushRequest) -> list[PushResult]:
        if not 1 <= len(request.events) <= self._max_batch_events:
            raise UnprocessableBatch(
                f"a batch holds 1..{self._max_batch_events} events, not {len(request.events)}"
            )
        arrived = hops.now()
        results: list[PushResult | None] = [None] * len(request.events)
        events: dict[int, _Candidate] = {}
        for index, raw in enumerate(request.events):
            try:
                event = read_device_event(raw)
                check_usable(event)
            except EventRejected as rejected:
                event_id = rejected.event_id or ""
                results[index] = _rejected(event_id, rejected.reason, rejected.detail)
                continue
            stamped = msgspec.structs.replace(event, actor=principal.username)  # from the token
            events[index] = _Candidate(index, stamped, event_hash(event))
        if hops.enabled():
            hops.mark("push.received", (c.event.id for c in events.values()), at=arrived)
        failure: StreamUnavailable | None = None
        if events:
            failure = await self._decide_and_publish(
                principal.username, request.device, events, results
            )
        if failure is not None:
            raise failure
        return [r for r in results if r is not None]

    async def write_as_backend(
        self, events: Sequence[Event], on_behalf_of: str
    ) -> list[PushResult]:
        """Decide and store events the backend writes on behalf of ``on_behalf_of`` (see
        ``backend.writer.BackendWriter``): the same decisions as a device's push, but
        validated as the backend's (version 5 ids derived from their cause) and with no
        device of the user's checked or claimed. A stream failure raises StreamUnavailable
        after the decisions are written: writing the same events again is safe."""
        results: list[PushResult | None] = [None] * len(events)
        candidates: dict[int, _Candidate] = {}
        for index, given in enumerate(events):
            try:
                raw = msgspec.json.decode(encode_event(given))
                event = validate_event(raw, Writer.BACKEND)
                check_usable(event)
                if uuid_version(event.id) != BACKEND_ID_VERSION:
                    raise EventRejected(
                        Reason.INVALID,
                        "id: the backend writes version 5 ids, derived from what caused them",
                    )
            except EventRejected as rejected:
                results[index] = _rejected(given.id, rejected.reason, rejected.detail)
                continue
            stamped = msgspec.structs.replace(event, actor=on_behalf_of, seq=None, received_at=None)
            candidates[index] = _Candidate(index, stamped, event_hash(stamped))
        failure: StreamUnavailable | None = None
        if candidates:
            failure = await self._decide_and_publish(on_behalf_of, None, candidates, results)
        if failure is not None:
            raise failure
        return [r for r in results if r is not None]

    async def _decide_and_publish(
        self,
        username: str,
        device: str | None,
        candidates: dict[int, _Candidate],
        results: list[PushResult | None],
    ) -> StreamUnavailable | None:
        """Decide under the board locks and write the decisions ahead, then publish.

        Each accepted event's id record is committed (without a seq) before it is
        published: if the stream stores it but the answer is lost (a crash, NATS back
        after a 503), the resend finds the record and publishes again without deciding
        again, and the stream's duplicate window answers with the first seq.
        """
        now = self._clock()
        for attempt in range(1, _DECIDE_ATTEMPTS + 1):
            try:
                async with self._db.write() as conn:
                    decisions = await self._decide(conn, username, device, candidates, results, now)
                break
            except _LostRace as race:
                # Another process committed the same event id, entity binding or device
                # in the meantime (this transaction is rolled back, nothing written):
                # decide again, now seeing what it committed.
                log.info("push decided again (attempt %d): %s", attempt, race)
        else:
            return StreamUnavailable(
                "the same ids are being pushed from elsewhere at this moment: resend",
                retry_after=1,
            )
        to_publish, decided, first_in_batch = decisions
        if hops.enabled():
            hops.mark("push.decided", (c.event.id for c in to_publish))
        acks = await self._publish(to_publish, now, all_new=len(decided) == len(to_publish))
        stored = [(c, ack) for c, ack in zip(to_publish, acks, strict=True) if ack is not None]
        if hops.enabled():
            hops.mark("push.stored", (f"{c.event.id}@{ack.seq}" for c, ack in stored))
        if stored:
            await self._record_seqs({c.event.id: ack.seq for c, ack in stored})
            await self._wait_shown([ack.seq for _, ack in stored], len(candidates))
        for candidate, ack in stored:
            status = "duplicate" if ack.duplicate else "accepted"
            results[candidate.index] = PushResult(candidate.event.id, status, seq=ack.seq)
        for candidate in candidates.values():
            first = first_in_batch.get(candidate.event.id)
            if results[candidate.index] is None and first is not None and first is not candidate:
                results[candidate.index] = _repeat_of(results[first.index], candidate.event.id)
        if len(stored) < len(to_publish):
            return StreamUnavailable(
                "the event stream is unavailable: resend the same events unchanged",
                retry_after=2,
            )
        return None

    async def _decide(
        self,
        conn: AsyncConnection,
        username: str,
        device: str | None,
        candidates: dict[int, _Candidate],
        results: list[PushResult | None],
        now: int,
    ) -> tuple[list[_Candidate], list[_Candidate], dict[str, _Candidate]]:
        """Every candidate decided under the board locks, the decisions written: what to
        publish, what was newly decided, and the first candidate of each event id."""
        to_publish: list[_Candidate] = []
        decided: list[_Candidate] = []
        first_in_batch: dict[str, _Candidate] = {}
        for candidate in candidates.values():
            results[candidate.index] = None  # a decision made again starts afresh
        authority, lock_rows = await _load_authority(conn, device, candidates.values())
        by_device = device is not None
        records = await _load_records(conn, [c.event.id for c in candidates.values()])
        # A device's push: the device in the body must be the user's. The backend writing
        # on a user's behalf (device None) neither checks nor claims devices.
        body_denial = None if device is None else authority.check_device(device, username)
        for candidate in candidates.values():
            event = candidate.event
            earlier = first_in_batch.get(event.id)
            if earlier is not None:
                if earlier.hash != candidate.hash:
                    results[candidate.index] = _conflict(event.id)
                continue  # a repeat inside the batch is answered like the first
            first_in_batch[event.id] = candidate
            known = records.get(event.id)
            if known is not None:
                if known.actor != username or known.hash != candidate.hash:
                    results[candidate.index] = _conflict(event.id)
                elif known.seq is not None or event.id in self._seqs:
                    seq = known.seq if known.seq is not None else self._seqs[event.id]
                    results[candidate.index] = PushResult(event.id, "duplicate", seq=seq)
                else:
                    to_publish.append(candidate)  # decided before, not known stored
                continue
            ahead = parse_hlc(event.hlc).wall - now
            if ahead > self._max_skew_ms:
                results[candidate.index] = _rejected(
                    event.id, Reason.CLOCK_SKEW, f"hlc is {ahead} ms ahead of the server"
                )
                continue
            denial = body_denial or authority.decide(event, username, by_device=by_device)
            if denial is not None:
                results[candidate.index] = _rejected(event.id, denial.reason, denial.detail)
                continue
            authority.accept(event, username, by_device=by_device)
            decided.append(candidate)
            to_publish.append(candidate)
        if decided and device is not None:  # claimed by an accepted event, never a rejected one
            authority.claim_device(device, username)
        await _save(conn, authority, decided, username)
        await _drop_unused_lock_rows(conn, lock_rows - authority.changed_boards)
        return to_publish, decided, first_in_batch

    async def _wait_shown(self, seqs: list[int], events: int) -> None:
        """An action's push waits until the projector beside this BFF has committed its
        events and handed their notice to the live hub: the other devices' pages are then
        written before this push's answer takes the loop, and the answer's watermark covers
        the action. Only if the projector was caught up to these events: one that is behind
        would keep the device waiting for the backlog."""
        shown = self._shown
        if shown is None or events > SHOWN_WAIT_MAX_EVENTS or shown.seq < min(seqs) - 1:
            return
        if not await shown.wait_past(max(seqs), SHOWN_WAIT_S):
            log.debug("the projector did not show seqs %s within %s s", seqs, SHOWN_WAIT_S)

    async def _record_seqs(self, seqs: dict[str, int]) -> None:
        """Write the stream's seqs into the id records: at once, or (``seqs_later_s``) a
        little later, many pushes' together, off the answer's way and out of the moment
        when the projector's fetch returns these same events (its transaction would hold
        the loop then). Until written, a resend of these events is answered from memory
        here; in another process, or after a crash, the record's empty seq means "decided,
        not known stored": the events are published again, and the stream's duplicate
        window answers with their first seq."""
        if self._seqs_later_s <= 0:
            await self._write_seqs(seqs)
            return
        self._seqs.update(seqs)
        if self._seqs_writer is None:
            self._seqs_writer = asyncio.create_task(self._write_seqs_later())

    async def _write_seqs_later(self) -> None:
        """While seqs wait: wait ``seqs_later_s`` (or for ``close``), then write them all,
        those recorded meanwhile included. A failed write keeps them for the next turn."""
        try:
            while self._seqs:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), self._seqs_later_s)
                await self._flush_seqs()
                if self._closing.is_set():
                    return
        finally:
            self._seqs_writer = None

    async def _flush_seqs(self) -> None:
        seqs, self._seqs = self._seqs, {}
        try:
            await self._write_seqs(seqs)
        except Exception:
            # Kept for the next try: meanwhile an empty seq is only a republish that the
            # stream answers as a duplicate.
            log.warning("the stream's seqs of %d events not written yet", len(seqs), exc_info=True)
            self._seqs = {**seqs, **self._seqs}

    async def _write_seqs(self, seqs: dict[str, int]) -> None:
        async with self._db.write() as conn:
            rows = [{"event_id": i, "stored_seq": seq} for i, seq in seqs.items()]
            await direct.execute(conn, _STORED_SEQ, rows)

    async def close(self) -> None:
        """Write the seqs still waiting (``seqs_later_s``) at once: at shutdown. A write
        under way is finished, not cancelled."""
        self._closing.set()
        if self._seqs_writer is not None:
            await self._seqs_writer
        elif self._seqs:
            await self._flush_seqs()

    async def _publish(
        self, accepted: list[_Candidate], now: int, *, all_new: bool
    ) -> list[Ack | None]:
        """Store the accepted events: as one atomic batch when every id is new (one
        acknowledgement for the lot), else, or when the stream refuses the batch, each
        with its own acknowledgement, all sent first and awaited together. No
        acknowledgement (NATS away, a timeout) is ``None``: unknown, so the push answers
        503."""
        if not accepted:
            return []
        stamped = [msgspec.structs.replace(c.event, received_at=now) for c in accepted]
        messages = [Outgoing(event_subject(e.board), encode_event(e), e.id) for e in stamped]
        timeout = self._publish_timeout_s
        for event, message in zip(stamped, messages, strict=True) if self._hand_over else ():
            keep_decoded(message.data, event)  # the projector beside this BFF reads it next
        acks = None
        if all_new and len(messages) > 1:
            acks = await self._publisher.publish_atomic(messages, timeout=timeout)
        if acks is None:
            acks = await self._publisher.publish_all(messages, timeout=timeout)
        return acks


def _conflict(event_id: str) -> PushResult:
    return _rejected(event_id, Reason.ID_CONFLICT, "this id is used by another event")


def _rejected(event_id: str, reason: Reason, detail: str) -> PushResult:
    return PushResult(event_id, "rejected", reason=str(reason), detail=detail)


def _repeat_of(first: PushResult | None, event_id: str) -> PushResult | None:
    if first is None or first.status == "rejected":
        return first
    return PushResult(event_id, "duplicate", seq=first.seq)


# The decision's statements, built once (see ``backend.db``: a statement built anew for each
# push cost more than running it); ``expanding`` binds take each batch's list of keys.
_RECORDS = select(EventRecord.id, EventRecord.actor, EventRecord.hash, EventRecord.seq).where(
    EventRecord.id.in_(bindparam("ids", expanding=True))
)
_BOARD_ROWS = select(BoardAuthority.id).where(
    BoardAuthority.id.in_(bindparam("boards", expanding=True))
)
_LOCK_BOARDS = (
    select(BoardAuthority.id, BoardAuthority.state)
    .where(BoardAuthority.id.in_(bindparam("boards", expanding=True)))
    .order_by(BoardAuthority.id)
    .with_for_update()
)
_MEMBERS = select(MemberAuthority.board, MemberAuthority.username, MemberAuthority.state).where(
    MemberAuthority.board.in_(bindparam("boards", expanding=True))
)
_BINDINGS = select(
    EntityBinding.id, EntityBinding.board, EntityBinding.kind, EntityBinding.author
).where(EntityBinding.id.in_(bindparam("ids", expanding=True)))
_DEVICES = select(Device.id, Device.username).where(Device.id.in_(bindparam("ids", expanding=True)))
_USERS = select(User.username).where(User.username.in_(bindparam("names", expanding=True)))
_STORED_SEQ = (
    update(EventRecord)
    .where(EventRecord.id == bindparam("event_id"), EventRecord.seq.is_(None))
    .values(seq=bindparam("stored_seq"))
)


@dataclass(frozen=True)
class _Record:
    actor: str
    hash: str
    seq: int | None


async def _load_records(conn: AsyncConnection, ids: list[str]) -> dict[str, _Record]:
    rows = await direct.fetch(conn, _RECORDS, {"ids": ids})
    return {id_: _Record(actor, hash_, seq) for id_, actor, hash_, seq in rows}


async def _load_authority(
    conn: AsyncConnection, device: str | None, candidates: Iterable[_Candidate]
) -> tuple[Authority, set[str]]:
    """The authority of the batch's boards, under their locks; and the lock rows this
    transaction created, which ``_drop_unused_lock_rows`` removes if nothing was accepted."""
    events = [c.event for c in candidates]
    boards = sorted({e.board for e in events})
    created = await _create_lock_rows(conn, boards)
    locked = await direct.fetch(conn, _LOCK_BOARDS, {"boards": boards})
    authority = Authority()
    for board_id, state in locked:
        if state is not None:
            authority.boards[board_id] = _state_decoder.decode(state)
    for board_id, username, state in await direct.fetch(conn, _MEMBERS, {"boards": boards}):
        authority.members[(board_id, username)] = _state_decoder.decode(state)
    entity_ids = {e.entity for e in events} | {e.board for e in events}
    entity_ids |= {e.payload.task for e in events if isinstance(e.payload, CommentAdded)}
    bindings = await direct.fetch(conn, _BINDINGS, {"ids": sorted(entity_ids)})
    for entity, board_id, kind, author in bindings:
        authority.bindings[entity] = Binding(board_id, kind, author)
    if device is not None:  # the backend's own writes use no device of the user's
        device_ids = {device} | {e.device for e in events}
        device_ids |= {parse_hlc(e.hlc).node for e in events}
        devices = await direct.fetch(conn, _DEVICES, {"ids": sorted(device_ids)})
        authority.devices = dict(devices)
    invited = {e.payload.username for e in events if isinstance(e.payload, MemberAdded)}
    if invited:
        users = await direct.fetch(conn, _USERS, {"names": sorted(invited)})
        authority.known_users = {name for (name,) in users}
    return authority, created


async def _create_lock_rows(conn: AsyncConnection, boards: list[str]) -> set[str]:
    """The board rows are the locks: create the missing ones (then the caller locks them
    all in a fixed order) and return which this transaction created.

    A board with no row yet has nothing to lock, so two processes deciding its first events
    would not wait for each other; inserting the row closes that gap. On PostgreSQL a second
    inserter of the same id waits until the first commits (a unique index entry in flight),
    then finds the row, or, if the first removed it again, inserts its own; SQLite writers
    are serialized whole (``BEGIN IMMEDIATE``). A row this transaction created and no event
    used is deleted before the commit (``_drop_unused_lock_rows``), so a rejected event
    leaves no row; rows that existed before are left alone, because a process waiting for
    their lock would find them gone and decide unlocked."""
    if not boards:
        return set()
    # Nearly always every row exists (a board's first event made it): a plain read finds
    # them, and the insert below (built anew for each batch's boards) is not run at all. A
    # row once committed is never deleted, so what this read sees is there to lock.
    existing = await direct.fetch(conn, _BOARD_ROWS, {"boards": boards})
    missing = sorted(set(boards) - {board_id for (board_id,) in existing})
    if not missing:
        return set()
    insert = postgresql_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(BoardAuthority)
        .values([{"id": b, "state": None} for b in missing])
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(BoardAuthority.id)
    )
    return set((await conn.execute(statement)).scalars())


async def _drop_unused_lock_rows(conn: AsyncConnection, boards: set[str]) -> None:
    """Delete lock rows this transaction created for boards no event was accepted on."""
    if boards:
        await conn.execute(
            delete(BoardAuthority).where(
                BoardAuthority.id.in_(sorted(boards)), BoardAuthority.state.is_(None)
            )
        )


async def _save(
    conn: AsyncConnection,
    authority: Authority,
    decided: list[_Candidate],
    username: str,
) -> None:
    """The decisions, written ahead of publishing: id records (no seq yet) and authority."""
    encode = msgspec.json.encode
    await _insert_new(
        conn,
        EventRecord,
        [{"id": c.event.id, "actor": username, "hash": c.hash, "seq": None} for c in decided],
    )
    await upsert(
        conn,
        BoardAuthority,
        [
            {"id": b, "state": encode(authority.boards[b]).decode()}
            for b in sorted(authority.changed_boards)
        ],
        ["id"],
    )
    await upsert(
        conn,
        MemberAuthority,
        [
            {"board": b, "username": u, "state": encode(authority.members[(b, u)]).decode()}
            for b, u in sorted(authority.changed_members)
        ],
        ["board", "username"],
    )
    await _insert_new(
        conn,
        EntityBinding,
        [
            {"id": i, "board": b.board, "kind": b.kind, "author": b.author}
            for i in sorted(authority.new_bindings)
            for b in [authority.bindings[i]]
        ],
    )
    await _insert_new(
        conn,
        Device,
        [{"id": d, "username": authority.devices[d]} for d in sorted(authority.new_devices)],
    )


class _LostRace(BackendError):
    """A row this push decided was new had been committed by another push meanwhile."""


async def _insert_new(conn: AsyncConnection, model: Any, rows: list[dict[str, Any]]) -> None:
    """Insert rows the decision found missing (keyed by ``id``); _LostRace if any is there
    by now. The decision read them absent under its board locks, but two pushes on
    different boards hold different locks: two users may claim one event id, entity or
    device at once. On PostgreSQL the second insert waits for the first transaction and
    then finds the row; SQLite runs one writer at a time, so it never gets here."""
    if not rows:
        return
    # One statement executed for many rows (SQLAlchemy's "insertmanyvalues"), not one
    # statement built with every row in it: building a batch's 500 id records as VALUES
    # cost more than the rest of the decision.
    inserted = await insert_ignore(conn, model, rows, ["id"], returning=model.id)
    missing = {row["id"] for row in rows} - set(inserted)
    if missing:
        raise _LostRace(f"{model.__tablename__} {sorted(missing)[0]} was written meanwhile")
