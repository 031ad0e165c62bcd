"""The list of boards: create, rename, archive, share, members; owners only where the
backend would say so."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from client.app.viewmodels import BoardsViewModel
from client.device import Device
from tests.support.backend import BackendProcess
from tests.support.online import online

PASSWORD = "correct horse"


@pytest.fixture
def device(tmp_path: Path) -> Device:
    return Device(tmp_path / "profile")


@pytest.fixture
def model(device: Device) -> BoardsViewModel:
    return BoardsViewModel(device)


def names(model: BoardsViewModel) -> list[tuple[str, bool]]:
    return [(b["name"], b["archived"]) for b in model.boards]


def test_lists_open_boards_by_name_then_the_archived_ones_flagged(
    model: BoardsViewModel,
) -> None:
    for name in ("Roadmap", "attic", "Launch", "Archive me"):
        model.create(name)
    model.archive(next(b["id"] for b in model.boards if b["name"] == "Archive me"))
    model.archive(next(b["id"] for b in model.boards if b["name"] == "attic"))
    assert names(model) == [
        ("Launch", False),
        ("Roadmap", False),
        ("Archive me", True),
        ("attic", True),
    ]


def test_create_adds_a_board_of_mine_and_selects_it(model: BoardsViewModel) -> None:
    board = model.create("  Launch  ")
    assert board is not None and model.selected == board
    assert model.boards == [
        {
            "id": board,
            "name": "Launch",
            "archived": False,
            "owner": "(you)",
            "is_owner": True,
            "wip_limit": None,
        }
    ]


@pytest.mark.parametrize(
    ("name", "message"),
    [("   ", "A board needs a name"), ("x" * 201, "A board name is at most 200 characters")],
)
def test_create_refuses_a_bad_name_in_plain_words(
    model: BoardsViewModel, name: str, message: str
) -> None:
    assert model.create(name) is None
    assert (model.error, model.boards, model.selected) == (message, [], None)


def test_a_successful_command_clears_the_last_error(model: BoardsViewModel) -> None:
    model.create("")
    assert model.error is not None
    model.create("Launch")
    assert model.error is None


def test_rename_renames(model: BoardsViewModel) -> None:
    board = model.create("Launch")
    assert board is not None
    assert model.rename(board, "Liftoff")
    assert names(model) == [("Liftoff", False)]
    assert not model.rename(board, "")
    assert model.error == "A board needs a name"


def test_archive_and_unarchive_flag_the_board(model: BoardsViewModel) -> None:
    board = model.create("Launch")
    assert board is not None
    assert model.archive(board) and names(model) == [("Launch", True)]
    assert model.unarchive(board) and names(model) == [("Launch", False)]


def test_select_remembers_the_board_and_tells_subscribers(model: BoardsViewModel) -> None:
    board = model.create("Launch")
    calls: list[str | None] = []
    model.subscribe(lambda: calls.append(model.selected))
    model.select(None)
    model.select(board)
    assert calls == [None, board]


def test_share_adds_a_member_and_members_lists_the_owner_first(model: BoardsViewModel) -> None:
    board = model.create("Launch")
    assert board is not None
    assert model.share(board, " bob ")
    assert model.share(board, "alice")
    assert model.members(board) == [
        {"username": "(you)", "role": "owner", "is_you": True},
        {"username": "alice", "role": "member", "is_you": False},
        {"username": "bob", "role": "member", "is_you": False},
    ]


@pytest.mark.parametrize(
    ("username", "message"),
    [
        ("B!", "A username is 3 to 32 characters: lowercase a-z, 0-9, _ . or -"),
        ("bob", "bob is already on this board"),
    ],
)
def test_share_refuses_what_cannot_be_shared(
    model: BoardsViewModel, username: str, message: str
) -> None:
    board = model.create("Launch")
    assert board is not None
    model.share(board, "bob")
    assert not model.share(board, username)
    assert model.error == message


def test_unshare_removes_a_member_but_never_the_owner(model: BoardsViewModel) -> None:
    board = model.create("Launch")
    assert board is not None
    model.share(board, "bob")
    assert model.unshare(board, "bob")
    assert [m["username"] for m in model.members(board)] == ["(you)"]
    assert not model.unshare(board, "(you)")
    assert model.error == "The owner cannot be removed from their own board"


def test_a_board_that_is_not_there_is_an_error_in_plain_words(model: BoardsViewModel) -> None:
    missing = str(uuid.uuid4())
    for command in (model.rename, model.share):
        assert not command(missing, "bob")
        assert model.error == "That board is no longer on this device: a sync may have removed it"
    assert model.members(missing) == []


def test_a_store_that_cannot_write_becomes_an_error_not_a_crash(
    device: Device, model: BoardsViewModel
) -> None:
    device.store._conn.execute("PRAGMA query_only = ON")  # as a read-only disk would
    assert model.create("Launch") is None
    assert model.error is not None and model.error.startswith("Cannot write to the local store")
    assert model.boards == []


def test_refresh_shows_what_changed_underneath(device: Device, model: BoardsViewModel) -> None:
    device.create_board("Made elsewhere")
    assert model.boards == []
    model.refresh()
    assert names(model) == [("Made elsewhere", False)]


# a board someone else owns, through a real backend


@pytest.mark.integration
def test_a_member_sees_the_board_but_only_its_owner_changes_or_shares_it(
    tmp_path: Path, module_backend: BackendProcess
) -> None:
    alice, bob = (f"{name}{uuid.uuid4().hex[:6]}" for name in ("alice", "bob"))
    owner, member = Device(tmp_path / "alice"), Device(tmp_path / "bob")
    online(member, module_backend.url, "signup", username=bob)
    online(owner, module_backend.url, "signup", username=alice)
    board = BoardsViewModel(owner).create("Launch")
    assert board is not None and BoardsViewModel(owner).share(board, bob)
    online(owner, module_backend.url, "sync")
    online(member, module_backend.url, "sync")

    model = BoardsViewModel(member)
    assert [(b["name"], b["owner"], b["is_owner"]) for b in model.boards] == [
        ("Launch", alice, False)
    ]
    assert model.members(board) == [
        {"username": alice, "role": "owner", "is_you": False},
        {"username": bob, "role": "member", "is_you": True},
    ]
    refusals: dict[str, Callable[[], bool]] = {
        "rename it": lambda: model.rename(board, "Mine"),
        "archive it": lambda: model.archive(board),
        "unarchive it": lambda: model.unarchive(board),
        "share it": lambda: model.share(board, "carol"),
        "remove people from it": lambda: model.unshare(board, bob),
    }
    for doing, command in refusals.items():
        assert command() is False
        assert model.error == f"Only the board's owner ({alice}) can {doing}"
    assert member.pending_count() == 0
