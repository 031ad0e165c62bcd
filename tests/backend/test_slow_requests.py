"""Half-sent requests (FAULTS 25, the slow-request half): the header and body read timeouts
close them, while other requests are served and the live stream, whose response never ends,
streams on past both timeouts."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.backend import BackendProcess, ControlledNats
from tests.support.device import Device

pytestmark = pytest.mark.integration

TIMEOUT_S = 2
SHORT_TIMEOUTS = {
    "OUTPOST_HEADER_TIMEOUT_S": str(TIMEOUT_S),
    "OUTPOST_BODY_TIMEOUT_S": str(TIMEOUT_S),
}
WAIT_S = 60.0
"""Deadline for what the test waits for: generous, for a loaded 2-core machine."""

# What a slow client sends before it stalls: nothing, part of a request line, part of its
# headers, or all its headers and part of a body. 1,000 connections in all.
HALF_SENT = {
    "nothing": (b"", 100),
    "half a request line": (b"GET /v1/sync/pu", 300),
    "half the headers": (b"GET /v1/sync/pull HTTP/1.1\r\nHost: outpost\r\nAuthoriz", 300),
    # Signed in (TOKEN is replaced), so that the push waits for its body instead of 401.
    "half a body": (
        b"POST /v1/sync/push HTTP/1.1\r\nHost: outpost\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer TOKEN\r\n"
        b'Content-Length: 4000\r\n\r\n{"device": "d", "protocol": 1, "events": [',
        300,
    ),
}


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_until(what: str, condition: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.05)


@contextmanager
def enough_file_descriptors(count: int) -> Iterator[None]:
    """Room for ``count`` more sockets here and in the backend (it inherits the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, count + 1024))
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class LiveStream:
    """``GET /v1/sync/live`` on a raw socket, read in a thread; counts the pokes."""

    def __init__(self, url: str, token: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)))
        self.sock.sendall(
            f"GET /v1/sync/live HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        self.received = b""
        self.ended = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while chunk := self.sock.recv(65536):
                self.received += chunk
        except OSError:
            pass
        self.ended = True

    @property
    def pokes(self) -> int:
        return self.received.count(b"event: poke")

    def close(self) -> None:
        self.sock.close()
        self._thread.join(5)


def test_half_sent_requests_are_closed_while_others_are_served(
    tmp_path: Path, controlled_nats: ControlledNats
) -> None:
    total = sum(count for _, count in HALF_SENT.values())
    with enough_file_descriptors(total):
        backend = BackendProcess(
            tmp_path / "b", nats_url=controlled_nats.url, env=SHORT_TIMEOUTS
        ).start()
    assert backend.process is not None
    pid = backend.process.pid
    slow: dict[socket.socket, str] = {}
    live = None
    try:
        alice = Device(backend.url, "alice").signup()
        board, created = alice.new_board()
        alice.sync_until(alice.push(created)[0]["seq"])
        live = LiveStream(backend.url, str(alice.token))
        wait_until(
            "the live stream",
            lambda: live is not None and live.received.startswith(b"HTTP/1.1 200"),
        )
        baseline = open_fds(pid)

        with enough_file_descriptors(total):
            for kind, (sent, count) in HALF_SENT.items():
                for _ in range(count):
                    sock = socket.create_connection(("127.0.0.1", backend.port))
                    if sent:
                        sock.sendall(sent.replace(b"TOKEN", str(alice.token).encode()))
                    slow[sock] = kind
            wait_until(
                "the backend to accept every slow connection",
                lambda: open_fds(pid) >= baseline + total,
            )
            # Served while the thousand slow ones hold their connections.
            task, event = alice.new_task(board, title="served meanwhile")
            alice.sync_until(alice.push(event)[0]["seq"])
            assert alice.values("task", task) is not None

            answers, still_open = read_until_closed(slow)
        assert not still_open, f"{len(still_open)} of {total} half-sent requests still open"
        for kind in HALF_SENT:
            got = {answer for answer, kinds in answers.items() if kind in kinds}
            assert got == {"408"}, f"{kind}: {got}"

        wait_until("the backend's descriptors to come back", lambda: open_fds(pid) <= baseline + 5)
        # The live stream outlived both timeouts: it still carries pokes.
        pokes = live.pokes
        _, later = alice.new_task(board, title="after the slow ones")
        alice.push(later)
        wait_until("a poke after the timeouts", lambda: live is not None and live.pokes > pokes)
        assert not live.ended
    finally:
        for sock in slow:
            sock.close()
        if live is not None:
            live.close()
        backend.stop()


def read_until_closed(slow: dict[socket.socket, str]) -> tuple[dict[str, list[str]], list[str]]:
    """Read every slow connection until the server closes it (or WAIT_S passes): the kinds
    of request by what the server answered before closing (``408``, ``nothing`` or another
    status line), and the kinds of those still open."""
    selector = selectors.DefaultSelector()
    received: dict[socket.socket, bytes] = {}
    for sock in slow:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        received[sock] = b""
    answers: dict[str, list[str]] = {}
    deadline = time.monotonic() + WAIT_S
    while selector.get_map() and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.5):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if chunk:
                received[sock] += chunk
                continue
            selector.unregister(sock)
            answers.setdefault(_status(received[sock]), []).append(slow[sock])
    still_open = [slow[key.fileobj] for key in selector.get_map().values()]  # type: ignore[index]
    selector.close()
    return answers, still_open


def _status(raw: bytes) -> str:
    if not raw:
        return "nothing"
    line = raw.split(b"\r\n", 1)[0].decode(errors="replace")
    if line.startswith("HTTP/1.1 408") and b'"status_code": 408' in raw:
        return "408"
    return line


def send_slowly(port: int, head: bytes, body: bytes, chunk: int, every_s: float) -> bytes:
    """``head`` at once, then ``body`` ``chunk`` bytes every ``every_s``, until all is sent
    or the server closes; then everything the server answered."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(WAIT_S)
    try:
        sock.sendall(head)
        for start in range(0, len(body), chunk):
            try:
                sock.sendall(body[start : start + chunk])
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(every_s)
        received = b""
        with contextlib.suppress(ConnectionResetError):
            while piece := sock.recv(65536):
                received += piece
                if b"\r\n\r\n" in received and _complete(received):
                    break
        return received
    finally:
        sock.close()


def _complete(raw: bytes) -> bool:
    head, _, body = raw.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def test_a_slow_body_that_keeps_up_the_minimum_rate_is_read_whole_a_trickle_is_not(
    tmp_path: Path, controlled_nats: ControlledNats
) -> None:
    """Body timeout 2 s, minimum rate 1,000 B/s: a 16 KB push sent at about 4 KB/s takes
    about four seconds, twice the timeout, and is answered 200 (a slow link must not be
    refused for ever); a body trickled at 10 B/s is cut off with 408 while still sending."""
    env = {**SHORT_TIMEOUTS, "OUTPOST_BODY_MIN_RATE": "1000"}
    backend = BackendProcess(tmp_path / "b", nats_url=controlled_nats.url, env=env).start()
    try:
        alice = Device(backend.url, "alice").signup()
        board, created = alice.new_board()
        assert alice.push(created)[0]["status"] == "accepted"
        events = [alice.new_task(board, title="t" * 150, notes="n" * 1500)[1] for _ in range(10)]
        body = json.dumps({"device": alice.device_id, "protocol": 1, "events": events}).encode()
        assert len(body) > 16_000
        head = (
            f"POST /v1/sync/push HTTP/1.1\r\nHost: outpost\r\nAuthorization: Bearer "
            f"{alice.token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        # 16 or more chunks with a 0.25 s pause after each: at least 4 s, twice the timeout.
        answer = send_slowly(backend.port, head, body, chunk=1000, every_s=0.25)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
        assert b'"accepted"' in answer

        trickle = send_slowly(backend.port, head, body[:200], chunk=1, every_s=0.1)
        assert _status(trickle) == "408", trickle[:300]
    finally:
        backend.stop()
