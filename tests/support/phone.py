"""A device profile with its sync engine, driven synchronously by a plain test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from client.device import Device
from client.sync.engine import SyncEngine
from client.sync.transport import connect
from tests.support.device import PASSWORD
from tests.support.transport import RecordingTransport


class Phone:
    """A device profile with its engine, driven synchronously by the test."""

    def __init__(
        self,
        folder: Path,
        server: str,
        transport: Callable[[], RecordingTransport] = RecordingTransport,
    ) -> None:
        self.device = Device(folder)
        self.transport = transport()
        self.http = connect(server, transport=self.transport)
        self.engine = SyncEngine(self.device, self.http)
        self._loop = asyncio.new_event_loop()

    def run(self, coro: Any) -> Any:
        return self._loop.run_until_complete(coro)

    def signup(self, username: str) -> Phone:
        self.run(self.engine.signup(username, PASSWORD))
        return self

    def login(self, username: str) -> Phone:
        self.run(self.engine.login(username, PASSWORD))
        return self

    def sync(self) -> Any:
        return self.run(self.engine.sync())

    def settle(self, rounds: int = 40) -> None:
        """Sync until nothing is pending (the projector runs on its own)."""
        for _ in range(rounds):
            self.sync()
            if self.device.pending_count() == 0:
                return
            time.sleep(0.1)
        raise AssertionError(f"{self.device.pending_count()} events still pending")

    def close(self) -> None:
        self.run(self.http.aclose())
        self._loop.close()
        self.device.close()


def phone_factory(
    tmp_path: Path, transport: Callable[[], RecordingTransport] = RecordingTransport
) -> Iterator[Callable[[str], Phone]]:
    """Make phones in ``tmp_path`` for a fixture; close them all afterwards."""
    made: list[Phone] = []

    def make(server: str) -> Phone:
        phone = Phone(tmp_path / f"phone{len(made)}", server, transport)
        made.append(phone)
        return phone

    yield make
    for phone in made:
        phone.close()


@pytest.fixture
def phones(tmp_path: Path) -> Iterator[Callable[[str], Phone]]:
    yield from phone_factory(tmp_path)
