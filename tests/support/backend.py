"""A real backend for the tests: ``outpost backend`` in its own process, real HTTP to it,
and a nats-server the test controls (kill, restart) from a background event loop."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import msgspec
import nats
import pytest
from nats.aio.client import Client

from backend.nats import EmbeddedNats
from backend.nats.streams import EVENTS_STREAM, FAULTS_STREAM

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BackgroundLoop:
    """An event loop in a thread, for async parts driven from plain sync tests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


class ControlledNats:
    """A nats-server the test owns: backends connect to its URL; the test kills it."""

    def __init__(self, store: Path) -> None:
        self._loop = BackgroundLoop()
        self.server = EmbeddedNats(store, backoff_initial_s=0.05, stop_timeout_s=5)
        self._loop.run(self.server.start(supervise=False))
        self._client: Client | None = None

    @property
    def url(self) -> str:
        return self.server.url

    def kill(self) -> None:
        self.server.kill()
        time.sleep(0.2)

    def start(self) -> None:
        self._loop.run(self.server.start(supervise=False))

    def stop(self) -> None:
        if self._client is not None:
            self._loop.run(self._client.close())
            self._client = None
        self._loop.run(self.server.stop())
        self._loop.close()

    def events(self) -> list[dict[str, Any]]:
        """Every message of OUTPOST_EVENTS, decoded, in stream order."""
        return [
            {"seq": seq, **msgspec.json.decode(data or b"{}")}
            for seq, data in self._loop.run(self._messages(EVENTS_STREAM))
        ]

    def faults(self) -> list[dict[str, Any]]:
        """Every fault event of OUTPOST_FAULTS, decoded."""
        return [
            msgspec.json.decode(data) for _, data in self._loop.run(self._messages(FAULTS_STREAM))
        ]

    def publish(self, subject: str, data: bytes) -> int:
        """Publish straight to JetStream, past the BFF (a poison message); return its seq."""
        return self._loop.run(self._publish(subject, data))

    async def _connection(self) -> Client:
        if self._client is None or not self._client.is_connected:
            self._client = await nats.connect(self.url, max_reconnect_attempts=3)
        return self._client

    async def _publish(self, subject: str, data: bytes) -> int:
        ack = await (await self._connection()).jetstream().publish(subject, data)
        return int(ack.seq)

    async def _messages(self, stream: str) -> list[tuple[int, bytes | None]]:
        js = (await self._connection()).jetstream()
        info = await js.stream_info(stream)
        if not info.state.messages:
            return []
        found = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            message = await js.get_msg(stream, seq)
            found.append((seq, message.data))
        return found


class BackendProcess:
    """``outpost backend`` in a child process, on a free port, with a data folder."""

    def __init__(
        self,
        data_dir: Path,
        *,
        nats_url: str | None = None,
        db_url: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.nats_url = nats_url
        self.db_url = db_url
        self.env = {
            **os.environ,
            "OUTPOST_PASSWORD_TIME_COST": "1",
            "OUTPOST_RATE_LIMIT_PER_S": "1000",
            "OUTPOST_RATE_LIMIT_BURST": "10000",
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir / "backend.log"

    def start(self, timeout: float = 30) -> BackendProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "outpost", "backend", "--data-dir", str(self.data_dir)]
        command += ["--port", str(self.port)]
        if self.nats_url:
            command += ["--nats-url", self.nats_url]
        if self.db_url:
            command += ["--db-url", self.db_url]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log, env=self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"backend exited with {self.process.returncode}:\n{self.tail()}")
            try:
                if httpx.get(f"{self.url}/v1/sync/info", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        pytest.fail(f"backend did not start in {timeout}s:\n{self.tail()}")

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGUSR1)  # the backend dumps its stacks to the log
            time.sleep(1)
            self.process.kill()
            self.process.wait(5)
            pytest.fail(f"backend did not stop on SIGTERM:\n{self.tail()}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture
def controlled_nats(tmp_path: Path) -> Iterator[ControlledNats]:
    server = ControlledNats(tmp_path / "nats")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def backend(tmp_path: Path, controlled_nats: ControlledNats) -> Iterator[BackendProcess]:
    """A backend on SQLite files, using a nats-server the test controls."""
    process = BackendProcess(tmp_path / "backend", nats_url=controlled_nats.url).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def module_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlledNats]:
    server = ControlledNats(tmp_path_factory.mktemp("nats"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def module_backend(
    tmp_path_factory: pytest.TempPathFactory, module_nats: ControlledNats
) -> Iterator[BackendProcess]:
    """One backend for a whole test module; tests keep apart by using their own users."""
    process = BackendProcess(tmp_path_factory.mktemp("backend"), nats_url=module_nats.url).start()
    try:
        yield process
    finally:
        process.stop()
