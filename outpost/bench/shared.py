"""Set-ups several scenarios share: a user's board of tasks on two real devices."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from client.device import Device
from client.sync.engine import SyncEngine
from outpost.bench.harness import BenchError, Workspace

TASKS = 50
"""Tasks the edits of a scenario cycle through."""


@dataclass
class RealDevice:
    device: Device
    engine: SyncEngine


@dataclass
class BoardPair:
    board: str
    tasks: list[str]
    a: RealDevice
    b: RealDevice


async def one_device(
    ws: Workspace, username: str, name: str = "a"
) -> tuple[RealDevice, str, list[str]]:
    """A signed-up device with a synced board of ``TASKS`` tasks."""
    device, engine = await ws.device(f"{username}-{name}", username, signup=True)
    board = device.create_board(f"{username}'s board")
    tasks = [device.add_task(board, f"Task {i}") for i in range(TASKS)]
    await engine.sync()
    return RealDevice(device, engine), board, tasks


async def board_pair(ws: Workspace, username: str) -> BoardPair:
    """Devices A and B of one user, both synced with a board of ``TASKS`` tasks."""
    a, board, tasks = await one_device(ws, username)
    b_device, b_engine = await ws.device(f"{username}-b", username)
    b = RealDevice(b_device, b_engine)
    deadline = time.monotonic() + 60
    while len(b_device.tasks(board)) < len(tasks) or a.device.pending_count():
        if time.monotonic() > deadline:
            raise BenchError("device B never received device A's board")
        await asyncio.sleep(0.02)
        await a.engine.sync()
        await b.engine.sync()
    return BoardPair(board, tasks, a, b)


def pending_bodies(device: Device) -> list[bytes]:
    """The bytes of the events waiting in a device's outbox, in order."""
    with device.store.read() as conn:
        rows = conn.execute("SELECT body FROM outbox WHERE seq IS NULL ORDER BY position")
        return [bytes(body) for (body,) in rows]
