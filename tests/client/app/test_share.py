"""The share dialog: the name is checked before the share is queued; a name the server
does not know is not queued; when the server cannot be asked, the share is queued with a
note. The check here is a plain function of the name (the real one, over HTTP, is tested
in tests/backend/bff/test_user_check.py and through the app's BackgroundSync below)."""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path

import pytest

from client.app.viewmodels import BoardsViewModel, ShareViewModel
from client.app.viewmodels.share import NOT_CHECKED
from client.device import Device
from client.errors import InvalidAction, ServerUnreachable
from client.store.settings import Setting, write_setting


@pytest.fixture
def device(tmp_path: Path) -> Device:
    found = Device(tmp_path / "profile")
    with found.store.write() as conn:
        write_setting(conn, Setting.USERNAME, "alice")
    return found


@pytest.fixture
def board(device: Device) -> str:
    return device.create_board("Launch")


def answer(value: bool | Exception) -> Future[bool]:
    done: Future[bool] = Future()
    if isinstance(value, Exception):
        done.set_exception(value)
    else:
        done.set_result(value)
    return done


def members(device: Device, board: str) -> list[str]:
    return [m["username"] for m in device.members(board)]


def dialog(device: Device, board: str, known: set[str]) -> tuple[ShareViewModel, list[str]]:
    asked: list[str] = []

    def check_user(name: str) -> Future[bool]:
        asked.append(name)
        return answer(name in known)

    model = BoardsViewModel(device, check_user=check_user).share_dialog(board)
    return model, asked


def test_a_known_name_is_checked_then_shared(device: Device, board: str) -> None:
    share, asked = dialog(device, board, {"bob"})
    assert share.submit(" bob ").result() is True
    assert (asked, share.shared, share.error, share.note) == (["bob"], "bob", None, None)
    assert members(device, board) == ["alice", "bob"]


def test_an_unknown_name_is_not_queued(device: Device, board: str) -> None:
    share, _asked = dialog(device, board, {"bob"})
    pending = device.pending_count()
    assert share.submit("nosuchuser").result() is False
    assert share.error == "No user named nosuchuser: check the spelling"
    assert device.pending_count() == pending and members(device, board) == ["alice"]


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("Bob Smith", "A username is 3 to 32 characters: lowercase a-z, 0-9, _ . or -"),
        ("alice", "That is you: the board is yours already"),
    ],
)
def test_a_name_refused_here_is_never_asked_about(
    device: Device, board: str, name: str, error: str
) -> None:
    share, asked = dialog(device, board, {"bob", "alice"})
    assert share.submit(name).result() is False
    assert (share.error, asked) == (error, [])


def test_someone_already_on_the_board_is_not_asked_about_again(device: Device, board: str) -> None:
    device.share_board(board, "bob")
    share, asked = dialog(device, board, {"bob"})
    assert share.submit("bob").result() is False
    assert (share.error, asked) == ("bob is already on this board", [])


def test_when_the_server_cannot_be_asked_the_share_is_queued_with_a_note(
    device: Device, board: str
) -> None:
    model = BoardsViewModel(
        device, check_user=lambda name: answer(ServerUnreachable("the server is busy"))
    )
    share = model.share_dialog(board)
    assert share.submit("carol").result() is True
    assert (share.note, share.error) == (NOT_CHECKED, None)
    assert members(device, board) == ["alice", "carol"]


def test_a_name_the_server_finds_invalid_is_shown_and_not_queued(
    device: Device, board: str
) -> None:
    refused = InvalidAction("'x' is not a username")
    share = BoardsViewModel(device, check_user=lambda name: answer(refused)).share_dialog(board)
    assert share.submit("bob").result() is False
    assert share.error == "That change is not valid ('x' is not a username)"
    assert members(device, board) == ["alice"]


def test_only_the_owner_shares(tmp_path: Path) -> None:
    from tests.client.app.test_board_needs import _fold_as

    alice = Device(tmp_path / "alice")
    board = alice.create_board("Hers")
    bob = Device(tmp_path / "bob")
    with bob.store.write() as conn:
        write_setting(conn, Setting.USERNAME, "bob")
    with alice.store.read() as conn:
        bodies = [bytes(b) for (b,) in conn.execute("SELECT body FROM outbox")]
    _fold_as(bob, bodies, "alice")
    share, asked = dialog(bob, board, {"carol"})
    assert share.submit("carol").result() is False
    assert share.error == "Only the board's owner (alice) can share it"
    assert asked == []


def test_while_a_check_is_under_way_the_dialog_is_busy_and_the_answer_comes_later(
    device: Device, board: str
) -> None:
    later: Future[bool] = Future()
    answers: list[bool] = []
    share = BoardsViewModel(device, check_user=lambda name: later).share_dialog(board)
    share.subscribe(lambda: answers.append(share.busy))
    done = share.submit("bob")
    assert share.busy and not done.done()
    assert share.submit("bob").result() is False, "one check at a time"
    later.set_result(True)
    assert done.result() is True and not share.busy
    assert answers[0] is True and answers[-1] is False
