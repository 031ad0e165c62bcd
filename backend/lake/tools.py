"""What ``outpost lake`` does: status, export, and replay of a component from the lake.

Readers take the list of files and their committed lengths from the lake's database and
read the files only up to those lengths, so a batch that never committed is never seen.
Messages come out in (epoch, seq) order: files are opened lazily, in order of their first
(epoch, seq), and merged, so a batch whose messages straddle an hour is still in order.

Replay (``outpost lake replay --component projector``), with the backend stopped:

1. the component is emptied into a new generation (its ``start_over``: devices then get
   ``reset`` on their next pull);
2. every archived event is fed to its ``handle`` in (epoch, seq) order, in batches, each
   in one transaction (an event the component refuses is counted, as it was faulted live);
3. its position is set to where the runner must continue from the live stream: the last
   archived seq of the *current* stream epoch, checked against the stream (the message at
   that seq must be byte for byte the archived one), or 0 when the stream is another one
   (deleted and made again) or the lake holds none of it. A position beyond the stream would
   make the runner start the component over and wipe the replay; a position short of the
   archive only re-applies events, which the component's own id ledger makes harmless.

An interrupted replay leaves the component in the new generation with position 0: run it
again.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date as Date
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import msgspec
import nats.js.errors
from nats.js.client import JetStreamContext
from sqlalchemy import func, select

from backend.config import Settings
from backend.db import Database, upsert
from backend.lake import files as lakefiles
from backend.lake import models
from backend.lake.errors import LakeError
from backend.lake.files import Line
from backend.nats.publisher import JetStreamPublisher
from backend.nats.streams import EVENTS_STREAM
from protocol import Event, EventRejected, UnreadableEvent, Writer, decode_event

if TYPE_CHECKING:
    from backend.consumers.component import Component

REPLAY_BATCH = 500


@dataclass(frozen=True)
class FileEntry:
    path: str
    epoch: int
    date: str
    hour: int
    first_seq: int
    last_seq: int
    lines: int
    bytes: int


def lake_root(settings: Settings) -> Path:
    return settings.data_dir / "lake"


def parse_date(text: str) -> str:
    """A ``YYYY-MM-DD`` date, checked; ValueError names what is wrong."""
    try:
        return Date.fromisoformat(text).isoformat() if len(text) == 10 else _bad(text)
    except ValueError:
        return _bad(text)


def _bad(text: str) -> str:
    raise ValueError(f"bad date {text!r}: use YYYY-MM-DD, e.g. 2026-01-31")


@asynccontextmanager
async def open_lake(settings: Settings) -> AsyncIterator[Database]:
    from backend.components import open_database

    stored = settings.data_dir / "lake.db"
    if settings.db_url_for("lake") is None and not stored.exists():
        raise LakeError(f"no lake in {settings.data_dir}: {stored} does not exist")
    db = open_database("lake", settings)
    try:
        await db.migrate()
        yield db
    finally:
        await db.dispose()


async def load_files(db: Database, since: str | None = None) -> list[FileEntry]:
    table = models.files
    query = select(table).order_by(table.c.epoch, table.c.first_seq)
    if since is not None:
        query = query.where(table.c.date >= since)
    async with db.read() as conn:
        return [
            FileEntry(r.path, r.epoch, r.date, r.hour, r.first_seq, r.last_seq, r.lines, r.bytes)
            for r in await conn.execute(query)
        ]


def ordered_lines(root: Path, entries: list[FileEntry]) -> Iterator[Line]:
    """Every committed line of these files, in (epoch, seq) order."""
    entries = sorted(entries, key=lambda e: (e.epoch, e.first_seq))
    heap: list[tuple[int, int, int, Line, Iterator[Line]]] = []
    opened = 0
    while heap or opened < len(entries):
        while opened < len(entries) and (
            not heap or (entries[opened].epoch, entries[opened].first_seq) <= heap[0][:2]
        ):
            entry = entries[opened]
            lines = lakefiles.read_lines(root / entry.path, entry.bytes)
            first = next(lines, None)
            if first is not None:
                heapq.heappush(heap, (first.epoch, first.seq, opened, first, lines))
            opened += 1
        if not heap:
            continue
        _, _, index, line, lines = heapq.heappop(heap)
        yield line
        following = next(lines, None)
        if following is not None:
            heapq.heappush(heap, (following.epoch, following.seq, index, following, lines))


# status


@dataclass
class EpochStatus:
    epoch: int
    started_at: int
    stream_created: str | None
    messages: int
    first_seq: int | None
    last_seq: int | None


@dataclass
class Status:
    folder: str
    files: int
    bytes: int
    messages: int
    unreadable: int
    position: int
    first_date: str | None
    last_date: str | None
    epochs: list[EpochStatus] = field(default_factory=list)


async def status(settings: Settings) -> Status:
    async with open_lake(settings) as db:
        entries = await load_files(db)
        archive = models.archive
        async with db.read() as conn:
            per_epoch = {
                row.epoch: row
                for row in await conn.execute(
                    select(
                        archive.c.epoch,
                        func.count().label("messages"),
                        func.min(archive.c.seq).label("first_seq"),
                        func.max(archive.c.seq).label("last_seq"),
                    ).group_by(archive.c.epoch)
                )
            }
            unreadable = (
                await conn.execute(
                    select(func.count()).select_from(archive).where(archive.c.event_id.is_(None))
                )
            ).scalar_one()
            position = (await conn.execute(select(models.positions.c.seq))).scalar() or 0
            epochs = list(await conn.execute(select(models.epochs).order_by(models.epochs.c.epoch)))
    report = Status(
        folder=str(lake_root(settings)),
        files=len(entries),
        bytes=sum(e.bytes for e in entries),
        messages=sum(int(r.messages) for r in per_epoch.values()),
        unreadable=int(unreadable),
        position=int(position),
        first_date=min((e.date for e in entries), default=None),
        last_date=max((e.date for e in entries), default=None),
    )
    for row in epochs:
        counted = per_epoch.get(row.epoch)
        report.epochs.append(
            EpochStatus(
                epoch=row.epoch,
                started_at=row.started_at,
                stream_created=row.stream_created,
                messages=0 if counted is None else int(counted.messages),
                first_seq=None if counted is None else int(counted.first_seq),
                last_seq=None if counted is None else int(counted.last_seq),
            )
        )
    return report


# export


class _Exported(msgspec.Struct, omit_defaults=True):
    epoch: int
    seq: int
    subject: str
    board: str
    time_ms: int
    event: msgspec.Raw | None = None
    """The message as stored, when it is JSON (an event, or what was meant to be one)."""
    data_b64: str | None = None
    """The message, base64, when it is not JSON."""


async def export(
    settings: Settings, out: IO[bytes], *, board: str | None = None, since: str | None = None
) -> int:
    """Write the archived messages as JSON lines, in (epoch, seq) order; return how many."""
    import base64

    async with open_lake(settings) as db:
        entries = await load_files(db, since)
        if board is not None:
            async with db.read() as conn:
                query = (
                    select(models.archive.c.path).where(models.archive.c.board == board).distinct()
                )
                wanted = set((await conn.execute(query)).scalars())
            entries = [e for e in entries if e.path in wanted]
    encoder = msgspec.json.Encoder()
    count = 0
    for line in ordered_lines(lake_root(settings), entries):
        if board is not None and line.board != board:
            continue
        row = _Exported(line.epoch, line.seq, line.subject, line.board, line.time_ms)
        try:
            msgspec.json.decode(line.data)
            row.event = msgspec.Raw(line.data)
        except msgspec.DecodeError:
            row.data_b64 = base64.b64encode(line.data).decode()
        out.write(encoder.encode(row) + b"\n")
        count += 1
    return count


# replay


@dataclass
class ReplayReport:
    component: str
    events: int = 0
    unreadable: int = 0
    refused: int = 0
    position: int = 0
    batches: int = 0
    seconds: float = 0.0


async def replay(
    settings: Settings,
    component: str,
    *,
    since: str | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> ReplayReport:
    """Rebuild ``component``'s database into a new generation from the lake (see above)."""
    from backend.components import NAMES, ComponentContext, build, open_database
    from backend.main import open_backend, who_runs
    from backend.writer import BackendWriter

    if component not in NAMES or component == "lake":
        choices = ", ".join(n for n in NAMES if n != "lake")
        raise LakeError(f"unknown component {component!r}: replay one of {choices}")
    started = time.monotonic()
    async with open_lake(settings) as lake_db:
        entries = await load_files(lake_db, since)
        if not entries:
            where = f" from {since} on" if since else ""
            raise LakeError(f"the lake at {lake_root(settings)} holds no events{where}")
        db = open_database(component, settings)
        try:
            # The lease first: under a live component, refuse before touching NATS or data.
            lease = await db.try_lease(component)
            if lease is None:
                raise LakeError(f"{who_runs(settings)} runs {component}: stop it, then replay")
            try:
                async with open_backend(settings, share_nats=True) as backend:
                    js = backend.nc.jetstream()
                    position = await live_position(lake_db, settings, js)
                    report = ReplayReport(component, position=position)
                    publisher = JetStreamPublisher(backend.nc)
                    writer = BackendWriter(
                        backend.bff_db, publisher, publish_timeout_s=settings.publish_timeout_s
                    )
                    context = ComponentContext(settings, js, publisher, writer, backend.nc)
                    target = build(component, db, context)
                    await _replay_into(target, db, settings, entries, report, progress)
            finally:
                await lease.release()
        finally:
            await db.dispose()
    report.seconds = time.monotonic() - started
    return report


async def _replay_into(
    target: Component,
    db: Database,
    settings: Settings,
    entries: list[FileEntry],
    report: ReplayReport,
    progress: Callable[[str], None],
) -> None:
    await target.prepare()
    async with db.write() as conn:
        await target.start_over(conn)
    progress(f"{report.component}: emptied into a new generation; replaying the lake")
    last_note = time.monotonic()
    for batch, unreadable in _batches(ordered_lines(lake_root(settings), entries)):
        report.unreadable += unreadable
        if batch:
            async with db.write() as conn:
                outcome = await target.handle(conn, batch)
            report.events += len(batch)
            report.refused += len(outcome.poison)
            report.batches += 1
        if time.monotonic() - last_note > 2:
            last_note = time.monotonic()
            progress(f"{report.component}: {report.events} events replayed")
    async with db.write() as conn:
        await upsert(
            conn,
            target.positions,
            [{"component": target.name, "seq": report.position}],
            ["component"],
        )


def _batches(lines: Iterator[Line]) -> Iterator[tuple[list[Event], int]]:
    """Batches of decoded events, never mixing epochs (seqs repeat across epochs)."""
    batch: list[Event] = []
    unreadable = 0
    epoch = None
    for line in lines:
        if batch and (line.epoch != epoch or len(batch) >= REPLAY_BATCH):
            yield batch, unreadable
            batch, unreadable = [], 0
        epoch = line.epoch
        try:
            event = decode_event(line.data, Writer.BACKEND)
        except (EventRejected, UnreadableEvent):
            unreadable += 1
            continue
        if event.actor is None:  # it did not come through the BFF: the runner faults it
            unreadable += 1
            continue
        batch.append(msgspec.structs.replace(event, seq=line.seq))
    if batch or unreadable:
        yield batch, unreadable


async def live_position(lake_db: Database, settings: Settings, js: JetStreamContext) -> int:
    """Where a replayed component continues in the live stream: the last archived seq of
    the current stream epoch, or 0 if the live stream is not the lake's current epoch."""
    archive = models.archive
    async with lake_db.read() as conn:
        epoch_row = (
            await conn.execute(
                select(models.epochs.c.epoch, models.epochs.c.stream_created)
                .order_by(models.epochs.c.epoch.desc())
                .limit(1)
            )
        ).first()
        if epoch_row is None:
            return 0
        last = (
            await conn.execute(
                select(archive.c.seq, archive.c.path, archive.c.offset, archive.c.line)
                .where(archive.c.epoch == epoch_row.epoch)
                .order_by(archive.c.seq.desc())
                .limit(1)
            )
        ).first()
    if last is None:
        return 0
    try:
        info = await js.stream_info(EVENTS_STREAM)
    except nats.js.errors.NotFoundError:
        return 0
    created = None if info.created is None else info.created.isoformat()
    if epoch_row.stream_created is not None and created != epoch_row.stream_created:
        return 0
    if info.state.last_seq < last.seq:
        return 0
    try:
        message = await js.get_msg(EVENTS_STREAM, last.seq)
    except nats.js.errors.NotFoundError:
        return 0
    archived = lakefiles.read_member_line(lake_root(settings) / last.path, last.offset, last.line)
    return int(last.seq) if archived.data == message.data else 0


def status_dict(report: Status) -> dict[str, Any]:
    return msgspec.to_builtins(report)  # type: ignore[no-any-return]
