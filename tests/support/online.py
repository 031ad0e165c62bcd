"""Run a device's sync engine from a plain test: sign up or in, and sync until settled."""

from __future__ import annotations

import asyncio
import time

from client.device import Device
from client.errors import ClientError
from client.sync.engine import SyncEngine
from client.sync.transport import connect
from tests.support.device import PASSWORD


async def settle(engine: SyncEngine, timeout: float = 15) -> None:
    """Sync until nothing is pending: the backend's views hold all this device did."""
    deadline = time.monotonic() + timeout
    await engine.sync()
    while engine.device.pending_count() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        await engine.sync()


def online(device: Device, server: str, *actions: str, username: str = "") -> None:
    """Do ``actions`` in order: "signup", "login" (as ``username``) or "sync" (settle)."""

    async def work() -> None:
        async with connect(server) as http:
            engine = SyncEngine(device, http)
            for action in actions:
                if action == "sync":
                    await settle(engine)
                else:
                    await getattr(engine, action)(username, PASSWORD)

    try:
        asyncio.run(work())
    except ClientError as exc:
        raise AssertionError(f"sync failed: {exc}") from exc
