"""The lake component driven by hand, no NATS: what the lake tests and the storage suite share."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import msgspec
from sqlalchemy import select

from backend.consumers.component import RawRecord
from backend.db import Database, upsert
from backend.lake import files as lakefiles
from backend.lake import models
from backend.lake.component import Lake
from protocol import Writer, decode_event, new_id

T = TypeVar("T")
HOUR_MS = 3600 * 1000
T0 = 1764136800000  # 2025-11-26T06:00:00Z


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def record(seq: int, board: str, time_ms: int, event_id: str | None = None) -> RawRecord:
    envelope = {
        "id": event_id or new_id(),
        "type": "BoardCreated",
        "schema": 1,
        "board": board,
        "entity": board,
        "hlc": f"{time_ms:013d}:00000:dev1",
        "device": "dev1",
        "payload": {"name": f"board at {seq}"},
        "actor": "alice",
        "seq": seq,
        "received_at": time_ms,
    }
    data = msgspec.json.encode(envelope)
    event = msgspec.structs.replace(decode_event(data, Writer.BACKEND), seq=seq)
    return RawRecord(seq, f"outpost.events.{board}", data, time_ms, event, None)


def poison(seq: int, time_ms: int) -> RawRecord:
    return RawRecord(seq, "outpost.events.nowhere", b"\xff\x00 not\njson", time_ms, None, "bad")


class Harness:
    """The runner's part, by hand: one transaction per batch with the position in it."""

    def __init__(self, data: Path, url: str | None = None, **options: Any) -> None:
        self.loop = asyncio.new_event_loop()  # asyncpg engines belong to one loop
        self.data = data
        self.url = url
        self.db = Database.for_component("lake", data_dir=data, url=url)
        self.lake = Lake(self.db, data / "lake", **options)
        self.run(self.lake.prepare())

    def batch(self, records: list[RawRecord], *, crash: bool = False) -> None:
        async def go() -> None:
            try:
                async with self.db.write() as conn:
                    await self.lake.handle_raw(conn, records)
                    await upsert(
                        conn,
                        models.positions,
                        [{"component": "lake", "seq": records[-1].seq}],
                        ["component"],
                    )
                    if crash:
                        raise KeyboardInterrupt  # killed after the files, before the commit
            except KeyboardInterrupt:
                pass

        self.run(go())

    def restart(self) -> None:
        self.run(self.db.dispose())
        self.db = Database.for_component("lake", data_dir=self.data, url=self.url)
        self.lake = Lake(self.db, self.data / "lake", max_file_bytes=self.lake.max_file_bytes)
        self.run(self.lake.prepare())

    def start_over(self) -> None:
        async def go() -> None:
            async with self.db.write() as conn:
                await self.lake.start_over(conn)

        self.run(go())

    def index(self) -> list[Any]:
        async def go() -> list[Any]:
            async with self.db.read() as conn:
                table = models.archive
                query = select(table).order_by(table.c.epoch, table.c.seq)
                return list(await conn.execute(query))

        return self.run(go())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        self.run(self.db.dispose())
        self.loop.close()


def raw_file_lines(root: Path) -> list[lakefiles.Line]:
    """Every line of every file on disk, read whole with plain gzip (no committed lengths)."""
    found: list[lakefiles.Line] = []
    for relative in lakefiles.lake_files(root):
        with gzip.open(root / relative, "rb") as file:
            found.extend(lakefiles.decode_line(line) for line in file)
    return found
