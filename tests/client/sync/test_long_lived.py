"""Long-lived devices: ``outpost client run`` in its own process, and the sync thread an
app uses, both kept in sync live by pokes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from client.device import Device
from client.sync.engine import Progress
from client.sync.runner import SyncThread
from tests.support.backend import BackendProcess
from tests.support.device import PASSWORD

pytestmark = pytest.mark.integration


def client(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "outpost", "client", "--data-dir", str(folder), *args]
    env = {**os.environ, "OUTPOST_PASSWORD": PASSWORD}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)


def wait_for(condition: Any, timeout: float = 20, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def titles(folder: Path) -> list[str]:
    done = client(folder, "show", "--json")
    assert done.returncode == 0, (done.returncode, done.stderr)
    shown = json.loads(done.stdout)
    return [t["title"] for b in shown["boards"] for t in b["tasks"]]


def test_outpost_client_run_follows_another_device_live_and_stops_on_sigterm(
    tmp_path: Path, module_backend: BackendProcess
) -> None:
    username = f"runner{uuid.uuid4().hex[:6]}"
    writer, follower = tmp_path / "writer", tmp_path / "follower"
    assert client(writer, "--server", module_backend.url, "signup", username).returncode == 0
    assert client(follower, "--server", module_backend.url, "login", username).returncode == 0
    board = client(writer, "board", "create", "Live").stdout.strip()
    command = [
        sys.executable,
        "-m",
        "outpost",
        "client",
        "--data-dir",
        str(follower),
        "run",
        "--periodic",
        "600",
    ]  # only a poke can bring changes in time
    running = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        assert running.stderr is not None
        assert running.stderr.readline().strip() == "outpost client: live updates on"
        client(writer, "task", "add", board, "Seen live")
        client(writer, "sync")
        wait_for(lambda: "Seen live" in titles(follower), what="the poke to bring the task")
    finally:
        running.send_signal(signal.SIGTERM)
        assert running.wait(20) == 0


def test_the_sync_thread_never_blocks_the_caller_and_reports_progress(
    tmp_path: Path, module_backend: BackendProcess
) -> None:
    device = Device(tmp_path / "app")
    reports: list[tuple[str, int]] = []

    def on_progress(progress: Progress) -> None:
        reports.append((progress.state, progress.pending))

    thread = SyncThread(device, module_backend.url, on_progress=on_progress, periodic_s=600)
    thread.start()
    try:
        board = device.create_board("Made before signing in")  # works at once, offline
        gate = threading.Event()
        held = thread.submit(asyncio.to_thread(gate.wait, 30))
        assert not held.done(), "submitting work does not wait for it"
        gate.set()
        assert held.result(30) is True
        future = thread.submit(thread.sync.engine.signup(f"app{uuid.uuid4().hex[:6]}", PASSWORD))
        future.result(30)
        signed_up = len(reports)  # from here on the board is pending until a pull drains it
        thread.sync_now()
        wait_for(lambda: device.pending_count() == 0, what="the outbox to drain")
        # The page that drains it is stored (and reported `syncing`) a moment before its
        # cycle ends and reports how it went, on the sync thread; the live stream's first
        # connection or a poke may start yet another cycle. How the draining cycle ended:
        ended: list[str] = []

        def draining_cycle_ended() -> bool:
            after = [state for state, pending in reports[signed_up:] if not pending]
            ended[:] = [state for state in after if state != "syncing"][:1]
            return bool(ended)

        wait_for(draining_cycle_ended, what="the cycle that drained the outbox to end")
        assert device.boards()[0]["id"] == board
        assert device.boards()[0]["owner"] == device.username
        assert ("syncing" in {state for state, _ in reports}) and ended == ["up_to_date"]
    finally:
        thread.stop()
        device.close()


def test_a_device_whose_wall_clock_is_a_day_fast_is_corrected_once_and_stays_corrected(
    tmp_path: Path, module_backend: BackendProcess
) -> None:
    fast = tmp_path / "fast"
    day = str(86_400_000)
    username = f"fast{uuid.uuid4().hex[:6]}"
    assert client(fast, "--server", module_backend.url, "signup", username).returncode == 0
    board = client(fast, "--clock-error-ms", day, "board", "create", "Tomorrow").stdout.strip()
    assert client(fast, "--clock-error-ms", day, "sync").returncode == 0
    client(fast, "--clock-error-ms", day, "task", "add", board, "Still fast")
    device = Device(fast)
    with device.store.read() as conn:
        (body,) = conn.execute("SELECT body FROM outbox ORDER BY position DESC").fetchone()
    device.close()
    stamped = int(json.loads(body)["hlc"][:13])
    assert stamped < time.time() * 1000 + 60_000, "the learned correction was kept"
    wait_for(
        lambda: (
            client(fast, "--clock-error-ms", day, "sync").returncode == 0
            and "waiting to send: 0 awaiting confirmation: 0"
            in " ".join(client(fast, "status").stdout.split())
        ),
        what="everything to sync",
    )
    shown = json.loads(client(fast, "show", "--json").stdout)
    assert [t["title"] for t in shown["boards"][0]["tasks"]] == ["Still fast"]
    assert "rejected: 0" in " ".join(client(fast, "status").stdout.split())
