"""Backup and restore as the README's "Operations" section says, end to end: a real backend
(embedded nats-server, SQLite files), headless devices (``outpost client``) in their own
processes, ``outpost backend backup`` and ``restore`` from the command line.

Devices sync, the backend is stopped and backed up, more is written and synced, the backend
is stopped and the backup restored: the restored backend has lost what came after the
backup, announces a new generation, and the devices get ``reset``, rebuild from the restored
views and push again what they hold (the events a pull had reflected are kept a while for
this), so in the end nothing is lost and every device shows the same.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from backend.backup import BackupError, backup, restore
from backend.config import Settings
from backend.errors import ComponentBusy
from backend.main import ledger
from client.device import Device as Profile
from client.store.settings import Setting
from tests.support.backend import BackendProcess

pytestmark = pytest.mark.integration

PASSWORD = "correct horse"
T = TypeVar("T")


def outpost(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "outpost", *args], capture_output=True, text=True, timeout=120
    )


def client(profile: Path, server: str, *args: str) -> str:
    result = outpost("client", "--data-dir", str(profile), "--server", server, *args)
    assert result.returncode == 0, f"outpost client {' '.join(args)}: {result.stderr}"
    return result.stdout.strip()


def local(profile: Path, action: Callable[[Profile], T]) -> T:
    """An action on the device's own store, offline (what ``outpost client task add`` and
    ``show`` do, without a process each; syncs go through ``outpost client sync``)."""
    device = Profile(profile)
    try:
        return action(device)
    finally:
        device.close()


def shown(profile: Path) -> list[dict[str, Any]]:
    """The device's boards as ``show --json`` prints them (notices are per device)."""
    boards: list[dict[str, Any]] = local(profile, Profile.snapshot)["boards"]
    return boards


def titles(boards: list[dict[str, Any]]) -> set[str]:
    return {task["title"] for board in boards for task in board["tasks"]}


def setting(profile: Path, key: Setting) -> str | None:
    return local(profile, lambda device: device.store.setting(key))


def pending(profile: Path) -> int:
    return local(profile, Profile.pending_count)


def server_titles(server: str, username: str) -> set[str]:
    """The tasks the backend serves the user: a fresh bootstrap over HTTP."""
    token = httpx.post(
        f"{server}/v1/auth/token", json={"username": username, "password": PASSWORD}
    ).json()["token"]
    found: set[str] = set()
    cursor = None
    while True:
        params = {"cursor": cursor} if cursor else {}
        page = httpx.get(
            f"{server}/v1/sync/pull", params=params, headers={"Authorization": f"Bearer {token}"}
        ).json()
        found |= {
            c["values"]["title"] for c in page["changes"] if c["kind"] == "task" and c["values"]
        }
        cursor = page["cursor"]
        if not page["has_more"]:
            return found


def views_current(server: str) -> None:
    """Until the backend's views hold every event of its stream. A sync is answered once its
    events are stored, and the projector commits them a moment later: another device's
    sync at once could pull without them (and a device's own, confirm none of them)."""
    deadline = time.monotonic() + 30
    while True:
        health = httpx.get(f"{server}/v1/health", timeout=10).json()
        if health["consumers"]["projector"]["lag_events"] == 0:
            return
        assert time.monotonic() < deadline, f"the views did not catch up: {health}"
        time.sleep(0.05)


def generation(server: str) -> str:
    return str(httpx.get(f"{server}/v1/sync/info").json()["generation"])


def test_a_restored_backup_resets_the_devices_and_they_push_back_what_it_lost(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    backups = tmp_path / "backups"
    backend = BackendProcess(data).start()  # embedded nats-server: its store is in `data`
    server = backend.url
    phone, laptop = tmp_path / "phone", tmp_path / "laptop"
    try:
        client(phone, server, "signup", "alice", "--password", PASSWORD)
        client(laptop, server, "login", "alice", "--password", PASSWORD)
        board = local(phone, lambda device: device.create_board("Launch"))
        local(phone, lambda device: device.add_task(board, "written before the backup"))
        client(phone, server, "sync")
        views_current(server)
        client(laptop, server, "sync")
        assert titles(shown(laptop)) == {"written before the backup"}

        with pytest.raises(ComponentBusy, match=r"runs .*: stop its consumers, then its BFFs"):
            asyncio.run(backup(Settings(data_dir=data), backups / "x"))
        assert not (backups / "x").exists()
    finally:
        backend.stop()

    # The backup, with everything stopped.
    made = outpost("backend", "backup", "--data-dir", str(data), "--to", str(backups / "night"))
    assert made.returncode == 0, made.stderr
    assert (backups / "night" / "outpost-backup.json").is_file()
    assert (backups / "night" / "nats" / "jetstream").is_dir()
    assert not (backups / "night" / "nats" / "nats-server.lock").exists()
    with pytest.raises(BackupError, match="is not empty: back up into a new folder"):
        asyncio.run(backup(Settings(data_dir=data), backups / "night"))

    backend.start()
    try:
        before = generation(server)
        # After the backup: both devices write and sync (the pulls reflect it all), and the
        # phone writes once more offline.
        local(phone, lambda device: device.add_task(board, "phone, synced after the backup"))
        local(phone, lambda device: device.rename_board(board, "Launch v2"))
        client(phone, server, "sync")
        local(laptop, lambda device: device.add_task(board, "laptop, synced after the backup"))
        client(laptop, server, "sync")
        views_current(server)
        client(phone, server, "sync")
        assert setting(phone, Setting.GENERATION) == before
        assert pending(phone) == 0
        local(phone, lambda device: device.add_task(board, "phone, offline at the restore"))
        everything = {
            "written before the backup",
            "phone, synced after the backup",
            "laptop, synced after the backup",
            "phone, offline at the restore",
        }

        with pytest.raises(ComponentBusy, match="runs"):
            asyncio.run(restore(Settings(data_dir=data), backups / "night"))
    finally:
        backend.stop()

    with pytest.raises(BackupError, match="is not an Outpost backup"):
        asyncio.run(restore(Settings(data_dir=data), tmp_path))
    restored = outpost(
        "backend", "restore", "--data-dir", str(data), "--from", str(backups / "night")
    )
    assert restored.returncode == 0, restored.stderr
    assert "new generation" in restored.stdout
    [kept] = tmp_path.glob("data.before-restore-*")
    assert (kept / "bff.db").is_file()  # the replaced folder is kept, not deleted

    backend.start()
    try:
        # The restored backend has lost what came after the backup, and says so by a new
        # generation.
        assert generation(server) != before
        assert server_titles(server, "alice") == {"written before the backup"}

        # reset: each rebuilds aside and pushes back, in the same sync, what it kept; the
        # phone's second sync pulls what the laptop pushed back
        client(phone, server, "sync")
        views_current(server)
        client(laptop, server, "sync")
        views_current(server)
        client(phone, server, "sync")
        assert setting(phone, Setting.GENERATION) == generation(server)
        assert setting(laptop, Setting.GENERATION) == generation(server)

        assert server_titles(server, "alice") == everything
        phone_boards, laptop_boards = shown(phone), shown(laptop)
        assert titles(phone_boards) == everything
        assert phone_boards == laptop_boards
        assert [b["name"] for b in phone_boards] == ["Launch v2"]
        assert pending(phone) == 0
    finally:
        backend.stop()
    applied = asyncio.run(ledger(Settings(data_dir=data)))
    assert {times for *_, times in applied} == {1}  # each event applied once
