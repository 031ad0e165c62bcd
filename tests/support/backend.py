"""A real backend for the tests: ``outpost backend`` in its own process, real HTTP to it,
and a nats-server the test controls (kill, restart) from a background event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import msgspec
import nats
import nats.js.errors
import pytest
from nats.aio.client import Client

from backend.launcher import BackendLauncher, LaunchError
from backend.nats import EmbeddedNats
from backend.nats.streams import EVENTS_STREAM, FAULTS_STREAM

T = TypeVar("T")


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
        """Every fault event of OUTPOST_FAULTS, decoded (not the records of their resolution)."""
        decoded = [
            msgspec.json.decode(data or b"{}")
            for _, data in self._loop.run(self._messages(FAULTS_STREAM))
        ]
        return [fault for fault in decoded if "seq" in fault]

    def publish(self, subject: str, data: bytes) -> int:
        """Publish straight to JetStream, past the BFF (a poison message); return its seq."""
        return self._loop.run(self._publish(subject, data))

    def last_seq(self, stream: str = EVENTS_STREAM) -> int:
        return self._loop.run(self._last_seq(stream))

    async def _last_seq(self, stream: str) -> int:
        info = await (await self._connection()).jetstream().stream_info(stream)
        return int(info.state.last_seq)

    def consumer_progress(self, durable: str, stream: str = EVENTS_STREAM) -> tuple[int, int]:
        """(last stream seq delivered, last stream seq acknowledged) of a component's
        durable consumer; (0, 0) while it has none. A component acknowledges after its
        commit, so the second says what it has surely done."""
        return self._loop.run(self._consumer_progress(durable, stream))

    async def _consumer_progress(self, durable: str, stream: str) -> tuple[int, int]:
        try:
            info = await (await self._connection()).jetstream().consumer_info(stream, durable)
        except nats.js.errors.NotFoundError:
            return 0, 0
        return int(info.delivered.stream_seq or 0), int(info.ack_floor.stream_seq or 0)

    def wait_consumed(self, durable: str, seq: int, timeout: float = 30) -> None:
        """Until ``durable`` has acknowledged (so committed) every event up to ``seq``: for a
        component with a durable consumer of its own (alone in its process). One fed by its
        process's shared fetch has none: ``wait_passed`` asks the backend instead."""
        deadline = time.monotonic() + timeout
        while self.consumer_progress(durable)[1] < seq:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{durable} did not get past seq {seq} in {timeout:.0f}s: "
                    f"{self.consumer_progress(durable)}"
                )
            time.sleep(0.05)

    def last_on(self, stream: str, subject: str) -> tuple[dict[str, str], bytes] | None:
        """The headers and body of the last message on ``subject``, or None if it has none."""
        return self._loop.run(self._last_on(stream, subject))

    async def _last_on(self, stream: str, subject: str) -> tuple[dict[str, str], bytes] | None:
        js = (await self._connection()).jetstream()
        try:
            message = await js.get_last_msg(stream, subject)
        except nats.js.errors.NotFoundError:
            return None
        return dict(message.headers or {}), message.data or b""

    def count_on(self, stream: str, subject: str) -> int:
        """How many messages ``stream`` holds on ``subject``."""
        return self._loop.run(self._count_on(stream, subject))

    async def _count_on(self, stream: str, subject: str) -> int:
        info = (
            await (await self._connection())
            .jetstream()
            .stream_info(stream, subjects_filter=subject)
        )
        return int((info.state.subjects or {}).get(subject, 0))

    def consumer_idle(self, durable: str, stream: str) -> bool:
        """Whether ``durable`` has nothing pending: every message delivered and acknowledged."""
        return self._loop.run(self._consumer_idle(durable, stream))

    async def _consumer_idle(self, durable: str, stream: str) -> bool:
        info = await (await self._connection()).jetstream().consumer_info(stream, durable)
        return not info.num_pending and not info.num_ack_pending

    def delete_stream(self, name: str = EVENTS_STREAM) -> None:
        """Delete a stream, as a lost or replaced NATS store would (the backend makes it again)."""
        self._loop.run(self._delete_stream(name))

    async def _delete_stream(self, name: str) -> None:
        await (await self._connection()).jetstream().delete_stream(name)

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


RAISED_LIMITS = {
    "OUTPOST_RATE_LIMIT_PER_S": "1000",
    "OUTPOST_RATE_LIMIT_BURST": "10000",
    "OUTPOST_SIGNUP_LIMIT": "100000",
}
"""The limits a test backend raises (every test signs its users up from 127.0.0.1); the
limits themselves are tested with their defaults or with their own settings."""


class BackendProcess(BackendLauncher):
    """``outpost backend`` for a test: fast sign-ups, raised limits (``RAISED_LIMITS``),
    and a failed start or stop fails the test with the backend's log."""

    def __init__(
        self,
        data_dir: Path,
        *,
        nats_url: str | None = None,
        db_url: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        defaults = {"OUTPOST_PASSWORD_TIME_COST": "1", **RAISED_LIMITS}
        super().__init__(
            data_dir, nats_url=nats_url, db_url=db_url, env={**defaults, **(env or {})}
        )

    def start(self, timeout_s: float = 30) -> BackendProcess:  # type: ignore[override]
        try:
            super().start(timeout_s)
        except LaunchError as exc:
            pytest.fail(str(exc))
        return self

    def wait_passed(self, component: str, seq: int, timeout: float = 30) -> None:
        """Until ``component`` has passed every event up to ``seq`` (``wait_passed``)."""
        wait_passed(self.url, component, seq, timeout)

    def stop(self, timeout_s: float = 20) -> int | None:
        try:
            return super().stop(timeout_s)
        except LaunchError as exc:
            pytest.fail(str(exc))


def wait_passed(url: str, component: str, seq: int, timeout: float = 30) -> None:
    """Until ``component`` of the backend at ``url`` has passed (committed or faulted) every
    event up to ``seq``: its ``position`` in ``/v1/health``, whichever way it fetches (a
    consumer fed by its process's shared fetch has no durable consumer to ask)."""
    deadline = time.monotonic() + timeout
    seen: Any = None
    while True:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            seen = httpx.get(f"{url}/v1/health", timeout=5).json()["consumers"][component]
            if (seen.get("position") or 0) >= seq:
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"{component} did not pass seq {seq} in {timeout:.0f}s: {seen}")
        time.sleep(0.05)


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


@contextmanager
def two_processes(
    data: Path,
    nats: ControlledNats,
    *,
    db_url: str | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[tuple[BackendProcess, BackendProcess]]:
    """Two BFF processes on one data folder and database, as behind a balancer; the second
    runs no stream consumers."""
    env = env or {}
    first = BackendProcess(data, nats_url=nats.url, db_url=db_url, env=env)
    second = BackendProcess(
        data, nats_url=nats.url, db_url=db_url, env={**env, "OUTPOST_COMPONENTS": ""}
    )
    try:
        first.start()
        second.start()
        yield first, second
    finally:
        second.stop()
        first.stop()


def reset_password(backend: BackendProcess, username: str) -> subprocess.CompletedProcess[str]:
    """``outpost users reset-password`` on ``backend``'s data (and database), as its operator
    runs it: the one-time password on stdout."""
    command = ["users", "reset-password", username, "--data-dir", str(backend.data_dir)]
    if backend.db_url is not None:
        command += ["--db-url", backend.db_url]
    return subprocess.run(
        [sys.executable, "-m", "outpost", *command],
        capture_output=True,
        text=True,
        env={**backend.env, "OUTPOST_PASSWORD_TIME_COST": "1"},
    )


def one_time_password(backend: BackendProcess, username: str) -> str:
    """A one-time password set for ``username`` (``reset_password``, which must succeed)."""
    reset = reset_password(backend, username)
    assert reset.returncode == 0, reset.stderr
    return reset.stdout.strip()


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A server that takes connections and never reads nor answers (one that hangs)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
