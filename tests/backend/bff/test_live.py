"""Live pokes (``GET /v1/sync/live``) against real backend processes and real HTTP.

Each connection is read in a background thread that parses the Server-Sent Events itself and
keeps what arrived with the time it arrived. Every wait has a deadline. An absence ("no poke")
is asserted only after a sentinel proved that the same change notice reached the same process.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import msgspec
import pytest

from tests.support.backend import BackendProcess, ControlledNats
from tests.support.device import Device

pytestmark = pytest.mark.integration

T = TypeVar("T")

KEEPALIVE_S = 0.5
FAST_KEEPALIVE = {
    "OUTPOST_LIVE_KEEPALIVE_S": str(KEEPALIVE_S),
    "OUTPOST_LIVE_POKE_INTERVAL_S": "0.25",
}
WAIT_S = 20.0
"""How long a test waits for what it expects: generous, for a loaded 2-core machine."""
EXACT = {**FAST_KEEPALIVE, "OUTPOST_LIVE_POKE_INTERVAL_S": "0"}
"""No coalescing: every change pokes at once, so a sentinel's poke follows any wrong one."""


@dataclass(frozen=True)
class Received:
    at: float
    """``time.monotonic()`` when the line (comment) or the blank line (event) was read."""
    kind: str
    """``comment``, or the event's type (``message`` when it names none)."""
    data: str


class LiveStream:
    """One live connection, read in a daemon thread until it ends or is closed."""

    def __init__(self, device: Device, since: str | None = None) -> None:
        self.received: list[Received] = []
        self.status: int | None = None
        self.error: Exception | None = None
        self.ended = threading.Event()
        self.ended_at: float | None = None
        self._closing = threading.Event()
        self._changed = threading.Condition()
        url = f"{device.url}/v1/sync/live"
        if since is not None:
            url += "?" + urllib.parse.urlencode({"since": since})
        self._thread = threading.Thread(target=self._read, args=(url, device.headers), daemon=True)
        self._thread.start()

    def _read(self, url: str, headers: dict[str, str]) -> None:
        try:
            timeout = httpx.Timeout(10.0, read=WAIT_S)
            with httpx.stream("GET", url, headers=headers, timeout=timeout) as response:
                self.status = response.status_code
                if response.status_code == 200:
                    self._parse(response.iter_lines())
        except httpx.HTTPError as exc:
            self.error = exc
        finally:
            self.ended_at = time.monotonic()
            self.ended.set()
            with self._changed:
                self._changed.notify_all()

    def _parse(self, lines: Iterable[str]) -> None:
        """The SSE wire format: an event ends at a blank line and needs a ``data`` line."""
        kind, data = "message", list[str]()
        for line in lines:
            if self._closing.is_set():
                return
            if line.startswith(":"):
                self._add("comment", line[1:].removeprefix(" "))
            elif not line:
                if data:
                    self._add(kind, "\n".join(data))
                kind, data = "message", []
            else:
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "event":
                    kind = value
                elif name == "data":
                    data.append(value)

    def _add(self, kind: str, data: str) -> None:
        with self._changed:
            self.received.append(Received(time.monotonic(), kind, data))
            self._changed.notify_all()

    def snapshot(self) -> list[Received]:
        with self._changed:
            return list(self.received)

    def wait_for(self, what: str, found: Callable[[list[Received]], T | None]) -> T:
        deadline = time.monotonic() + WAIT_S
        with self._changed:
            while (result := found(self.received)) is None:
                left = deadline - time.monotonic()
                if left <= 0 or self.ended.is_set():
                    raise AssertionError(
                        f"no {what} within {WAIT_S}s (status {self.status}, error "
                        f"{self.error!r}, ended {self.ended.is_set()}): {self.received}"
                    )
                self._changed.wait(left)
            return result

    def wait_connected(self) -> Received:
        return self.wait_for("': connected'", lambda got: _first(got, "comment", "connected"))

    def pokes(self) -> list[int]:
        return [_watermark(r) for r in self.snapshot() if r.kind == "poke"]

    def wait_poke(self, seq: int) -> int:
        """The watermark of the first poke that covers ``seq``."""
        return self.wait_for(
            f"poke covering seq {seq}",
            lambda got: next((w for w in map(_watermark, _pokes(got)) if w >= seq), None),
        )

    def close(self) -> None:
        """Stop reading: the thread notices at the next line (keep-alives keep them coming)."""
        self._closing.set()
        self._thread.join(WAIT_S)


def _first(received: list[Received], kind: str, data: str) -> Received | None:
    return next((r for r in received if (r.kind, r.data) == (kind, data)), None)


def _pokes(received: list[Received]) -> list[Received]:
    return [r for r in received if r.kind == "poke"]


def _watermark(poke: Received) -> int:
    body = msgspec.json.decode(poke.data)
    assert set(body) == {"watermark"}, poke
    return int(body["watermark"])


@contextmanager
def live(device: Device, since: str | None = None) -> Iterator[LiveStream]:
    """A live connection (with ``since``: ``event: changes`` pages from that cursor)."""
    stream = LiveStream(device, since)
    try:
        stream.wait_connected()
        yield stream
    finally:
        stream.close()


def user(backend: BackendProcess, name: str) -> Device:
    return Device(backend.url, f"{name}{uuid.uuid4().hex[:8]}").signup()


def pushed(device: Device, *events: dict[str, Any]) -> int:
    """Push events that must all be accepted; the last one's stream seq."""
    results = device.push(*events)
    assert [r["status"] for r in results] == ["accepted"] * len(events), results
    return int(results[-1]["seq"])


@pytest.fixture(scope="module")
def live_backend(
    tmp_path_factory: pytest.TempPathFactory, module_nats: ControlledNats
) -> Iterator[BackendProcess]:
    """One backend with a fast keep-alive, so a closed reader thread ends quickly."""
    data_dir = tmp_path_factory.mktemp("backend")
    process = BackendProcess(data_dir, nats_url=module_nats.url, env=FAST_KEEPALIVE).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def exact_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendProcess]:
    """A backend that pokes every change at once (no coalescing), for the tests that show
    a connection was NOT poked: there, a sentinel's poke comes after any wrong one."""
    data_dir = tmp_path_factory.mktemp("exact")
    # Its own (embedded) nats-server: two backends on one stream would share its consumers.
    process = BackendProcess(data_dir, env=EXACT).start()
    try:
        yield process
    finally:
        process.stop()


def test_a_push_pokes_the_owner_but_not_a_user_who_cannot_see_the_board(
    exact_backend: BackendProcess,
) -> None:
    alice, bob = user(exact_backend, "alice"), user(exact_backend, "bob")
    with live(alice) as alice_live, live(bob) as bob_live:
        board, created = alice.new_board()
        seq = pushed(alice, created, alice.new_task(board)[1])
        assert alice_live.wait_poke(seq) >= seq
        # Bob's sentinel: his own push, after the notice that poked Alice was offered to his
        # connection too. His first poke must be for it, not for Alice's board.
        bob_seq = pushed(bob, bob.new_board()[1])
        bob_live.wait_poke(bob_seq)
        assert min(bob_live.pokes()) >= bob_seq
        # And Alice's sentinel after Bob's push: no poke of hers in between.
        alice_seq = pushed(alice, alice.new_task(board, title="sentinel")[1])
        alice_live.wait_poke(alice_seq)
        assert not [w for w in alice_live.pokes() if bob_seq <= w < alice_seq]


def test_a_push_on_one_process_pokes_a_live_client_of_another(
    tmp_path: Path, controlled_nats: ControlledNats
) -> None:
    data_dir = tmp_path / "backend"  # shared: the same databases and token signing secret
    process_a = BackendProcess(data_dir, nats_url=controlled_nats.url, env=FAST_KEEPALIVE)
    process_b = BackendProcess(
        data_dir,
        nats_url=controlled_nats.url,
        env={**FAST_KEEPALIVE, "OUTPOST_COMPONENTS": ""},  # a BFF only
    )
    try:
        process_a.start()
        process_b.start()
        alice = user(process_a, "alice")
        on_b = Device(process_b.url, alice.username)
        on_b.token = alice.token
        with live(on_b) as stream:
            board, created = alice.new_board()
            task, create_task = alice.new_task(board, title="pushed on A")
            seq = pushed(alice, created, create_task)
            assert stream.wait_poke(seq) >= seq
        on_b.pull()
        assert on_b.watermark >= seq
        assert on_b.values("task", task)["title"] == "pushed on A"  # type: ignore[index]
    finally:
        process_b.stop()
        process_a.stop()


def test_a_quiet_connection_gets_keep_alive_comments_regularly(
    live_backend: BackendProcess,
) -> None:
    def keepalives(got: list[Received]) -> list[Received]:
        return [r for r in got if (r.kind, r.data) == ("comment", "keep-alive")]

    with live(user(live_backend, "alice")) as stream:
        stream.wait_for("three keep-alives", lambda got: len(keepalives(got)) >= 3 or None)
        received = stream.snapshot()
    # Nothing but the greeting and the keep-alives: no flood, and no event dispatched.
    assert len(received) <= len(keepalives(received)) + 1, received
    assert {r.kind for r in received} == {"comment"}, "a comment must not dispatch an event"


def test_a_burst_of_pushes_is_coalesced_into_fewer_pokes(live_backend: BackendProcess) -> None:
    """Changes that come within the coalescing window of a poke (a quarter second here, so
    that 30 pushes in a row surely fall into a few windows) join the next poke."""
    alice = user(live_backend, "alice")
    board, created = alice.new_board()
    alice.sync_until(pushed(alice, created))
    with live(alice) as stream:
        seqs = [pushed(alice, alice.new_task(board, title=f"t{i}")[1]) for i in range(30)]
        stream.wait_poke(seqs[-1])
        pokes = stream.pokes()
    assert 1 <= len(pokes) < len(seqs), pokes
    assert pokes == sorted(pokes)
    assert pokes[-1] >= seqs[-1]


def test_a_member_is_poked_when_added_and_no_longer_after_removal(
    exact_backend: BackendProcess,
) -> None:
    alice, bob = user(exact_backend, "alice"), user(exact_backend, "bob")
    board, created = alice.new_board()
    alice.sync_until(pushed(alice, created))
    with live(alice) as alice_live, live(bob) as bob_live:
        added = pushed(alice, alice.event("MemberAdded", {"username": bob.username}, board=board))
        bob_live.wait_poke(added)
        shared = pushed(alice, alice.new_task(board, title="for Bob")[1])
        bob_live.wait_poke(shared)

        removed = pushed(
            alice, alice.event("MemberRemoved", {"username": bob.username}, board=board)
        )
        bob_live.wait_poke(removed)
        after = pushed(alice, alice.new_task(board, title="not for Bob")[1])
        alice_live.wait_poke(after)  # the notice reached this process ...
        sentinel = pushed(bob, bob.new_board()[1])  # ... and then Bob's own, after it
        bob_live.wait_poke(sentinel)
        assert not [w for w in bob_live.pokes() if after <= w < sentinel]


def test_shutdown_ends_live_streams_cleanly_and_promptly(
    tmp_path: Path, controlled_nats: ControlledNats
) -> None:
    """With the default 15 s keep-alive: the stream must end because of the stop itself."""
    process = BackendProcess(tmp_path / "backend", nats_url=controlled_nats.url).start()
    try:
        stream = LiveStream(user(process, "alice"))
        stream.wait_connected()
        code = process.stop()
        assert stream.ended.wait(WAIT_S)
    finally:
        process.kill()
    assert code == 0, process.tail()
    assert stream.error is None, f"the stream broke instead of ending: {stream.error!r}"
    # A stream that only a timeout could end makes uvicorn give up its graceful shutdown.
    assert "timeout graceful shutdown exceeded" not in process.tail(), process.tail()
