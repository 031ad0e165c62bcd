"""The per-user cap on live connections (``OUTPOST_LIVE_MAX_PER_USER``), against real backend
processes on one NATS: the oldest connections beyond the cap are closed, wherever they are
served; the newest keep getting pokes; other users are served; a client that opens
connection after connection never holds more than the cap."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backend.bff.test_live import FAST_KEEPALIVE, WAIT_S, LiveStream, pushed, user
from tests.support.backend import BackendProcess, ControlledNats, two_processes
from tests.support.device import Device

pytestmark = pytest.mark.integration

CAP = 3
CAPPED = {**FAST_KEEPALIVE, "OUTPOST_LIVE_MAX_PER_USER": str(CAP)}


@pytest.fixture
def capped_pair(
    tmp_path: Path, controlled_nats: ControlledNats
) -> Iterator[tuple[BackendProcess, BackendProcess]]:
    """Two processes on the same databases and token signing secret, the cap set."""
    with two_processes(tmp_path / "backend", controlled_nats, env=CAPPED) as pair:
        yield pair


def on(process: BackendProcess, device: Device) -> Device:
    """The same user and token, through another process."""
    other = Device(process.url, device.username, device_id=device.device_id)
    other.token = device.token
    return other


def opened(device: Device) -> LiveStream:
    stream = LiveStream(device)
    stream.wait_connected()
    return stream


def wait_ended(stream: LiveStream, what: str) -> None:
    assert stream.ended.wait(WAIT_S), f"{what} was not closed: {stream.snapshot()}"
    assert stream.error is None, f"{what} broke instead of ending: {stream.error!r}"


def test_the_oldest_connections_beyond_the_cap_are_closed_across_two_processes(
    capped_pair: tuple[BackendProcess, BackendProcess],
) -> None:
    first, second = capped_pair
    alice = user(first, "alice")
    bob = user(first, "bob")
    board, created = alice.new_board()
    alice.sync_until(pushed(alice, created))
    streams: list[LiveStream] = []
    try:
        # Oldest first; each is open before the next: 1 on the second process, 2 and 3 on
        # the first, 4 on the second, 5 on the first. With a cap of 3, 1 and 2 are closed:
        # 1 by the second process, which learns of 2, 3 and 5 from the first; 2 by the
        # first, which learns of 4 from the second.
        for process in (second, first, first, second, first):
            streams.append(opened(on(process, alice)))
        streams.append(bobs := opened(bob))
        oldest, second_oldest, *newest = streams[:-1]
        wait_ended(oldest, "the oldest connection")
        wait_ended(second_oldest, "the second oldest connection")
        for closed in (oldest, second_oldest):
            comments = [r.data for r in closed.snapshot() if r.kind == "comment"]
            assert any(f"more than {CAP} live connections" in c for c in comments), comments

        seq = pushed(alice, alice.new_task(board, title="for the newest")[1])
        for stream in newest:
            assert stream.wait_poke(seq) >= seq
            assert not stream.ended.is_set()
        bob_seq = pushed(bob, bob.new_board()[1])
        assert bobs.wait_poke(bob_seq) >= bob_seq  # another user is served as before
    finally:
        for stream in streams:
            stream.close()


def test_a_client_that_opens_connection_after_connection_holds_at_most_the_cap(
    tmp_path: Path, controlled_nats: ControlledNats
) -> None:
    process = BackendProcess(tmp_path / "backend", nats_url=controlled_nats.url, env=CAPPED)
    process.start()
    streams: list[LiveStream] = []
    try:
        alice = user(process, "alice")
        streams = [LiveStream(alice) for _ in range(60)]  # all at once, as a runaway client
        deadline = time.monotonic() + WAIT_S
        while sum(s.ended.is_set() for s in streams) < len(streams) - CAP:
            assert time.monotonic() < deadline, [s.ended.is_set() for s in streams]
            time.sleep(0.05)
        alive = [s for s in streams if not s.ended.is_set()]
        assert len(alive) == CAP
        assert all(s.status == 200 and s.error is None for s in streams)

        bob = user(process, "bob")
        with_bob = opened(bob)
        try:
            seq = pushed(alice, alice.new_board()[1])
            for stream in alive:
                assert stream.wait_poke(seq) >= seq
            bob_seq = pushed(bob, bob.new_board()[1])
            assert with_bob.wait_poke(bob_seq) >= bob_seq
            assert bob.pull_page().status_code == 200
        finally:
            with_bob.close()
        assert len([s for s in streams if not s.ended.is_set()]) == CAP
    finally:
        for stream in streams:
            stream.close()
        process.stop()
