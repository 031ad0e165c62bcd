"""Every path of the sync engine through a real backend: rejections, clock skew, 503 and
lost connections, 401 and refresh, reset, a board taken away, batches split by bytes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest

from client.errors import ServerUnreachable, SignInRequired
from client.store.settings import Setting, write_setting
from client.sync import engine as engine_module
from protocol import parse_hlc
from tests.support.backend import BackendProcess, ControlledNats
from tests.support.device import Device as Remote

pytestmark = pytest.mark.integration

DAY = 86_400_000


def name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def test_a_final_rejection_leaves_the_view_is_kept_with_its_reason_and_notifies(
    module_backend: BackendProcess, phones: Any
) -> None:
    phone = phones(module_backend.url).signup(name("alice"))
    board = phone.device.create_board("Mine")
    phone.device.share_board(board, "nobody-by-that-name")
    assert len(phone.device.members(board)) == 2  # shown at once, before the server says no
    phone.settle()
    assert [m["username"] for m in phone.device.members(board)] == [phone.device.username]
    [rejected] = phone.device.rejected()
    assert rejected["reason"] == "invalid" and "no user named" in rejected["detail"]
    assert rejected["event"]["type"] == "MemberAdded"
    [notice] = phone.device.notices()
    assert notice["reason"] == "invalid"
    assert notice["message"] == (
        "Your change (sharing) was not saved: there is no user named 'nobody-by-that-name'."
    )


def test_a_clock_a_day_ahead_is_restamped_and_does_not_win_for_a_day(
    module_backend: BackendProcess, phones: Any
) -> None:
    username = name("skew")
    ahead = phones(module_backend.url).signup(username)
    board = ahead.device.create_board("Clock")
    task = ahead.device.add_task(board, "Original")
    ahead.settle()
    ahead.device.clock.offset_ms = DAY  # this device's clock is now a day fast
    ahead.device.set_task(task, title="From the future")
    result = ahead.sync()
    assert result.restamped == 1 and result.rejected == 0
    ahead.settle()
    assert abs(ahead.device.clock.offset_ms) < 60_000, "the offset to the server was corrected"
    assert ahead.device.entity("task", task)["values"]["title"] == "From the future"  # type: ignore[index]
    stamp = ahead.device.entity("task", task)["meta"]["fields"]["title"]["hlc"]  # type: ignore[index]
    assert parse_hlc(stamp).wall < time.time() * 1000 + 60_000
    other = phones(module_backend.url).login(username)
    other.settle()
    other.device.set_task(task, title="A minute later, elsewhere")
    other.settle()
    ahead.settle()
    assert ahead.device.entity("task", task)["values"]["title"] == "A minute later, elsewhere"  # type: ignore[index]


def test_a_clock_a_day_behind_catches_up_so_its_next_edit_wins(
    module_backend: BackendProcess, phones: Any
) -> None:
    username = name("slow")
    normal = phones(module_backend.url).signup(username)
    board = normal.device.create_board("Clock")
    task = normal.device.add_task(board, "Original")
    normal.device.set_task(task, title="Seen by the slow device")
    normal.settle()
    behind = phones(module_backend.url).login(username)
    behind.device.clock.offset_ms = -DAY
    behind.settle()  # takes in server_time and every pulled hlc
    behind.device.set_task(task, title="Slow device's next edit")
    behind.settle()
    normal.settle()
    assert normal.device.entity("task", task)["values"]["title"] == "Slow device's next edit"  # type: ignore[index]


def test_an_upload_failure_resends_the_same_bytes_and_never_stops_downloads(
    tmp_path: Path, controlled_nats: ControlledNats, phones: Any
) -> None:
    backend = BackendProcess(
        tmp_path / "b", nats_url=controlled_nats.url, env={"OUTPOST_PUBLISH_TIMEOUT_S": "1"}
    ).start()
    try:
        username = name("resend")
        writer = phones(backend.url).signup(username)
        board = writer.device.create_board("Shared")
        writer.device.add_task(board, "Before the outage")
        writer.settle()
        reader = phones(backend.url).login(username)
        reader.settle()
        writer.device.add_task(board, "Pushed by the other device")
        writer.settle()
        controlled_nats.kill()
        reader.device.add_task(board, "Made during the outage")
        with pytest.raises(ServerUnreachable):
            reader.sync()
        assert [t["title"] for t in reader.device.tasks(board)] == [
            "Before the outage",
            "Pushed by the other device",
            "Made during the outage",
        ], "the pull ran although the push failed"
        failed_body = reader.transport.pushes[-1]
        controlled_nats.start()
        deadline = time.monotonic() + 30
        while True:
            try:
                reader.settle()
                break
            except ServerUnreachable:
                assert time.monotonic() < deadline
                time.sleep(0.5)
        assert reader.transport.pushes[-1] == failed_body, "resent byte for byte"
        ids = [e["id"] for e in controlled_nats.events()]
        assert len(ids) == len(set(ids))
    finally:
        backend.stop()


def test_an_expired_token_is_refreshed_once_and_a_dead_session_keeps_everything(
    tmp_path: Path, controlled_nats: ControlledNats, phones: Any
) -> None:
    backend = BackendProcess(
        tmp_path / "b", nats_url=controlled_nats.url, env={"OUTPOST_TOKEN_TTL_S": "2"}
    ).start()
    try:
        username = name("token")
        phone = phones(backend.url).signup(username)
        board = phone.device.create_board("Tokens")
        time.sleep(3)  # the access token has expired
        phone.settle()
        assert phone.transport.statuses.count(401) >= 1  # refreshed, and went on
        with phone.device.store.write() as conn:
            write_setting(conn, Setting.REFRESH_TOKEN, "revoked")
        time.sleep(3)
        phone.device.add_task(board, "Kept while signed out")
        with pytest.raises(SignInRequired, match="sign in again"):
            phone.sync()
        assert phone.device.pending_count() == 1
        assert phone.engine.progress.state == "signed_out"
        phone.login(username)
        phone.settle()
        assert [t["title"] for t in phone.device.tasks(board)] == ["Kept while signed out"]
    finally:
        backend.stop()


def test_a_reset_rebuilds_the_state_aside_and_pushes_the_outbox_again(
    tmp_path: Path, controlled_nats: ControlledNats, phones: Any
) -> None:
    data = tmp_path / "b"
    backend = BackendProcess(data, nats_url=controlled_nats.url).start()
    username = name("reset")
    phone = phones(backend.url).signup(username)
    board = phone.device.create_board("Reset")
    for i in range(30):
        phone.device.add_task(board, f"t{i}")
    phone.settle()
    before = phone.device.snapshot()["boards"]
    backend.stop()
    subprocess.run(
        [sys.executable, "-m", "outpost", "backend", "rebuild", "--data-dir", str(data)],
        check=True,
        capture_output=True,
    )
    backend.start()
    try:
        phone.device.add_task(board, "made while the views were rebuilt")
        pushes = len(phone.transport.pushes)
        phone.settle()
        assert len(phone.transport.pushes) > pushes
        after = phone.device.snapshot()["boards"]
        titles = [t["title"] for t in after[0]["tasks"]]
        assert titles == [t["title"] for t in before[0]["tasks"]] + [
            "made while the views were rebuilt"
        ]
        assert phone.device.store.setting(Setting.REBUILDING) is None
    finally:
        backend.stop()


def test_a_board_taken_away_is_purged_and_its_pending_edits_are_rejected_with_a_notice(
    module_backend: BackendProcess, phones: Any
) -> None:
    alice = phones(module_backend.url).signup(name("alice"))
    bob = phones(module_backend.url).signup(name("bob"))
    board = alice.device.create_board("Shared for a while")
    task = alice.device.add_task(board, "Plan")
    alice.device.share_board(board, bob.device.username)
    alice.settle()
    bob.settle()
    assert [b["id"] for b in bob.device.boards()] == [board]
    bob.device.set_task(task, title="Bob's offline edit")
    alice.device.unshare_board(board, bob.device.username)
    alice.settle()
    bob.settle()
    assert bob.device.boards() == []
    assert bob.device.entity("task", task) is None
    [rejected] = bob.device.rejected()
    assert rejected["event"]["type"] == "TaskUpdated"
    messages = [n["message"] for n in bob.device.notices()]
    assert any("no longer have access" in m for m in messages)


def test_big_events_are_batched_by_bytes_and_a_413_halves_the_batch(
    module_backend: BackendProcess, phones: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    phone = phones(module_backend.url).signup(name("bytes"))
    board = phone.device.create_board("Heavy")
    for i in range(80):
        phone.device.add_task(board, f"t{i}", notes="x" * 20_000)  # 1.6 MB in all
    phone.settle()
    assert phone.transport.statuses.count(413) == 0
    assert len(phone.transport.pushes) >= 2
    assert max(len(body) for body in phone.transport.pushes) <= 1024 * 1024
    for i in range(80):
        phone.device.add_task(board, f"u{i}", notes="y" * 20_000)
    monkeypatch.setattr(engine_module, "MAX_BATCH_BYTES", 10 * 1024 * 1024)
    phone.settle()
    assert 413 in phone.transport.statuses, "the server refused the oversized batch"
    assert len(phone.device.tasks(board)) == 160


def test_offline_with_no_server_at_all_keeps_everything_and_sync_says_so(tmp_path: Path) -> None:
    folder = str(tmp_path / "offline")

    def client(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "outpost", "client", "--data-dir", folder, *args]
        return subprocess.run(command, capture_output=True, text=True)

    board = client("board", "create", "Trip").stdout.strip()
    assert client("task", "add", board, "Pack").returncode == 0
    result = client("--server", "http://127.0.0.1:9", "sync")
    assert result.returncode == 1
    assert "unreachable" in result.stderr and "everything is kept" in result.stderr
    shown = json.loads(client("show", "--json").stdout)
    assert [t["title"] for t in shown["boards"][0]["tasks"]] == ["Pack"]
    status = " ".join(client("status").stdout.split())
    assert "waiting to send: 2 awaiting confirmation: 0" in status


def test_the_pulled_state_equals_the_backends_pull(
    module_backend: BackendProcess, phones: Any
) -> None:
    username = name("same")
    phone = phones(module_backend.url).signup(username)
    board = phone.device.create_board("Compare", wip_limit=3)
    task = phone.device.add_task(board, "One", labels=["x"], priority=2)
    phone.device.add_comment(task, "hello")
    phone.settle()
    remote = Remote(module_backend.url, username).login()
    remote.pull()
    for (kind, entity_id), change in remote.state.items():
        local = phone.device.entity(kind, entity_id)
        assert local is not None and local["values"] == change["values"], (kind, entity_id)
    assert msgspec.json.encode(phone.device.snapshot())
