"""One board: columns of cards in position order, quick add, moves by buttons and keys,
filters, and deleted tasks to restore."""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path

import pytest

from client.app.viewmodels import BoardViewModel, CardFilter
from client.device import Device

TODAY = date(2025, 3, 14)


@pytest.fixture
def device(tmp_path: Path) -> Device:
    return Device(tmp_path / "profile")


@pytest.fixture
def board(device: Device) -> str:
    return device.create_board("Launch")


@pytest.fixture
def model(device: Device, board: str) -> BoardViewModel:
    return BoardViewModel(device, board, today=lambda: TODAY)


def titles(model: BoardViewModel, status: str = "todo") -> list[str]:
    return [card["title"] for card in model.columns[status]]


def add(model: BoardViewModel, *names: str, status: str = "todo") -> list[str]:
    made = [model.quick_add(name, status) for name in names]
    assert all(made), model.error
    return [task for task in made if task is not None]


def test_three_columns_titled_to_do_doing_done(model: BoardViewModel) -> None:
    assert list(model.columns) == ["todo", "doing", "done"]
    assert model.column_titles == {"todo": "To do", "doing": "Doing", "done": "Done"}
    assert model.name == "Launch"


def test_a_card_shows_title_assignee_due_priority_and_labels(
    device: Device, board: str, model: BoardViewModel
) -> None:
    task = device.add_task(
        board, "Ship", assignee="alice", due="2025-04-01", priority=3, labels=["ui", "api"]
    )
    model.refresh()
    assert model.columns["todo"] == [
        {
            "id": task,
            "title": "Ship",
            "assignee": "alice",
            "due": "2025-04-01",
            "overdue": False,
            "priority": 3,
            "priority_name": "High",
            "labels": ["api", "ui"],
            "has_notes": False,
            "comments": 0,
        }
    ]


def test_overdue_marks_tasks_due_before_today_that_are_not_done(
    device: Device, board: str, model: BoardViewModel
) -> None:
    device.add_task(board, "Late", due="2025-03-13")
    device.add_task(board, "Today", due="2025-03-14")
    device.add_task(board, "No date")
    device.add_task(board, "Late but done", due="2025-01-01", status="done")
    model.refresh()
    cards = [*model.columns["todo"], *model.columns["done"]]
    assert {c["title"]: c["overdue"] for c in cards} == {
        "Late": True,
        "Today": False,
        "No date": False,
        "Late but done": False,
    }


def test_quick_add_appends_to_the_column_in_position_order(model: BoardViewModel) -> None:
    add(model, "One", "Two", "Three")
    add(model, "Busy", status="doing")
    assert titles(model) == ["One", "Two", "Three"]
    assert titles(model, "doing") == ["Busy"]


@pytest.mark.parametrize(
    ("title", "message"),
    [(" ", "A task needs a title"), ("x" * 501, "A title is at most 500 characters")],
)
def test_quick_add_refuses_a_bad_title_in_plain_words(
    model: BoardViewModel, title: str, message: str
) -> None:
    assert model.quick_add(title) is None
    assert (model.error, titles(model)) == (message, [])


def test_a_column_that_does_not_exist_is_a_programming_error(model: BoardViewModel) -> None:
    with pytest.raises(ValueError):
        model.quick_add("Lost", "later")
    with pytest.raises(ValueError):
        model.move(str(uuid.uuid4()), "later", 0)


def test_move_puts_a_card_at_an_index_of_another_column(model: BoardViewModel) -> None:
    one, _, _ = add(model, "One", "Two", "Three")
    add(model, "A", "B", status="doing")
    assert model.move(one, "doing", 1)
    assert (titles(model), titles(model, "doing")) == (["Two", "Three"], ["A", "One", "B"])


def test_move_within_a_column_reorders_it(model: BoardViewModel) -> None:
    one, _, _ = add(model, "One", "Two", "Three")
    assert model.move(one, "todo", 2)
    assert titles(model) == ["Two", "Three", "One"]
    assert model.move(one, "todo", 0)
    assert titles(model) == ["One", "Two", "Three"]


def test_move_left_and_right_go_to_the_end_of_the_neighbouring_column(
    model: BoardViewModel,
) -> None:
    (task,) = add(model, "Moving")
    add(model, "Busy", status="doing")
    assert model.move_right(task)
    assert titles(model, "doing") == ["Busy", "Moving"]
    assert model.move_right(task) and titles(model, "done") == ["Moving"]
    assert model.move_right(task) is False  # Done is the last column
    assert model.move_left(task) and titles(model, "doing") == ["Busy", "Moving"]
    assert model.move_left(task) and titles(model) == ["Moving"]
    assert model.move_left(task) is False
    assert model.error is None


def test_move_up_and_down_step_within_the_column(model: BoardViewModel) -> None:
    one, two, three = add(model, "One", "Two", "Three")
    assert model.move_down(one) and titles(model) == ["Two", "One", "Three"]
    assert model.move_up(three) and titles(model) == ["Two", "Three", "One"]
    assert model.move_up(two) is False  # already at the top
    assert model.move_down(one) is False  # already at the bottom
    assert titles(model) == ["Two", "Three", "One"]


def test_moves_among_filtered_cards_land_next_to_the_card_shown(
    device: Device, model: BoardViewModel
) -> None:
    one, _, three, four = add(model, "One", "Two", "Three", "Four")
    for task in (one, three, four):
        device.add_label(task, "ui")
    model.set_filter(label="ui")
    assert titles(model) == ["One", "Three", "Four"]
    assert model.move_up(four)  # past Three, which is shown; Two is hidden
    assert titles(model) == ["One", "Four", "Three"]
    model.clear_filter()
    assert titles(model) == ["One", "Two", "Four", "Three"]
    model.set_filter(label="ui")
    assert model.move(one, "todo", 2)  # after the last card shown
    model.clear_filter()
    assert titles(model) == ["Two", "Four", "Three", "One"]


def test_a_move_of_a_task_that_is_gone_is_an_error_in_plain_words(
    model: BoardViewModel,
) -> None:
    gone = str(uuid.uuid4())
    message = "That task is no longer on this board: a sync may have removed it"
    for command in (model.move_left, model.move_right, model.move_up, model.move_down):
        assert command(gone) is False
        assert model.error == message
    assert model.move(gone, "done") is False
    assert model.error == "That task is no longer on this device: a sync may have removed it"


def test_filter_by_label(device: Device, board: str, model: BoardViewModel) -> None:
    device.add_task(board, "Button", labels=["ui"])
    device.add_task(board, "Endpoint", labels=["api"])
    model.set_filter(label="ui")
    assert titles(model) == ["Button"]
    assert model.filter == CardFilter(label="ui") and model.filter.active


def test_filter_by_assignee(device: Device, board: str, model: BoardViewModel) -> None:
    device.add_task(board, "Hers", assignee="alice")
    device.add_task(board, "His", assignee="bob", status="doing")
    device.add_task(board, "Nobody's")
    model.set_filter(assignee="bob")
    assert (titles(model), titles(model, "doing")) == ([], ["His"])


def test_filter_by_text_matches_title_or_notes_ignoring_case(
    device: Device, board: str, model: BoardViewModel
) -> None:
    device.add_task(board, "Fix the LOGIN page")
    device.add_task(board, "Polish", notes="also the login form")
    device.add_task(board, "Unrelated")
    model.set_filter(text="  Login ")
    assert titles(model) == ["Fix the LOGIN page", "Polish"]


def test_filters_combine_and_clear(device: Device, board: str, model: BoardViewModel) -> None:
    device.add_task(board, "Login button", labels=["ui"], assignee="alice")
    device.add_task(board, "Login endpoint", labels=["api"], assignee="alice")
    device.add_task(board, "Login colours", labels=["ui"], assignee="bob")
    model.set_filter(label="ui", assignee="alice", text="login")
    assert titles(model) == ["Login button"]
    model.clear_filter()
    assert len(titles(model)) == 3 and not model.filter.active


def test_labels_and_assignees_in_use_come_from_the_live_tasks(
    device: Device, board: str, model: BoardViewModel
) -> None:
    device.add_task(board, "A", labels=["ui", "api"], assignee="bob")
    device.add_task(board, "B", labels=["ui"], assignee="alice")
    gone = device.add_task(board, "C", labels=["old"], assignee="carol")
    device.delete_task(gone)
    model.set_filter(label="api")  # what is in use does not depend on the filter
    assert (model.labels_in_use, model.assignees_in_use) == (["api", "ui"], ["alice", "bob"])


def test_deleted_tasks_are_listed_for_restore_only_when_asked(model: BoardViewModel) -> None:
    _, drop = add(model, "Keep", "Drop")
    assert model.delete(drop)
    assert (titles(model), model.deleted_cards) == (["Keep"], [])
    model.toggle_show_deleted()
    assert model.show_deleted and [c["id"] for c in model.deleted_cards] == [drop]
    assert model.restore(drop)
    assert (titles(model), model.deleted_cards) == (["Keep", "Drop"], [])
    model.set_show_deleted(False)
    assert not model.show_deleted


def test_an_archived_board_refuses_task_changes(
    device: Device, board: str, model: BoardViewModel
) -> None:
    (task,) = add(model, "Frozen")
    device.archive_board(board)
    model.refresh()
    message = "This board is archived: unarchive it to change its tasks"
    assert model.quick_add("More") is None and model.error == message
    for command in (model.move_right, model.delete, model.restore):
        assert command(task) is False and model.error == message
    assert titles(model) == ["Frozen"]


def test_every_command_and_filter_tells_the_subscribers(model: BoardViewModel) -> None:
    calls: list[int] = []
    model.subscribe(lambda: calls.append(1))
    (task,) = add(model, "One")
    model.move_right(task)
    model.set_filter(text="one")
    model.toggle_show_deleted()
    model.refresh()
    assert len(calls) == 5
