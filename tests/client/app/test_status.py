"""The status line: online or offline, sync progress, pending count, last sync, last error."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from client.app.viewmodels import StatusViewModel, TimeText
from client.device import Device
from client.sync.engine import Progress
from client.sync.runner import SyncThread

NOW = datetime(2025, 3, 14, 15, 30, tzinfo=UTC).timestamp()
AT_1403 = datetime(2025, 3, 14, 14, 3, tzinfo=UTC).timestamp()
clock = TimeText(now=lambda: NOW, tz=UTC)


@pytest.fixture
def device(tmp_path: Path) -> Device:
    return Device(tmp_path / "profile")


def status(**progress: object) -> StatusViewModel:
    model = StatusViewModel(format_time=clock)
    model.update(Progress(**progress))  # type: ignore[arg-type]
    return model


def test_starts_offline_with_the_pending_count_of_the_device(device: Device) -> None:
    device.create_board("Launch")
    model = StatusViewModel(device, format_time=clock)
    assert (model.online, model.pending, model.text) == (
        False,
        1,
        "Offline · 1 change waiting to send",
    )


def test_offline_counts_the_changes_waiting_in_correct_plural() -> None:
    assert status(state="offline", pending=1).text == "Offline · 1 change waiting to send"
    assert status(state="offline", pending=3).text == "Offline · 3 changes waiting to send"
    assert status(state="offline", pending=1200).text == "Offline · 1,200 changes waiting to send"


def test_offline_with_nothing_waiting_says_when_it_last_synced() -> None:
    assert status(state="offline", last_synced=AT_1403).text == "Offline · last synced 14:03"
    assert status(state="offline").text == "Offline"


def test_syncing_counts_the_items_received_during_a_first_large_sync() -> None:
    model = StatusViewModel(format_time=clock)
    model.update(Progress(state="syncing", pulled=0))
    assert model.text == "Syncing…"
    model.update(Progress(state="syncing", detail="downloading", pulled=1))
    assert model.text == "Syncing… 1 item received"
    model.update(Progress(state="syncing", detail="downloading", pulled=1200))
    assert model.text == "Syncing… 1,200 items received"
    assert model.syncing and model.online


def test_syncing_counts_only_what_this_sync_received() -> None:
    model = StatusViewModel(format_time=clock)
    model.update(Progress(state="syncing", pulled=0))
    model.update(Progress(state="up_to_date", pulled=500, last_synced=AT_1403))
    model.update(Progress(state="syncing", pulled=500))
    assert model.text == "Syncing…"
    model.update(Progress(state="syncing", pulled=502))
    assert model.text == "Syncing… 2 items received"


def test_syncing_before_anything_arrives_says_what_it_sends() -> None:
    assert status(state="syncing", pending=2).text == "Syncing… 2 changes to send"


def test_up_to_date_says_when_it_last_synced() -> None:
    model = status(state="up_to_date", last_synced=AT_1403)
    assert (model.text, model.online) == ("Up to date · last synced 14:03", True)
    assert model.last_synced_text == "Last synced 14:03"
    assert model.pending_text == "All changes sent"


def test_up_to_date_with_changes_made_meanwhile_says_they_wait() -> None:
    model = status(state="up_to_date", pending=1, last_synced=AT_1403)
    assert model.text == "1 change waiting to send · last synced 14:03"
    assert model.pending_text == "1 change waiting to send"


def test_signed_out_says_the_changes_are_kept_on_this_device() -> None:
    assert status(state="signed_out", pending=2).text == (
        "Sign in to sync · 2 changes kept on this device"
    )
    assert status(state="signed_out", pending=1).text == (
        "Sign in to sync · 1 change kept on this device"
    )
    assert status(state="signed_out", detail="sign in to sync").text == "Sign in to sync"


def test_merely_being_signed_out_is_not_an_error_but_an_expired_session_is() -> None:
    assert status(state="signed_out", detail="sign in to sync").error_text is None
    expired = status(state="signed_out", detail="your session has expired: sign in again")
    assert expired.error_text == "Your session has expired; sign in again"


def test_connecting_says_so() -> None:
    model = status(state="connecting")
    assert (model.text, model.syncing, model.online) == ("Connecting…", True, False)


def test_an_upload_error_is_shown_in_plain_words() -> None:
    model = status(state="error", detail="upload failed: the server is busy: stream unavailable")
    assert model.text == "Error: Could not send your changes: the server is busy; trying again soon"
    assert model.online


@pytest.mark.parametrize(
    ("detail", "plain"),
    [
        ("the server is unreachable: ConnectError: [Errno 111]", "The server cannot be reached"),
        ("download refused: HTTP 500 boom", "The server answered with an error (HTTP 500)"),
        (
            "the server keeps refusing this device's clock",
            "The server keeps refusing this device's clock; check its date and time",
        ),
        ("ConnectError: All connection attempts failed", "The server cannot be reached"),
        (
            "the server is unreachable: RemoteProtocolError: Server disconnected",
            "The connection to the server broke; trying again soon",
        ),
        ("disk is full", "Disk is full"),
    ],
)
def test_an_offline_reason_becomes_the_last_error_in_plain_words(detail: str, plain: str) -> None:
    assert status(state="offline", detail=detail).error_text == plain


def test_the_last_error_stays_until_a_sync_succeeds() -> None:
    model = status(state="offline", detail="the server is unreachable: ConnectError")
    model.update(Progress(state="syncing"))
    assert model.error_text == "The server cannot be reached"
    model.update(Progress(state="up_to_date", last_synced=AT_1403))
    assert model.error_text is None


def test_an_error_report_without_detail_still_reads_as_an_error() -> None:
    assert status(state="error").text == "Error: something went wrong"


@pytest.mark.parametrize(
    ("state", "online"),
    [
        ("offline", False),
        ("connecting", False),
        ("syncing", True),
        ("up_to_date", True),
        ("error", True),
        ("signed_out", False),
    ],
)
def test_online_only_after_talking_to_the_server(state: str, online: bool) -> None:
    assert status(state=state).online is online


def test_last_synced_text_before_any_sync() -> None:
    assert status(state="offline").last_synced_text == "Not synced yet"


def test_refresh_counts_a_local_action_at_once(device: Device) -> None:
    model = StatusViewModel(device, format_time=clock)
    model.update(Progress(state="up_to_date", last_synced=AT_1403))
    device.create_board("Launch")
    model.refresh()
    assert model.text == "1 change waiting to send · last synced 14:03"


def test_update_and_refresh_call_the_subscribers_until_unsubscribed() -> None:
    model = StatusViewModel()
    calls: list[str] = []
    unsubscribe = model.subscribe(lambda: calls.append(model.state))
    model.update(Progress(state="syncing"))
    model.refresh()
    unsubscribe()
    model.update(Progress(state="offline"))
    assert calls == ["syncing", "syncing"]


def test_the_progress_is_copied_so_later_changes_do_not_leak_in() -> None:
    progress = Progress(state="offline", pending=1)
    model = StatusViewModel()
    model.update(progress)
    progress.pending = 5
    assert model.pending == 1


def test_times_read_as_today_yesterday_this_year_or_with_the_year() -> None:
    def at(year: int, month: int, day: int, hour: int, minute: int) -> float:
        return datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()

    assert clock(at(2025, 3, 14, 9, 5)) == "09:05"
    assert clock(at(2025, 3, 13, 23, 59)) == "yesterday 23:59"
    assert clock(at(2025, 1, 2, 8, 0)) == "2 Jan 08:00"
    assert clock(at(2024, 12, 31, 8, 0)) == "31 Dec 2024 08:00"


@pytest.mark.integration
def test_a_real_sync_thread_with_no_server_shows_offline_with_the_work_waiting(
    device: Device,
) -> None:
    device.create_board("Launch")
    model = StatusViewModel(device, format_time=clock)
    thread = SyncThread(device, "http://127.0.0.1:9", on_progress=model.update, periodic_s=60)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while model.error_text is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        thread.stop()
    assert model.text == "Offline · 1 change waiting to send"
    assert model.error_text == "The server cannot be reached"


def test_waiting_to_send_and_sent_awaiting_confirmation_are_told_apart() -> None:
    sent = status(state="up_to_date", pending=3, sent=3, last_synced=AT_1403)
    assert sent.pending_text == "3 changes sent, awaiting confirmation"
    assert sent.text == "3 changes sent, awaiting confirmation · last synced 14:03"
    both = status(state="offline", pending=3, sent=1)
    assert both.pending_text == "2 changes waiting to send · 1 change sent, awaiting confirmation"
    assert (both.waiting, both.sent) == (2, 1)
    assert status(state="syncing", pending=3, sent=2).text == "Syncing… 1 change to send"


def test_the_device_counts_what_waits_and_what_was_sent(device: Device) -> None:
    from client.store.outbox import Outbox

    board = device.create_board("Launch")
    device.add_task(board, "one")
    with device.store.write() as conn:
        Outbox(conn).mark_sent(Outbox(conn).unsent()[0][0], seq=7)  # as a push does
    model = StatusViewModel(device, format_time=clock)
    assert (model.pending, model.sent, model.waiting) == (2, 1, 1)
    assert model.pending_text == "1 change waiting to send · 1 change sent, awaiting confirmation"


def test_the_status_bar_parts_say_each_thing_once() -> None:
    offline = status(state="offline", pending=2, last_synced=AT_1403)
    parts = [offline.state_text, offline.activity_text, offline.pending_text]
    assert parts == ["Offline", "", "2 changes waiting to send"]
    up = status(state="up_to_date", last_synced=AT_1403)
    assert [up.state_text, up.activity_text, up.pending_text, up.last_synced_text] == [
        "Online",
        "Up to date",
        "All changes sent",
        "Last synced 14:03",
    ]
    out = status(state="signed_out", pending=1)
    assert (out.state_text, out.activity_text) == ("Signed out", "Sign in to sync")
    assert status(state="syncing", pulled=0).activity_text == "Syncing…"


def test_no_sync_controls_before_the_profile_has_an_account(device: Device) -> None:
    model = StatusViewModel(device, format_time=clock)
    assert not model.has_account and not model.show_sync_controls
    from client.store.settings import Setting, write_setting

    with device.store.write() as conn:
        write_setting(conn, Setting.USERNAME, "alice")
    model.refresh()
    assert model.has_account and model.show_sync_controls
