"""What a board needs beyond cards: the WIP header and its limit set by the owner only,
notes and comment counts on cards, empty states that say what to do."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from client.app.viewmodels import BoardViewModel
from client.device import Device
from client.store.settings import Setting, write_setting
from client.store.view import OWN_ACTOR

TODAY = date(2025, 3, 14)


def signed_in(device: Device, username: str) -> Device:
    with device.store.write() as conn:
        write_setting(conn, Setting.USERNAME, username)
    return device


@pytest.fixture
def device(tmp_path: Path) -> Device:
    return signed_in(Device(tmp_path / "profile"), "alice")


@pytest.fixture
def board(device: Device) -> str:
    return device.create_board("Launch", wip_limit=3)


@pytest.fixture
def model(device: Device, board: str) -> BoardViewModel:
    return BoardViewModel(device, board, today=lambda: TODAY)


def test_doings_header_counts_your_tasks_in_doing_against_the_limit(
    device: Device, board: str, model: BoardViewModel
) -> None:
    device.add_task(board, "mine", assignee="alice", status="doing")
    device.add_task(board, "bobs", assignee="bob", status="doing")
    device.add_task(board, "bobs too", assignee="bob", status="doing")
    device.add_task(board, "nobodys", status="doing")
    device.add_task(board, "mine later", assignee="alice")
    model.refresh()
    assert model.wip is not None
    assert (model.wip.text, model.wip.label, model.wip.full) == ("1/3", "you 1/3", False)
    assert model.headers == {
        "todo": "To do · 1",
        "doing": "Doing · 4 · you 1/3",
        "done": "Done · 0",
    }


def test_filtered_by_an_assignee_the_header_counts_theirs(
    device: Device, board: str, model: BoardViewModel
) -> None:
    for name in ("one", "two", "three"):
        device.add_task(board, name, assignee="bob", status="doing")
    model.set_filter(assignee="bob")
    assert model.wip is not None
    assert (model.wip.label, model.wip.full, model.wip.over) == ("bob 3/3", True, False)
    assert model.headers["doing"] == "Doing · 3 · bob 3/3"
    device.add_task(board, "four", assignee="bob", status="doing")  # offline: before the saga
    model.refresh()
    assert model.wip is not None and model.wip.over


def test_deleted_tasks_do_not_count_against_the_limit(
    device: Device, board: str, model: BoardViewModel
) -> None:
    task = device.add_task(board, "mine", assignee="alice", status="doing")
    device.delete_task(task)
    model.refresh()
    assert model.wip is not None and model.wip.text == "0/3"


def test_a_board_without_a_limit_has_no_wip_header(device: Device) -> None:
    board = device.create_board("Open")
    device.add_task(board, "busy", assignee="alice", status="doing")
    model = BoardViewModel(device, board, today=lambda: TODAY)
    assert model.wip is None and model.wip_limit is None
    assert model.headers["doing"] == "Doing · 1"


def test_the_owner_sets_and_clears_the_limit(
    device: Device, board: str, model: BoardViewModel
) -> None:
    assert model.can_set_wip_limit
    assert model.set_wip_limit("2")
    assert model.wip_limit == 2 and model.wip is not None and model.wip.text == "0/2"
    assert model.set_wip_limit("none")
    assert (model.wip_limit, model.wip) == (None, None)
    assert model.set_wip_limit(5)
    found = device.entity("board", board)
    assert found is not None and found["values"]["wip_limit"] == 5


@pytest.mark.parametrize("limit", ["101", "-1", "two", "2.5"])
def test_a_limit_out_of_range_is_refused_and_nothing_recorded(
    device: Device, model: BoardViewModel, limit: str
) -> None:
    before = device.pending_count()
    assert not model.set_wip_limit(limit)
    assert model.error == "The limit is a whole number from 1 to 100, or none"
    assert device.pending_count() == before and model.wip_limit == 3


def test_only_the_owner_sets_the_limit(tmp_path: Path) -> None:
    alice = signed_in(Device(tmp_path / "alice"), "alice")
    board = alice.create_board("Shared", wip_limit=3)
    # bob's device holds the board as a sync brings it: owned by alice
    bob = signed_in(Device(tmp_path / "bob"), "bob")
    with alice.store.read() as conn:
        bodies = [bytes(b) for (b,) in conn.execute("SELECT body FROM outbox ORDER BY position")]
    _fold_as(bob, bodies, "alice")
    model = BoardViewModel(bob, board, today=lambda: TODAY)
    assert model.board is not None and model.board["owner"] == "alice"
    assert not model.can_set_wip_limit
    assert not model.set_wip_limit(1)
    assert model.error == "Only the board's owner (alice) can set its limit on tasks in Doing"
    assert bob.pending_count() == 0


def _fold_as(device: Device, bodies: list[bytes], actor: str) -> None:
    """Events another user made, folded into this device's view as a pull would."""
    import msgspec

    from client.store.view import fold_into_view
    from protocol import Writer, validate_event

    events = [
        msgspec.structs.replace(validate_event(msgspec.json.decode(b), Writer.DEVICE), actor=actor)
        for b in bodies
    ]
    with device.store.write() as conn:
        fold_into_view(conn, events)


def test_cards_show_a_sign_of_notes_and_count_comments(
    device: Device, board: str, model: BoardViewModel
) -> None:
    plain = device.add_task(board, "plain")
    noted = device.add_task(board, "noted", notes="call the venue first")
    blank = device.add_task(board, "blank notes", notes="   ")
    for body in ("one", "two", "three"):
        device.add_comment(noted, body)
    gone = device.add_comment(plain, "gone")
    device.delete_comment(gone)
    model.refresh()
    cards = {card["id"]: card for card in model.columns["todo"]}
    assert (cards[noted]["has_notes"], cards[noted]["comments"]) == (True, 3)
    assert (cards[plain]["has_notes"], cards[plain]["comments"]) == (False, 0)
    assert cards[blank]["has_notes"] is False


def test_an_empty_board_says_what_to_do(model: BoardViewModel) -> None:
    assert model.is_empty
    assert model.empty_texts == {
        "todo": "No tasks yet: add the first one above",
        "doing": "Move a task here when work on it starts",
        "done": "Finished tasks land here",
    }


def test_a_column_the_filter_empties_says_so_unlike_an_empty_one(
    device: Device, board: str, model: BoardViewModel
) -> None:
    device.add_task(board, "Print", labels=["print"])
    device.add_task(board, "Write", status="doing", labels=["copy"])
    model.set_filter(label="copy")
    assert not model.is_empty
    assert model.empty_texts == {
        "todo": "No card here matches the filter: clear it to see them all",
        "doing": "",
        "done": "Nothing done yet",
    }
    model.clear_filter()
    assert model.empty_texts == {"todo": "", "doing": "", "done": "Nothing done yet"}


def test_before_sign_in_you_are_the_profiles_own_actor(tmp_path: Path) -> None:
    device = Device(tmp_path / "fresh")
    board = device.create_board("Mine", wip_limit=1)
    device.add_task(board, "busy", assignee=None, status="doing")
    model = BoardViewModel(device, board, today=lambda: TODAY)
    assert model.can_set_wip_limit, "the profile's own board, before any account"
    assert model.wip is not None and (model.wip.assignee, model.wip.label) == (OWN_ACTOR, "you 0/1")


def test_the_boards_list_sets_the_limit_too_for_its_owner_only(tmp_path: Path) -> None:
    from client.app.viewmodels import BoardsViewModel

    alice = signed_in(Device(tmp_path / "alice"), "alice")
    board = alice.create_board("Hers")
    boards = BoardsViewModel(alice)
    assert boards.set_wip_limit(board, "4")
    assert boards.boards[0]["wip_limit"] == 4
    assert not boards.set_wip_limit(board, "400")
    assert boards.error == "The limit is a whole number from 1 to 100, or none"
    bob = signed_in(Device(tmp_path / "bob"), "bob")
    with alice.store.read() as conn:
        bodies = [bytes(b) for (b,) in conn.execute("SELECT body FROM outbox ORDER BY position")]
    _fold_as(bob, bodies, "alice")
    theirs = BoardsViewModel(bob)
    assert not theirs.set_wip_limit(board, "2")
    assert theirs.error == "Only the board's owner (alice) can set its limit on tasks in Doing"
