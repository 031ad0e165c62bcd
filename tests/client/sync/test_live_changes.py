"""Devices on the live stream's ``event: changes``: another device's edit reaches this one's
view with no pull of its own, and a pull (here: a periodic one) moves the stream to the new
cursor. Real devices, a real backend process, real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from client.device import Device
from client.store.settings import Setting
from client.sync.engine import SyncEngine
from client.sync.runner import LiveSync
from client.sync.transport import connect
from tests.support.backend import BackendProcess
from tests.support.device import PASSWORD
from tests.support.online import settle

pytestmark = pytest.mark.integration

WAIT_S = 30.0


class Counting(httpx.AsyncBaseTransport):
    """The real transport, counting pulls and live connections (with their ``since``)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.pulls = 0
        self.streams: list[str | None] = []
        self.flowing = asyncio.Event()
        """Cleared: what the live streams send is held back (as a slow network would)."""
        self.flowing.set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/sync/pull":
            self.pulls += 1
        elif request.url.path == "/v1/sync/live":
            self.streams.append(request.url.params.get("since"))
            response = await self.inner.handle_async_request(request)
            response.stream = Held(response.stream, self.flowing)
            return response
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class Held(httpx.AsyncByteStream):
    """A response's bytes, passed on only while ``flowing`` is set."""

    def __init__(self, inner: httpx.AsyncByteStream, flowing: asyncio.Event) -> None:
        self.inner, self.flowing = inner, flowing

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.inner:
            await self.flowing.wait()
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _until(what: str, ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {WAIT_S}s")
        await asyncio.sleep(0.02)


@dataclass
class Pair:
    """Device A syncing by hand, device B on the live stream through ``counting``, one
    board of A's with one task, which B shows and whose stream follows B's cursor."""

    a: Device
    a_engine: SyncEngine
    board: str
    task: str
    b: Device
    b_live: LiveSync
    counting: Counting


@contextlib.asynccontextmanager
async def _pair(url: str, folder: Path, board_name: str, title: str) -> AsyncIterator[Pair]:
    a = Device(folder / "a")
    a_engine = SyncEngine(a, connect(url))
    username = f"live{uuid.uuid4().hex[:8]}"
    await a_engine.signup(username, PASSWORD)
    board = a.create_board(board_name)
    task = a.add_task(board, title)
    await settle(a_engine)
    b = Device(folder / "b")
    counting = Counting()
    b_live = LiveSync(b, connect(url, transport=counting), periodic_s=3600)
    await b_live.engine.login(username, PASSWORD)
    runner = asyncio.create_task(b_live.run())
    try:
        await _until("B has A's board", lambda: len(b.tasks(board)) == 1)
        await _until("B's stream follows its cursor", lambda: b_live.stream_brings_changes)
        yield Pair(a, a_engine, board, task, b, b_live, counting)
    finally:
        b_live.stop()
        await runner


def test_an_edit_reaches_the_other_device_through_the_stream_without_a_pull(
    module_backend: BackendProcess, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with _pair(module_backend.url, tmp_path, "Live pages", "before") as p:
            assert p.counting.streams[-1] == p.b.store.setting(Setting.CURSOR)
            pulls = p.counting.pulls

            p.a.set_task(p.task, title="after")
            await settle(p.a_engine)
            await _until(
                "B shows A's edit", lambda: [t["title"] for t in p.b.tasks(p.board)] == ["after"]
            )

            assert p.counting.pulls == pulls, "B pulled: the stream did not bring the change"
            assert p.b_live.stream_brings_changes  # and it still follows B's cursor

    asyncio.run(scenario())


def test_a_pull_moves_the_stream_to_the_new_cursor(
    module_backend: BackendProcess, tmp_path: Path
) -> None:
    username = f"moved{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        device = Device(tmp_path / "d")
        counting = Counting()
        live = LiveSync(device, connect(module_backend.url, transport=counting), periodic_s=0.5)
        await live.engine.signup(username, PASSWORD)
        device.create_board("Moving cursor")
        runner = asyncio.create_task(live.run())
        try:
            await _until("the stream follows the cursor", lambda: live.stream_brings_changes)
            connections = len(counting.streams)
            # Periodic cycles pull (a lost notice is caught there): each moves the cursor,
            # and the stream reconnects from it instead of sending pages the device skips.
            await _until("a periodic pull", lambda: len(counting.streams) > connections)
            await _until("the stream follows again", lambda: live.stream_brings_changes)
            assert counting.streams[-1] == device.store.setting(Setting.CURSOR)
        finally:
            live.stop()
            await runner

    asyncio.run(scenario())


def test_pages_behind_the_cursor_move_the_stream_to_it_without_a_pull(
    module_backend: BackendProcess, tmp_path: Path
) -> None:
    """A pull that the stream did not see (here: the engine's own, beside the live loop)
    takes the cursor past the stream's pages: the next page is behind the cursor, and the
    stream reconnects from the cursor, bringing the edit, with no pull of its own."""

    async def scenario() -> None:
        async with _pair(module_backend.url, tmp_path, "Behind", "first") as p:
            connections = len(p.counting.streams)

            p.counting.flowing.clear()  # the stream's page of the edit is held on the way
            p.a.set_task(p.task, title="second")
            await settle(p.a_engine)
            await p.b_live.engine.sync()  # the pull the stream does not see
            assert [t["title"] for t in p.b.tasks(p.board)] == ["second"]
            pulls, pulled_to = p.counting.pulls, p.b.store.setting(Setting.CURSOR)
            p.counting.flowing.set()  # the held page arrives, behind B's cursor

            p.a.set_task(p.task, title="third")
            await settle(p.a_engine)
            await _until(
                "B shows A's third edit",
                lambda: [t["title"] for t in p.b.tasks(p.board)] == ["third"],
            )
            await _until("the stream follows again", lambda: p.b_live.stream_brings_changes)

            assert p.counting.pulls == pulls, "B pulled instead of following its cursor"
            assert pulled_to in p.counting.streams[connections:], "not followed from the cursor"

    asyncio.run(scenario())
