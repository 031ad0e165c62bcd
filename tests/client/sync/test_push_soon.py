"""A local action's event leaves at once, even while a cycle is busy downloading; and an
upload and a download refused together for an expired token renew the session once.

The server here is a script at httpx's seam, so that a download can be held open for as
long as the test needs and two requests can be refused at the same moment."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec

from client.device import Device
from client.store.settings import Setting, write_setting
from client.sync.engine import SyncEngine
from client.sync.runner import LiveSync
from client.sync.transport import connect


def _page() -> dict[str, Any]:
    return {
        "changes": [],
        "cursor": "c1",
        "has_more": False,
        "watermark": 0,
        "server_time": time.time_ns() // 1_000_000,
        "generation": "g1",
        "reset": False,
    }


def _accept(request: httpx.Request) -> httpx.Response:
    events = msgspec.json.decode(request.content)["events"]
    results = [{"id": e["id"], "status": "accepted", "seq": i + 1} for i, e in enumerate(events)]
    body = {
        "results": results,
        "server_time": time.time_ns() // 1_000_000,
        "watermark": 0,
        "generation": "g1",
    }
    return httpx.Response(200, json=body)


class SlowDownloads(httpx.AsyncBaseTransport):
    """Pulls wait until the test lets them go; pushes are accepted at once."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.pull_started = asyncio.Event()
        self.release_pulls = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v1/sync/pull":
            self.log.append("pull sent")
            self.pull_started.set()
            await self.release_pulls.wait()
            self.log.append("pull answered")
            return httpx.Response(200, json=_page())
        if path == "/v1/sync/push":
            self.log.append("push")
            return _accept(request)
        return httpx.Response(503, json={"status_code": 503, "detail": "no live stream here"})


def _signed_in(folder: Path, token: str = "good") -> Device:
    device = Device(folder)
    with device.store.write() as conn:
        write_setting(conn, Setting.USERNAME, "alice")
        write_setting(conn, Setting.TOKEN, token)
        write_setting(conn, Setting.REFRESH_TOKEN, "refresh-1")
    return device


async def _within(event: asyncio.Event, what: str, seconds: float = 10) -> None:
    try:
        await asyncio.wait_for(event.wait(), timeout=seconds)
    except TimeoutError:
        raise AssertionError(f"{what} never happened") from None


def test_a_local_action_is_sent_while_a_download_is_under_way(tmp_path: Path) -> None:
    async def scenario() -> list[str]:
        server = SlowDownloads()
        device = _signed_in(tmp_path / "d")
        live = LiveSync(device, connect("http://outpost.test", transport=server), periodic_s=60)
        runner = asyncio.create_task(live.run())
        try:
            await _within(server.pull_started, "the first cycle's download")
            device.create_board("Errands")  # the user acts while the download hangs
            live.wake()
            deadline = time.monotonic() + 10
            while "push" not in server.log and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            server.release_pulls.set()
            deadline = time.monotonic() + 10
            while "pull answered" not in server.log and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        finally:
            live.stop()
            await runner
        return server.log

    log = asyncio.run(scenario())

    assert log[:3] == ["pull sent", "push", "pull answered"], log


class ExpiredTogether(httpx.AsyncBaseTransport):
    """The access token "expired" is refused, but only once two requests carry it, so both
    are refused at the same moment; refresh tokens rotate, and a second use of one is
    refused, as the real server does."""

    def __init__(self) -> None:
        self.refreshes: list[str] = []
        self._expired: list[asyncio.Event] = []
        self._both = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v1/auth/refresh":
            used = msgspec.json.decode(request.content)["refresh_token"]
            self.refreshes.append(used)
            if used != "refresh-1":
                return httpx.Response(401, json={"status_code": 401, "detail": "reused"})
            session = {
                "user_id": "u1",
                "username": "alice",
                "token": "fresh",
                "expires_in": 900,
                "refresh_token": "refresh-2",
            }
            return httpx.Response(200, json=session)
        if request.headers.get("authorization") == "Bearer expired":
            self._expired.append(asyncio.Event())
            if len(self._expired) == 2:
                self._both.set()
            await self._both.wait()
            return httpx.Response(401, json={"status_code": 401, "detail": "token expired"})
        if path == "/v1/sync/pull":
            return httpx.Response(200, json=_page())
        return _accept(request)

    @property
    def waiting(self) -> int:
        return len(self._expired)


def test_an_upload_and_a_download_refused_together_renew_the_session_once(
    tmp_path: Path,
) -> None:
    async def scenario() -> ExpiredTogether:
        server = ExpiredTogether()
        device = _signed_in(tmp_path / "d", token="expired")
        engine = SyncEngine(device, connect("http://outpost.test", transport=server))
        cycle = asyncio.create_task(engine.sync())  # nothing to send: its pull goes first
        while server.waiting < 1:
            await asyncio.sleep(0.01)
        device.create_board("Errands")
        upload = asyncio.create_task(engine.push_pending())
        await asyncio.wait_for(asyncio.gather(cycle, upload), timeout=10)
        return server

    server = asyncio.run(scenario())

    assert server.refreshes == ["refresh-1"], "the refresh token was spent twice"
    device = Device(tmp_path / "d")
    assert device.store.setting(Setting.TOKEN) == "fresh"
    assert device.pending_count() == 1  # sent and accepted: waiting for the watermark


class HeldUpload(httpx.AsyncBaseTransport):
    """A push that the server stores, answered only when the test lets it go."""

    def __init__(self) -> None:
        self.push_arrived = asyncio.Event()
        self.release_push = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/sync/push":
            self.push_arrived.set()
            await self.release_push.wait()
            return _accept(request)
        return httpx.Response(200, json=_page())


def test_a_board_lost_while_its_events_are_being_sent_does_not_reject_what_was_stored(
    tmp_path: Path,
) -> None:
    # The board is taken away by a page that arrives while the upload of its new task is
    # out (and stored by the server): the page waits for the answer, so the task is not
    # reported rejected. Applied at once, it would have been (it was still unsent).
    async def scenario() -> tuple[Device, str, bool]:
        server = HeldUpload()
        device = _signed_in(tmp_path / "d")
        with device.store.write() as conn:
            write_setting(conn, Setting.CURSOR, "c0")
        engine = SyncEngine(device, connect("http://outpost.test", transport=server))
        board = device.create_board("Soon gone")
        upload = asyncio.create_task(engine.push_pending())
        await _within(server.push_arrived, "the upload")
        removal = {
            **_page(),
            "changes": [
                {
                    "kind": "board",
                    "id": board,
                    "board": board,
                    "version": 9,
                    "removed": True,
                    "values": None,
                }
            ],
        }
        page = asyncio.create_task(engine.apply_live_page(removal, "c0"))
        await asyncio.sleep(0.2)
        waited = not page.done()  # the page waits for the upload's answer
        server.release_push.set()
        await asyncio.wait_for(asyncio.gather(upload, page), timeout=10)
        return device, board, waited

    device, board, waited = asyncio.run(scenario())

    assert waited
    assert device.rejected() == [], "a stored event was reported rejected"
    assert board not in {b["id"] for b in device.snapshot()["boards"]}
