"""Notices: what the backend refused or undid, and why, newest first, dismissable."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from client.app.viewmodels import NoticesViewModel, TimeText
from client.device import Device
from client.errors import ClientError
from client.store.notices import NoticeKind, add_notice
from client.sync.engine import SyncEngine
from client.sync.transport import connect
from protocol import derived_id
from tests.support.backend import BackendProcess

PASSWORD = "correct horse"
NOW = datetime(2025, 3, 14, 15, 30, tzinfo=UTC)
clock = TimeText(now=NOW.timestamp, tz=UTC)


@pytest.fixture
def device(tmp_path: Path) -> Device:
    return Device(tmp_path / "profile")


def notice(
    device: Device,
    notice_id: str,
    reason: str,
    message: str,
    at: datetime = NOW,
    kind: NoticeKind = NoticeKind.REJECTED,
) -> None:
    """A notice, written the way the sync engine writes them."""
    with device.store.write() as conn:
        add_notice(
            conn,
            notice_id,
            kind,
            str(uuid.uuid4()),
            None,
            reason,
            message,
            int(at.timestamp() * 1000),
        )


def test_lists_notices_newest_first_with_what_happened_why_and_when(device: Device) -> None:
    notice(
        device,
        "rejected:older",
        "forbidden",
        "Your change (sharing) was not saved.",
        datetime(2025, 3, 13, 9, 0, tzinfo=UTC),
    )
    notice(device, "rejected:newer", "archived", "Your change (new task) was not saved.")
    model = NoticesViewModel(device, format_time=clock)
    assert [(n["id"], n["message"], n["reason"], n["time"]) for n in model.notices] == [
        (
            "rejected:newer",
            "Your change (new task) was not saved.",
            "The board is archived",
            "15:30",
        ),
        (
            "rejected:older",
            "Your change (sharing) was not saved.",
            "You are not allowed to do that on this board",
            "yesterday 09:00",
        ),
    ]
    assert model.count == 2


def test_the_title_says_whether_a_change_was_refused_undone_or_a_board_lost(
    device: Device,
) -> None:
    cause = str(uuid.uuid4())
    notice(device, "rejected:x", "invalid", "Your change (task edit) was not saved.")
    lost = "You no longer have access."
    notice(device, f"removed:{uuid.uuid4()}", "removed_from_board", lost, kind=NoticeKind.REMOVED)
    notice(
        device,
        derived_id(cause, "notice"),
        "wip_limit",
        "Moved back to To do: alice already has 3 tasks in Doing",
        kind=NoticeKind.BACKEND,
    )
    model = NoticesViewModel(device, format_time=clock)
    assert sorted((n["title"], n["reason"]) for n in model.notices) == [
        ("Board no longer shared with you", "You are no longer a member of the board"),
        ("Change not saved", "The server found the change not valid"),
        ("Change undone", "The board's limit on tasks in Doing was reached"),
    ]


def test_a_reason_the_app_does_not_know_still_reads_as_words(device: Device) -> None:
    notice(device, "rejected:x", "quota_exceeded", "Your change was not saved.")
    model = NoticesViewModel(device, format_time=clock)
    assert (model.notices[0]["reason"], model.notices[0]["reason_code"]) == (
        "Quota exceeded",
        "quota_exceeded",
    )


def test_dismiss_hides_a_notice_for_good(device: Device) -> None:
    notice(device, "rejected:a", "forbidden", "A")
    notice(device, "rejected:b", "forbidden", "B")
    model = NoticesViewModel(device, format_time=clock)
    assert model.dismiss("rejected:a")
    assert ([n["id"] for n in model.notices], model.count) == (["rejected:b"], 1)
    assert [n["id"] for n in NoticesViewModel(device).notices] == ["rejected:b"]


def test_dismiss_all_clears_the_list(device: Device) -> None:
    for name in "abc":
        notice(device, f"rejected:{name}", "forbidden", name)
    model = NoticesViewModel(device)
    assert model.dismiss_all() and model.count == 0


def test_refresh_shows_notices_a_sync_brought(device: Device) -> None:
    model = NoticesViewModel(device)
    calls: list[int] = []
    model.subscribe(lambda: calls.append(model.count))
    notice(device, "rejected:a", "forbidden", "A")
    model.refresh()
    assert calls == [1]


# a real rejection, through the backend


@pytest.mark.integration
def test_a_change_the_backend_refuses_becomes_a_notice(
    tmp_path: Path, module_backend: BackendProcess
) -> None:
    device = Device(tmp_path / "alice")
    board = device.create_board("Launch")
    device.archive_board(board)
    task = device.add_task(board, "Too late")  # the app refuses this; the backend must too

    async def sign_up_and_sync() -> None:
        async with connect(module_backend.url) as http:
            engine = SyncEngine(device, http)
            await engine.signup(f"alice{uuid.uuid4().hex[:6]}", PASSWORD)
            await engine.sync()

    try:
        asyncio.run(sign_up_and_sync())
    except ClientError as exc:
        raise AssertionError(f"sync failed: {exc}") from exc
    model = NoticesViewModel(device)
    assert [(n["title"], n["reason"], n["task"]) for n in model.notices] == [
        ("Change not saved", "The board is archived", task)
    ]
    assert model.notices[0]["message"].startswith("Your change (new task) was not saved")
    assert device.tasks(board) == []
