"""One nats-server per store (FAULTS 26): the embedded server dies with a SIGKILLed backend,
a leftover is stopped by the next start, and with the backend up no command starts a second
server on its store: each connects to the running one or refuses, naming it."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nats
import pytest

from backend.nats import event_subject, find_binary
from backend.ports import free_port
from protocol import new_id
from tests.backend.nats.store_processes import (
    configured_url,
    nats_servers_on,
    starts_logged,
    wait_for_servers,
)
from tests.support.backend import BackendProcess
from tests.support.device import Device

pytestmark = pytest.mark.integration


def outpost(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "outpost", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)


def kill_servers_on(store: Path) -> None:
    """Test hygiene: whatever the outcome, no nats-server outlives the test."""
    for pid in nats_servers_on(store):
        os.kill(pid, signal.SIGKILL)


def push_tasks(alice: Device, count: int) -> tuple[set[str], int]:
    board, created = alice.new_board()
    tasks = [alice.new_task(board, title=f"t{i}") for i in range(count)]
    results = alice.push(created, *(event for _, event in tasks))
    assert {r["status"] for r in results} == {"accepted"}, results
    return {task for task, _ in tasks}, max(r["seq"] for r in results)


def pulled_tasks(alice: Device) -> set[str]:
    return {entity for kind, entity in alice.state if kind == "task"}


@pytest.mark.parametrize("restart", ["after-it-is-gone", "at-once"])
def test_a_sigkilled_backend_takes_its_nats_server_along_and_a_restart_loses_nothing(
    tmp_path: Path, restart: str
) -> None:
    data = tmp_path / "backend"
    store = data / "nats"
    backend = BackendProcess(data).start()
    try:
        [first] = wait_for_servers(store, 1)
        alice = Device(backend.url, "alice").signup()
        pushed, last_seq = push_tasks(alice, 100)
        backend.kill()  # SIGKILL: no shutdown code runs
        if restart == "after-it-is-gone":
            # The kernel tells the server its parent died; it shuts down by itself.
            wait_for_servers(store, 0)
        backend.start()
        [second] = wait_for_servers(store, 1)
        assert second != first, "the old server still runs and the new backend uses it"
        alice.sync_until(last_seq, timeout=30)
        assert pulled_tasks(alice) == pushed
        more, seq = push_tasks(alice, 5)  # and it takes new work
        alice.sync_until(seq)
        assert pulled_tasks(alice) == pushed | more
    finally:
        backend.stop()
        kill_servers_on(store)


def start_leftover(store: Path, *, holding_the_lock: bool) -> int:
    """A nats-server on the store whose starter is gone, as a backend killed where the
    kernel does not take its child along leaves it (or an older Outpost, without the lock)."""
    binary, config = find_binary(), str(store / "nats-server.conf")
    command = [binary, "-c", config]
    if holding_the_lock:
        code = (
            "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
            "fcntl.flock(fd, fcntl.LOCK_EX); os.set_inheritable(fd, True); "
            "os.execv(sys.argv[2], sys.argv[2:])"
        )
        command = [sys.executable, "-c", code, str(store / "nats-server.lock"), *command]
    # Through a shell that exits at once: the server is reparented, like an orphan.
    subprocess.run(["sh", "-c", f"{shlex.join(command)} >/dev/null 2>&1 &"], check=True)
    [pid] = wait_for_servers(store, 1)
    return pid


@pytest.mark.parametrize("holding_the_lock", [True, False], ids=["with-lock", "without-lock"])
def test_a_leftover_server_on_the_store_is_stopped_by_the_next_start(
    tmp_path: Path, holding_the_lock: bool
) -> None:
    data = tmp_path / "backend"
    store = data / "nats"
    backend = BackendProcess(data).start()
    try:
        alice = Device(backend.url, "alice").signup()
        pushed, last_seq = push_tasks(alice, 20)
        backend.stop()
        leftover = start_leftover(store, holding_the_lock=holding_the_lock)
        backend.start()
        [server] = wait_for_servers(store, 1)
        assert server != leftover, "the leftover still runs beside the new server"
        alice.sync_until(last_seq)
        assert pulled_tasks(alice) == pushed
    finally:
        backend.stop()
        kill_servers_on(store)


async def _publish_poison(url: str) -> None:
    nc = await nats.connect(url)
    try:
        await nc.jetstream().publish(event_subject(new_id()), b"not an event")
    finally:
        await nc.close()


def _wait_for(what: str, probe: Any, timeout_s: float = 30) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (found := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
    return found


def _open_faults(nats_url: str) -> list[dict[str, Any]]:
    listed = outpost("faults", "list", "--json", "--nats-url", nats_url)
    return list(json.loads(listed.stdout)) if listed.returncode == 0 else []


def _archived(data: Path) -> int:
    status = outpost("lake", "status", "--json", "--data-dir", str(data))
    return int(json.loads(status.stdout)["messages"]) if status.returncode == 0 else 0


def test_with_the_backend_up_no_command_starts_a_second_server_on_its_store(
    tmp_path: Path,
) -> None:
    data = tmp_path / "backend"
    store = data / "nats"
    backend = BackendProcess(data).start()
    assert backend.process is not None
    try:
        [server] = wait_for_servers(store, 1)
        url = configured_url(store)
        alice = Device(backend.url, "alice").signup()
        push_tasks(alice, 10)
        # Every consumer that decodes events faults it (the projector, the workload, the
        # gateway and the orchestrator; the lake archives it raw). Waiting for two of them
        # let the others' come after the snapshot, most often from the consumers' child,
        # which runs on spare CPU only.
        asyncio.run(_publish_poison(url))
        faults = _wait_for("four faults", lambda: len(_open_faults(url)) >= 4 and _open_faults(url))
        _wait_for("the lake to archive", lambda: _archived(data) >= 12)
        started = starts_logged(store)
        backend_pid, named = str(backend.process.pid), f"nats-server pid {server} at {url}"

        def only_the_backends_server(command: str) -> None:
            assert nats_servers_on(store) == [server], f"{command} ran a second nats-server"
            assert starts_logged(store) == started, f"{command} started a nats-server"

        replay = outpost("lake", "replay", "--data-dir", str(data))
        only_the_backends_server("lake replay")
        assert replay.returncode == 1, replay
        assert f"pid {backend_pid} " in replay.stderr and named in replay.stderr, replay.stderr

        consume_log = tmp_path / "consume.log"
        with consume_log.open("wb") as log:
            consume = subprocess.Popen(
                [sys.executable, "-m", "outpost", "backend", "consume", "--data-dir", str(data)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            line = _wait_for(
                "consume to run",
                lambda: "consumers running" in consume_log.read_text() or consume.poll(),
            )
            only_the_backends_server("backend consume")
            assert line is True and named in consume_log.read_text(), consume_log.read_text()
        finally:
            consume.send_signal(signal.SIGTERM)
            consume.wait(20)

        listed = outpost("faults", "list", "--json", "--data-dir", str(data))
        only_the_backends_server("faults list")
        assert [f["id"] for f in json.loads(listed.stdout)] == [f["id"] for f in faults]

        rebuild = outpost("backend", "rebuild", "--data-dir", str(data))
        only_the_backends_server("backend rebuild")
        assert rebuild.returncode == 1 and f"pid {backend_pid} " in rebuild.stderr, rebuild

        second = outpost("backend", "--data-dir", str(data), "--port", str(free_port()))
        only_the_backends_server("a second backend")
        assert second.returncode == 1 and named in second.stderr, second
        assert f"--nats-url {url}" in second.stderr

        after = outpost("faults", "list", "--json", "--data-dir", str(data))
        assert [f["id"] for f in json.loads(after.stdout)] == [f["id"] for f in faults]
    finally:
        backend.stop()
        kill_servers_on(store)
