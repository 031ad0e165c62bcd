"""The data lake: every message of ``OUTPOST_EVENTS`` archived raw, exactly once.

The lake is a ``RawComponent`` of the shared ``ConsumerRunner``: it gets every message as
stored (readable or not, it faults nothing) and never holds back the pull watermark
(``serves_pull = False``). Files are gzip JSON lines under ``<data>/lake/date=YYYY-MM-DD/
hour=HH/`` by the stream time of each message (UTC); ``files.py`` has the format. Its
database (``lake.db`` or the schema ``outpost_lake``, ``models.py``) holds the position,
the stream epochs, the files with their committed lengths, and the index: event id and
board to (file, gzip member offset, line).

Exactly once, under a kill at any moment. A file write and a database commit cannot be
atomic together, so the database is the truth and whatever the files hold beyond it is
made harmless:

- A batch appends one gzip member to each partition file it touches and fsyncs it, *then*
  records in the same transaction as the runner's position the file's new committed
  length and the index rows. Until that commit, the bytes it wrote lie past the committed
  length (or in a file no row names).
- Every append first truncates the file to its committed length (``files.append``), and at
  start ``prepare`` cuts every file back to its committed length and deletes files that no
  committed batch registered. Readers (replay, export, status) never read past the
  committed length, so even a running lake's unfinished tail is invisible.
- Redelivery after a crash between commit and ack changes nothing: the runner passes on
  only messages beyond the committed position.
- An event id already in the index (an earlier stream epoch, a re-publish with a new seq)
  is not archived again: the index's ``event_id`` is unique and checked per batch.

Stream epochs. A stream deleted and made again restarts its seqs at 1, so each message is
named by (epoch, seq). When the runner finds the lake's position beyond the stream's last
seq it calls ``start_over``: for the lake that opens a new epoch and resets the position,
and keeps every file and index row. Given a JetStream context, the lake also records the
stream's ``created`` time per epoch and opens a new epoch at start when it changed (a
stream replaced by one already longer than the old position).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nats.js.client import JetStreamContext
from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.consumers.component import Outcome, RawComponent, RawRecord
from backend.db import Database, upsert
from backend.lake import files as lakefiles
from backend.lake import models
from backend.nats.streams import EVENTS_STREAM, EVENTS_SUBJECT_PREFIX
from protocol import Event

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 128 * 1024 * 1024
"""A partition's file is continued until it holds this much; then a new one starts."""

_CHUNK = 400  # ids per IN (...) query


@dataclass
class _OpenFile:
    path: str
    first_seq: int
    lines: int
    committed: int


class Lake(RawComponent):
    name = "lake"
    serves_pull = False
    positions = models.positions

    def __init__(
        self,
        db: Database,
        root: Path,
        js: JetStreamContext | None = None,
        *,
        max_file_bytes: int = MAX_FILE_BYTES,
    ) -> None:
        self.db = db
        self.root = root
        self.js = js
        self.max_file_bytes = max_file_bytes

    async def prepare(self) -> None:
        await self.db.migrate()
        self.root.mkdir(parents=True, exist_ok=True)
        created = await self._stream_created()
        async with self.db.write() as conn:
            epoch, recorded = await _current_epoch(conn)
            if created is not None and recorded is not None and created != recorded:
                log.warning("lake: the stream was made again (%s): a new epoch", created)
                await self.start_over(conn, stream_created=created)
            elif created is not None and recorded is None:
                await conn.execute(
                    models.epochs.update()
                    .where(models.epochs.c.epoch == epoch)
                    .values(stream_created=created)
                )
            await self._reconcile(conn)

    async def _stream_created(self) -> str | None:
        if self.js is None:
            return None
        info = await self.js.stream_info(EVENTS_STREAM)
        return None if info.created is None else info.created.isoformat()

    async def _reconcile(self, conn: AsyncConnection) -> None:
        """Cut every file back to what committed; delete files no commit registered."""
        committed = {
            row.path: row.bytes
            for row in await conn.execute(select(models.files.c.path, models.files.c.bytes))
        }
        for relative in lakefiles.lake_files(self.root):
            path = self.root / relative
            length = committed.get(relative)
            size = path.stat().st_size
            if length is None:
                log.info("lake: removing %s, written by a batch that did not commit", relative)
                path.unlink()
            elif size > length:
                log.info("lake: cutting %s back to its committed %d bytes", relative, length)
                with path.open("r+b") as file:
                    file.truncate(length)
                    file.flush()
            elif size < length:
                log.error("lake: %s is shorter (%d) than committed (%d)", relative, size, length)
        for relative in committed:
            if not (self.root / relative).exists():
                log.error("lake: %s is missing", relative)

    async def start_over(self, conn: AsyncConnection, *, stream_created: str | None = None) -> None:
        """A new stream epoch: the position goes back to 0, the archive stays."""
        epoch, _ = await _current_epoch(conn)
        await conn.execute(
            insert(models.epochs).values(
                epoch=epoch + 1,
                started_at=int(time.time() * 1000),
                stream_created=stream_created,
            )
        )
        await conn.execute(delete(models.positions))
        log.warning("lake: stream epoch %d begins; the archive is kept", epoch + 1)

    async def handle(self, conn: AsyncConnection, events: list[Event]) -> Outcome:
        raise NotImplementedError("the lake takes raw records (handle_raw)")

    async def handle_raw(self, conn: AsyncConnection, records: list[RawRecord]) -> Outcome:
        epoch, _ = await _current_epoch(conn)
        fresh = await _not_yet_archived(conn, records)
        partitions: dict[tuple[str, int], list[RawRecord]] = {}
        for record in fresh:
            partitions.setdefault(lakefiles.partition(record.time_ms), []).append(record)
        rows: list[dict[str, Any]] = []
        for (date, hour), group in partitions.items():
            target = await self._open_file(conn, epoch, date, hour, group[0].seq)
            lines = [
                lakefiles.encode_line(epoch, r.seq, r.subject, r.time_ms, r.data) for r in group
            ]
            # Compression and the fsync run off the event loop: in one process with the BFF,
            # the lake must not hold back pushes, pulls and the projector while the disk works.
            member = await asyncio.to_thread(lakefiles.compress, lines)
            await asyncio.to_thread(
                lakefiles.append, self.root, target.path, target.committed, member
            )
            await upsert(
                conn,
                models.files,
                [
                    {
                        "path": target.path,
                        "epoch": epoch,
                        "date": date,
                        "hour": hour,
                        "first_seq": target.first_seq,
                        "last_seq": group[-1].seq,
                        "lines": target.lines + len(group),
                        "bytes": target.committed + len(member),
                    }
                ],
                ["path"],
            )
            rows.extend(
                {
                    "epoch": epoch,
                    "seq": record.seq,
                    "event_id": None if record.event is None else record.event.id,
                    "board": _board(record),
                    "path": target.path,
                    "offset": target.committed,
                    "line": line,
                    "time_ms": record.time_ms,
                }
                for line, record in enumerate(group)
            )
        if rows:
            await conn.execute(insert(models.archive), rows)
        return Outcome()

    async def _open_file(
        self, conn: AsyncConnection, epoch: int, date: str, hour: int, first_seq: int
    ) -> _OpenFile:
        """The partition's file this epoch is writing, or a new one named by its first seq."""
        table = models.files
        row = (
            await conn.execute(
                select(table.c.path, table.c.first_seq, table.c.lines, table.c.bytes)
                .where(table.c.epoch == epoch, table.c.date == date, table.c.hour == hour)
                .order_by(table.c.first_seq.desc())
                .limit(1)
            )
        ).first()
        if row is not None and row.bytes < self.max_file_bytes:
            return _OpenFile(row.path, row.first_seq, row.lines, row.bytes)
        return _OpenFile(lakefiles.file_path(date, hour, epoch, first_seq), first_seq, 0, 0)


def _board(record: RawRecord) -> str | None:
    if record.event is not None:
        return record.event.board
    prefix = f"{EVENTS_SUBJECT_PREFIX}."
    return record.subject.removeprefix(prefix) if record.subject.startswith(prefix) else None


async def _not_yet_archived(conn: AsyncConnection, records: list[RawRecord]) -> list[RawRecord]:
    ids = list({r.event.id for r in records if r.event is not None})
    seen: set[str] = set()
    for chunk in _chunks(ids):
        query = select(models.archive.c.event_id).where(models.archive.c.event_id.in_(chunk))
        seen.update(str(i) for i in (await conn.execute(query)).scalars())
    fresh = []
    for record in records:
        if record.event is not None:
            if record.event.id in seen:
                log.info("lake: %s archived already; seq %d skipped", record.event.id, record.seq)
                continue
            seen.add(record.event.id)  # a duplicate inside the batch counts once too
        fresh.append(record)
    return fresh


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


async def _current_epoch(conn: AsyncConnection) -> tuple[int, str | None]:
    """The lake's current epoch and its stream's ``created`` (epoch 1 is made on first use)."""
    row = (
        await conn.execute(
            select(models.epochs.c.epoch, models.epochs.c.stream_created)
            .order_by(models.epochs.c.epoch.desc())
            .limit(1)
        )
    ).first()
    if row is not None:
        return int(row.epoch), row.stream_created
    await conn.execute(insert(models.epochs).values(epoch=1, started_at=int(time.time() * 1000)))
    return 1, None


async def archived_count(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(models.archive))).scalar_one())
