"""``outpost app --demo``: a demo account and a sample board, so a newcomer sees a working
board at once (no Kivy here).

Signs up ``demo`` on the server (or signs in, if it exists), pulls what it has, and adds
a sample board when the account has none. Runs before the window opens; if the server
cannot be reached the app opens anyway and shows why.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import date, timedelta

from client.device import Device
from client.errors import ClientError, SignInRequired
from client.store.settings import Setting, write_setting
from client.sync.engine import SyncEngine
from client.sync.transport import connect

log = logging.getLogger(__name__)

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "outpost-demo"
"""Fixed and public on purpose: the demo account holds nothing worth protecting."""
SAMPLE_BOARD = "Welcome to Outpost"


def prepare_demo(device: Device, server: str) -> str | None:
    """Sign the profile in as ``demo`` and make sure it has a board; the problem, or None."""
    if device.username not in (None, DEMO_USERNAME):
        return f"this profile belongs to {device.username}: the demo needs its own data folder"
    try:
        asyncio.run(_sign_in_and_pull(device, server))
    except ClientError as exc:
        log.warning("demo: %s", exc)
        return str(exc)
    if not device.boards():
        add_sample_board(device)
    return None


async def _sign_in_and_pull(device: Device, server: str) -> None:
    with device.store.write() as conn:
        write_setting(conn, Setting.SERVER, server)  # the app syncs with it from now on
    async with connect(server) as http:
        engine = SyncEngine(device, http)
        if device.store.setting(Setting.TOKEN) is None:
            try:
                await engine.signup(DEMO_USERNAME, DEMO_PASSWORD)
            except SignInRequired:  # taken: the demo account exists already
                await engine.login(DEMO_USERNAME, DEMO_PASSWORD)
        await engine.sync()


def add_sample_board(device: Device) -> str:
    """A board that shows what a card can carry; recorded locally, synced by the app."""
    board = device.create_board(SAMPLE_BOARD)
    soon = (date.today() + timedelta(days=3)).isoformat()
    late = (date.today() - timedelta(days=1)).isoformat()
    me = device.username or DEMO_USERNAME
    device.add_task(board, "Try the arrow keys on a selected card", priority=1, labels=["tour"])
    device.add_task(board, "Press Ctrl+N to add a task", labels=["tour"])
    device.add_task(board, "Share this board with a friend", status="doing", assignee=me, due=soon)
    device.add_task(board, "Water the plants", status="doing", due=late, priority=3)
    device.add_task(board, "Open Outpost", status="done", labels=["tour"])
    return board
