"""Renewing a session: a busy server at refresh time keeps the session for later."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from client.device import Device
from client.errors import ServerUnreachable
from client.store.settings import Setting, write_setting
from client.sync.engine import SyncEngine
from client.sync.transport import connect


def busy_at_refresh(request: httpx.Request) -> httpx.Response:
    """The token has expired, and the server is too busy to renew it."""
    if request.url.path == "/v1/auth/refresh":
        body = {"status_code": 503, "detail": "the database is unavailable"}
        return httpx.Response(503, json=body, headers={"retry-after": "2"})
    return httpx.Response(401, json={"status_code": 401, "detail": "token expired"})


def test_a_busy_server_at_refresh_keeps_the_session(tmp_path: Path) -> None:
    device = Device(tmp_path / "d")
    with device.store.write() as conn:
        write_setting(conn, Setting.USERNAME, "alice")
        write_setting(conn, Setting.TOKEN, "expired")
        write_setting(conn, Setting.REFRESH_TOKEN, "still-valid")
    http = connect("http://outpost.test", transport=httpx.MockTransport(busy_at_refresh))
    engine = SyncEngine(device, http)
    loop = asyncio.new_event_loop()
    with pytest.raises(ServerUnreachable, match="cannot renew the session now"):
        loop.run_until_complete(engine.sync())
    assert device.store.setting(Setting.REFRESH_TOKEN) == "still-valid", (
        "a transient 503 discarded the session"
    )
