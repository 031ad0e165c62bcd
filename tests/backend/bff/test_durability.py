"""Faults on real parts: NATS down or killed during pushes, the backend killed mid-projection,
the embedded nats-server killed under load, views rebuilt into a new generation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from protocol import Writer, merge, validate_event
from tests.support.backend import BackendProcess, ControlledNats
from tests.support.device import Device

pytestmark = pytest.mark.integration

FAST_503 = {"OUTPOST_PUBLISH_TIMEOUT_S": "1.5"}


def outpost(*args: str) -> str:
    command = [sys.executable, "-m", "outpost", *args]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def board_with_tasks(device: Device, count: int) -> tuple[str, list[dict[str, Any]]]:
    board, created = device.new_board()
    return board, [created] + [device.new_task(board, title=f"t{i}")[1] for i in range(count)]


def expected_views(nats: ControlledNats, username: str) -> dict[tuple[str, str], Any]:
    """The oracle: fold every event of the stream with the protocol's merge rules."""
    events = [
        validate_event({k: v for k, v in e.items() if k != "seq"}, Writer.BACKEND)
        for e in nats.events()
    ]
    states = merge.fold(events)
    return {
        (key.kind, key.id): merge.values(state)
        for key, state in states.items()
        if merge.values(state) is not None
    }


def pulled_views(device: Device) -> dict[tuple[str, str], Any]:
    return {key: change["values"] for key, change in device.state.items()}


def test_nats_down_during_push_is_503_and_a_resend_reports_what_was_stored(
    tmp_path: Path, controlled_nats: ControlledNats
) -> None:
    backend = BackendProcess(tmp_path / "b", nats_url=controlled_nats.url, env=FAST_503).start()
    try:
        alice = Device(backend.url, "alice").signup()
        _, events = board_with_tasks(alice, 5)
        assert {r["status"] for r in alice.push(*events[:2])} == {"accepted"}
        controlled_nats.kill()
        response = alice.push_raw(events[2:])
        assert response.status_code == 503
        assert int(response.headers["Retry-After"]) >= 1
        assert "resend the same events unchanged" in response.json()["detail"]
        health = httpx.get(f"{backend.url}/v1/health")
        assert health.status_code == 503 and health.json()["nats"] == "disconnected"
        assert alice.pull_page().status_code == 200  # reads still work
        controlled_nats.start()
        deadline = time.monotonic() + 20
        while True:
            response = alice.push_raw(events)  # byte for byte the same events, all of them
            if response.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        results = response.json()["results"]
        assert [r["status"] for r in results[:2]] == ["duplicate", "duplicate"]
        assert {r["status"] for r in results} <= {"accepted", "duplicate"}
        ids = [e["id"] for e in controlled_nats.events()]
        assert sorted(ids) == sorted(e["id"] for e in events), "each event stored exactly once"
    finally:
        backend.stop()


def test_killing_nats_during_a_push_stream_loses_nothing_acknowledged(
    tmp_path: Path, controlled_nats: ControlledNats
) -> None:
    backend = BackendProcess(tmp_path / "b", nats_url=controlled_nats.url, env=FAST_503).start()
    try:
        alice = Device(backend.url, "alice").signup()
        board, first = board_with_tasks(alice, 0)
        alice.push(*first)
        batches = [
            [alice.new_task(board, title=f"b{b}t{i}")[1] for i in range(20)] for b in range(100)
        ]
        acknowledged: dict[str, int] = {}
        codes: list[int] = []

        def pusher() -> None:
            for batch in batches:
                while True:  # a device resends the same batch until it gets an answer
                    response = alice.push_raw(batch)
                    codes.append(response.status_code)
                    if response.status_code == 200:
                        for result in response.json()["results"]:
                            acknowledged[result["id"]] = result["seq"]
                        break
                    time.sleep(0.2)

        thread = threading.Thread(target=pusher)
        thread.start()
        deadline = time.monotonic() + 30
        while len(acknowledged) < 100 and time.monotonic() < deadline:
            time.sleep(0.01)  # kill it mid-stream, whatever the machine's speed
        controlled_nats.kill()
        time.sleep(2)
        controlled_nats.start()
        thread.join(120)
        assert not thread.is_alive()
        assert 503 in codes, "the kill should have been seen by at least one push"
        stored = {e["id"]: e["seq"] for e in controlled_nats.events()}
        for event_id, seq in acknowledged.items():
            assert stored.get(event_id) == seq
        assert len(stored) == 1 + 2000 and len(controlled_nats.events()) == 2001
    finally:
        backend.stop()


def mid_batch(progress: tuple[int, int], last: int) -> bool:
    """Events delivered to the projector and not yet acknowledged (so not committed), and
    more to come up to ``last``."""
    delivered, acknowledged = progress
    return 0 < acknowledged < delivered and acknowledged < last


def test_a_backend_killed_mid_projection_ends_with_views_equal_to_the_oracle(
    tmp_path: Path, controlled_nats: ControlledNats
) -> None:
    data = tmp_path / "b"
    backend = BackendProcess(data, nats_url=controlled_nats.url).start()
    alice = Device(backend.url, "alice").signup()
    board, events = board_with_tasks(alice, 400)
    for start in range(0, len(events), 100):
        alice.push(*events[start : start + 100])
    edits = [
        alice.event("TaskUpdated", {"fields": {"priority": p}}, board=board, entity=e["entity"])
        for p in (1, 2, 3, 4)
        for e in events[1:]
    ]
    for start in range(0, len(edits), 400):
        seq = alice.push(*edits[start : start + 400])[-1]["seq"]
    # SIGKILL the moment the projector holds events delivered but not yet committed (it
    # acknowledges after its commit), so the kill lands inside a batch of projection.
    deadline = time.monotonic() + 60
    while not mid_batch(progress := controlled_nats.consumer_progress("projector"), seq):
        assert time.monotonic() < deadline, f"never seen mid-projection: {progress}, {seq}"
        time.sleep(0.002)
    backend.kill()
    at_kill = controlled_nats.consumer_progress("projector")  # no acknowledgement after it
    assert at_kill[1] < seq, f"the projector had finished before the kill: {at_kill}"
    restarted = BackendProcess(data, nats_url=controlled_nats.url)
    restarted.port = backend.port
    restarted.start()
    try:
        alice.sync_until(seq, timeout=30)
        assert pulled_views(alice) == expected_views(controlled_nats, "alice")
        ledger = json.loads(outpost("backend", "ledger", "--json", "--data-dir", str(data)))
        assert all(row["times"] == 1 for row in ledger)
        assert len(ledger) == len({row["id"] for row in ledger}) == len(controlled_nats.events())
    finally:
        restarted.stop()


def test_the_embedded_nats_server_is_supervised_and_loses_no_acknowledged_event(
    tmp_path: Path,
) -> None:
    data = tmp_path / "embedded"
    backend = BackendProcess(data, env=FAST_503).start()  # no --nats-url: embedded
    try:
        config = (data / "nats" / "nats-server.conf").read_text()
        assert "sync_interval: always" in config and "127.0.0.1" in config
        alice = Device(backend.url, "alice").signup()
        board, first = board_with_tasks(alice, 0)
        alice.push(*first)
        acknowledged: dict[str, int] = {}
        pid_file = data / "nats" / "nats-server.pid"
        old_pid = int(pid_file.read_text())
        for round_ in range(12):
            batch = [alice.new_task(board, title=f"r{round_}t{i}")[1] for i in range(25)]
            if round_ == 4:
                os.kill(old_pid, signal.SIGKILL)
            while (response := alice.push_raw(batch)).status_code != 200:
                assert response.status_code == 503
                time.sleep(0.2)
            acknowledged.update({r["id"]: r["seq"] for r in response.json()["results"]})
        assert int(pid_file.read_text()) != old_pid, "the supervisor restarted nats-server"
        alice.sync_until(max(acknowledged.values()), timeout=30)
        task_ids = {e for kind, e in alice.state if kind == "task"}
        assert len(task_ids) == 300
    finally:
        assert backend.stop() == 0
    assert not Path(f"/proc/{int(pid_file.read_text())}").exists(), "nats-server stopped too"


def test_a_rebuild_starts_a_new_generation_and_old_cursors_get_reset(
    tmp_path: Path, controlled_nats: ControlledNats
) -> None:
    data = tmp_path / "b"
    backend = BackendProcess(data, nats_url=controlled_nats.url).start()
    alice = Device(backend.url, "alice").signup()
    _, events = board_with_tasks(alice, 30)
    seq = alice.push(*events)[-1]["seq"]
    alice.sync_until(seq)
    before = pulled_views(alice)
    old_generation = httpx.get(f"{backend.url}/v1/sync/info").json()["generation"]
    backend.stop()
    outpost("backend", "rebuild", "--data-dir", str(data))
    backend.start()
    try:
        response = alice.pull_page(alice.cursor)
        body = response.json()
        assert body["reset"] is True and body["generation"] != old_generation
        alice.cursor = None
        alice.state.clear()
        alice.sync_until(seq)
        assert pulled_views(alice) == before
    finally:
        backend.stop()


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_and_sigterm_stop_the_backend_and_its_nats_server(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    data = tmp_path / "embedded"
    backend = BackendProcess(data).start()
    nats_pid = int((data / "nats" / "nats-server.pid").read_text())
    assert backend.process is not None
    backend.process.send_signal(stop_signal)
    assert backend.process.wait(20) == 0
    deadline = time.monotonic() + 5
    while Path(f"/proc/{nats_pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{nats_pid}").exists(), "the embedded nats-server was left running"


def test_a_stream_shorter_than_the_views_starts_a_new_generation(tmp_path: Path) -> None:
    """NATS data lost or restored older: the projector must not skip the new events."""
    first_nats = ControlledNats(tmp_path / "nats-a")
    data = tmp_path / "b"
    backend = BackendProcess(data, nats_url=first_nats.url).start()
    alice = Device(backend.url, "alice").signup()
    _, events = board_with_tasks(alice, 5)
    alice.sync_until(alice.push(*events)[-1]["seq"])
    old_generation = httpx.get(f"{backend.url}/v1/sync/info").json()["generation"]
    backend.stop()
    first_nats.stop()
    second_nats = ControlledNats(tmp_path / "nats-b")  # an empty stream
    restarted = BackendProcess(data, nats_url=second_nats.url)
    restarted.port = backend.port
    restarted.start()
    try:
        # The projector starts over (a new generation) when it first subscribes, in a task
        # the backend starts beside its HTTP server: answering does not mean it has yet.
        deadline = time.monotonic() + 30
        while httpx.get(f"{restarted.url}/v1/sync/info").json()["generation"] == old_generation:
            assert time.monotonic() < deadline, "the projector never started over"
            time.sleep(0.05)
        board, created = alice.new_board("After the loss")
        [result] = alice.push(created)
        assert result["seq"] == 1
        body = alice.pull_page(alice.cursor).json()
        assert body["reset"] is True and body["generation"] != old_generation
        alice.cursor, alice.state = None, {}
        alice.sync_until(1)
        assert alice.boards() == {board}
    finally:
        restarted.stop()
        second_nats.stop()
