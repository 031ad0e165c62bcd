"""A scripted device that speaks the HTTP contract directly, to lay out what a scenario
needs (a board of 100,000 tasks, members) faster than a real device would make it.

Seeding is set-up, never measured: the measured side is always a real device.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import msgspec

from outpost.bench.harness import BenchError, progress
from protocol import (
    Event,
    HybridLogicalClock,
    merge,
    new_device_id,
    new_id,
    parse_hlc,
    positions_between,
)
from protocol.catalog import TaskCreated
from protocol.hlc import MAX_COUNTER, format_hlc, system_ms
from protocol.positions import DIGITS

BATCH = 500


class Seeder:
    def __init__(self, url: str, token: str) -> None:
        self.device = new_device_id()
        self.clock = HybridLogicalClock(self.device)
        self.http = httpx.AsyncClient(
            base_url=url, timeout=60, headers={"Authorization": f"Bearer {token}"}
        )
        self.last_seq = 0

    async def close(self) -> None:
        await self.http.aclose()

    def event(self, type_: str, board: str, entity: str, payload: dict[str, Any]) -> bytes:
        raw = {
            "id": new_id(),
            "type": type_,
            "schema": 1,
            "board": board,
            "entity": entity,
            "hlc": self.clock.now(),
            "device": self.device,
            "payload": payload,
        }
        return msgspec.json.encode(raw)

    async def push(self, events: list[bytes], *, label: str = "") -> None:
        """Push in batches of the contract's size; every event must be accepted."""
        for start in range(0, len(events), BATCH):
            batch = events[start : start + BATCH]
            body = b'{"device":"%s","protocol":1,"events":[%s]}' % (
                self.device.encode(),
                b",".join(batch),
            )
            reply = await self.http.post(
                "/v1/sync/push", content=body, headers={"Content-Type": "application/json"}
            )
            if reply.status_code != 200:
                raise BenchError(f"seeding push: HTTP {reply.status_code} {reply.text[:300]}")
            answer = reply.json()
            self.clock.receive_time(answer["server_time"])
            for result in answer["results"]:
                if result["status"] not in ("accepted", "duplicate"):
                    raise BenchError(f"seeding push: {result}")
                self.last_seq = max(self.last_seq, int(result["seq"]))
            done = start + len(batch)
            if label and len(events) >= 10 * BATCH and done % (20 * BATCH) == 0:
                progress(f"{label}: {done:,} of {len(events):,} events pushed")

    async def board(self, name: str) -> str:
        board = new_id()
        await self.push([self.event("BoardCreated", board, board, {"name": name})])
        return board

    async def share(self, board: str, usernames: list[str]) -> None:
        events = [self.event("MemberAdded", board, board, {"username": u}) for u in usernames]
        await self.push(events)

    async def tasks(self, board: str, count: int, *, label: str = "") -> list[str]:
        ids = [new_id() for _ in range(count)]
        positions = positions_between(None, None, count)
        events = [
            self.event(
                "TaskCreated",
                board,
                task,
                {"title": f"Task {i}", "position": position, "notes": f"seeded task {i}"},
            )
            for i, (task, position) in enumerate(zip(ids, positions, strict=True))
        ]
        await self.push(events, label=label)
        return ids

    async def edit(self, board: str, task: str, **fields: Any) -> None:
        await self.push([self.event("TaskUpdated", board, task, {"fields": fields})])


VIEW_CHUNK = 20_000
"""Rows per transaction when tasks are written into the views directly."""


def write_tasks_into_views(views: Path, board: str, count: int, *, label: str = "") -> None:
    """Write ``count`` tasks of ``board`` into the projector's views (the SQLite file
    ``views``) as the projector would have made them from ``TaskCreated`` events, under
    versions reserved as the projector reserves them: what a device then pulls through the
    real pull is what it would pull had every event been pushed and projected.

    Pushing a million events through the BFF and the projector takes most of an hour on
    this machine; the bootstrap scenarios measure the pull, not the ingest. The rows come
    from one event folded by the projector's own rules (``protocol.merge``), its per-task
    strings swapped for each task's (``ViewTemplate``); ``tests/bench/test_seed.py``
    checks them against the fold of each task's own event. The events themselves are never
    on the stream: a board seeded so is for pulling only."""
    template = ViewTemplate(board)
    conn = sqlite3.connect(views, isolation_level=None, timeout=60)
    try:
        conn.execute("PRAGMA busy_timeout = 60000")
        done = 0
        while done < count:
            size = min(VIEW_CHUNK, count - done)
            conn.execute("BEGIN IMMEDIATE")  # as the projector writes: the version lock first
            try:
                row = conn.execute("SELECT value FROM info WHERE key = 'version'").fetchone()
                first = int(row[0] if row else 0) + 1
                conn.executemany(
                    'INSERT INTO views (kind, id, board, version, state, "values", meta, '
                    "audience) VALUES ('task', ?, ?, ?, ?, ?, ?, NULL)",
                    (template.row(done + i, first + i) for i in range(size)),
                )
                conn.execute(
                    "INSERT INTO info (key, value) VALUES ('version', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(first + size - 1),),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            done += size
            if label and done % (5 * VIEW_CHUNK) == 0:
                progress(f"{label}: {done:,} of {count:,} tasks written into the views")
    finally:
        conn.close()


class ViewTemplate:
    """The view row of a seeded task ``i``: ``TaskCreated`` with title ``Task i``, notes
    ``seeded task i`` and the ``i``-th position of a board, folded as the projector folds
    it, without folding each one (a million folds take minutes here)."""

    def __init__(self, board: str) -> None:
        self.board = board
        self.device = new_device_id()
        self._ids = _IdMaker()
        self._wall = system_ms()
        self._counter = 0
        markers = {
            "entity": new_id(),
            "event": new_id(),
            "hlc": format_hlc(self._wall, 0, self.device),
            "title": f"title-{new_id()}",
            "notes": f"notes-{new_id()}",
            "position": "z" + "".join(random.choices(DIGITS, k=26)),
        }
        state, values, meta = fold_created(board, markers)
        missing = [name for name, marker in markers.items() if marker not in state]
        if missing:
            raise AssertionError(f"the folded state has no {missing}: {state}")
        self._formats = []
        for text in (state, values, meta):
            text = text.replace("%", "%%")
            for name, marker in markers.items():
                text = text.replace(marker, f"%({name})s")
            self._formats.append(text)

    def event(self, i: int) -> dict[str, str]:
        """The per-task strings of task ``i`` (each call a new id, event id and hlc)."""
        self._counter += 1
        if self._counter > MAX_COUNTER:
            self._wall, self._counter = self._wall + 1, 0
        return {
            "entity": self._ids.next(),
            "event": self._ids.next(),
            "hlc": f"{self._wall:013d}:{self._counter:05d}:{self.device}",
            "title": f"Task {i}",
            "notes": f"seeded task {i}",
            "position": seeded_position(i),
        }

    def row(self, i: int, version: int) -> tuple[str, str, int, str, str, str]:
        return self.render(self.event(i), version)

    def render(self, strings: dict[str, str], version: int) -> tuple[str, str, int, str, str, str]:
        state, values, meta = (text % strings for text in self._formats)
        return (strings["entity"], self.board, version, state, values, meta)


def fold_created(board: str, strings: dict[str, str]) -> tuple[str, str, str]:
    """The projector's (state, values, meta) JSON of a task made by one ``TaskCreated``
    (``strings``: its entity, event id, hlc, title, notes and position)."""
    event = Event(
        id=strings["event"],
        type="TaskCreated",
        schema=1,
        board=board,
        entity=strings["entity"],
        hlc=strings["hlc"],
        device=parse_hlc(strings["hlc"]).node,
        payload=TaskCreated(
            title=strings["title"], position=strings["position"], notes=strings["notes"]
        ),
    )
    (key,) = merge.keys_of(event)
    state = merge.apply(merge.new_state(key, board), event)
    values = merge.values(state)
    encode = msgspec.json.encode
    return encode(state).decode(), encode(values).decode(), encode(merge.meta(state)).decode()


def seeded_position(i: int) -> str:
    """The ``i``-th of a board's seeded positions (``i`` below 62**4): integer keys of
    four base-62 digits, in order (``positions_between`` spreads a million in minutes)."""
    digits = []
    for _ in range(4):
        i, digit = divmod(i, 62)
        digits.append(DIGITS[digit])
    if i:
        raise ValueError("too many seeded positions")
    return "d" + "".join(reversed(digits))


class _IdMaker:
    """UUIDv7 ids, fast: one random prefix, then a counter in the last 48 bits."""

    def __init__(self) -> None:
        self._prefix = new_id()[:24]
        self._next = 0

    def next(self) -> str:
        self._next += 1
        return f"{self._prefix}{self._next:012x}"
