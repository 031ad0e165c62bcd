"""Scenario 1, local action latency: one action through the device's store (a committed
outbox row and the updated view, ``synchronous=FULL``), beside raw ``sqlite3`` doing the
very same writes (the same rows, bytes and schema, the same pragmas) into a copy of the
same database."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec

from client.device import Device
from client.store.database import STORE_FILE
from outpost.bench.harness import Workspace, percentile, progress
from outpost.bench.plan import Plan
from outpost.bench.report import Figure, ScenarioResult, Target

NAME = "local_action"
TITLE = "1. local action"
TARGET_P99_MS = 2.0
WARM_UP = 20


@dataclass
class Writes:
    """What one action wrote: its outbox row, the view rows it changed, the clock."""

    outbox: tuple[str, str, bytes]
    view: list[tuple[str, str, str, bytes, bytes | None]]
    clock_last: str


async def run(ws: Workspace, plan: Plan) -> ScenarioResult:
    result = ScenarioResult(
        NAME,
        TITLE,
        params={"actions": plan.local_actions, "board_tasks": plan.local_board_tasks},
    )
    device = Device(ws.folder("local/device"))
    raw: sqlite3.Connection | None = None
    try:
        board = device.create_board("Local latency")
        tasks = [device.add_task(board, f"Task {i}") for i in range(plan.local_board_tasks)]
        progress(f"local actions: board of {len(tasks)} tasks ready")
        raw = _raw_copy(device, ws.folder("local/raw") / STORE_FILE)
        edits = _measure(
            device,
            raw,
            plan.local_actions,
            lambda i: device.set_task(tasks[i % len(tasks)], title=f"Edit {i}"),
        )
        adds = _measure(
            device, raw, plan.local_actions, lambda i: device.add_task(board, f"Added {i}")
        )
    finally:
        device.close()
        if raw is not None:
            raw.close()
    for label, (samples, baseline) in (("edit task", edits), ("add task", adds)):
        for pct in (50, 99):
            result.add(
                Figure(
                    f"{label} p{pct}",
                    "ms",
                    percentile(samples, pct),
                    baseline=percentile(baseline, pct),
                    baseline_label="raw sqlite3, same writes",
                    target=Target("<=", TARGET_P99_MS) if pct == 99 else None,
                )
            )
    return result


def _measure(
    device: Device, raw: sqlite3.Connection, count: int, action: Callable[[int], object]
) -> tuple[list[float], list[float]]:
    """ms of ``count`` actions (after a warm-up), each followed by its raw replay (ms), so
    that both see the same moment of a noisy machine."""
    samples: list[float] = []
    baseline: list[float] = []
    for i in range(WARM_UP + count):
        started = time.perf_counter()
        action(i)
        elapsed = (time.perf_counter() - started) * 1000
        raw_elapsed = _replay(raw, _last_writes(device))
        if i >= WARM_UP:
            samples.append(elapsed)
            baseline.append(raw_elapsed)
    return samples, baseline


def _last_writes(device: Device) -> Writes:
    with device.store.read() as conn:
        event_id, board, body = conn.execute(
            "SELECT id, board, body FROM outbox ORDER BY position DESC LIMIT 1"
        ).fetchone()
        entity = _entity_of(bytes(body))
        view = conn.execute(
            "SELECT kind, id, board, state, vals, task_status, task_position FROM view "
            "WHERE id = ?",
            (entity,),
        ).fetchall()
        clock = conn.execute("SELECT value FROM settings WHERE key = 'clock_last'").fetchone()
    return Writes((event_id, board, bytes(body)), [tuple(row) for row in view], str(clock[0]))


def _entity_of(body: bytes) -> str:
    entity: str = msgspec.json.decode(body)["entity"]
    return entity


def _raw_copy(device: Device, target: Path) -> sqlite3.Connection:
    """A copy of the device's database as it is now (same schema, same rows), opened with
    raw sqlite3 and the device's pragmas, for the raw writes."""
    source = sqlite3.connect(device.store.path)
    try:
        destination = sqlite3.connect(target)
        with destination:
            source.backup(destination)
        destination.close()
    finally:
        source.close()
    conn = sqlite3.connect(target, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "busy_timeout=10000"):
        conn.execute(f"PRAGMA {pragma}")
    return conn


def _replay(conn: sqlite3.Connection, one: Writes) -> float:
    """One action's writes with raw sqlite3, in one transaction; ms."""
    started = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO outbox (id, board, body) VALUES (?, ?, ?)", one.outbox)
    conn.executemany(
        "INSERT INTO view (kind, id, board, state, vals, task_status, task_position) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kind, id) DO UPDATE SET "
        "board = excluded.board, state = excluded.state, vals = excluded.vals, "
        "task_status = excluded.task_status, task_position = excluded.task_position",
        one.view,
    )
    conn.execute(
        "INSERT INTO settings (key, value) VALUES ('clock_last', ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (one.clock_last,),
    )
    conn.execute("COMMIT")
    return (time.perf_counter() - started) * 1000
