"""Renewing a session: a busy server at refresh time keeps the session for later."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from client.device import Device
from client.errors import ServerUnreachable
from client.store.settings import Setting, write_setting
from client.sync.engine import SyncEngine
from client.sync.transport import Reply


class StubTransport:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        params: Mapping[str, Any] | None = None,
        token: str | None = None,
    ) -> Reply:
        self.calls.append(path)
        if path == "/v1/auth/refresh":
            return Reply(
                503,
                b'{"status_code":503,"detail":"the database is unavailable"}',
                {"retry-after": "2"},
            )
        return Reply(401, b'{"status_code":401,"detail":"token expired"}')

    def live(self, token: str) -> Any:
        raise AssertionError("no live stream in this test")

    async def close(self) -> None:
        pass


def test_a_busy_server_at_refresh_keeps_the_session(tmp_path: Path) -> None:
    device = Device(tmp_path / "d")
    with device.store.write() as conn:
        write_setting(conn, Setting.USERNAME, "alice")
        write_setting(conn, Setting.TOKEN, "expired")
        write_setting(conn, Setting.REFRESH_TOKEN, "still-valid")
    engine = SyncEngine(device, StubTransport())
    loop = asyncio.new_event_loop()
    with pytest.raises(ServerUnreachable, match="cannot renew the session now"):
        loop.run_until_complete(engine.sync())
    assert device.store.setting(Setting.REFRESH_TOKEN) == "still-valid", (
        "a transient 503 discarded the session"
    )
