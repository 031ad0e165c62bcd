"""A local action is one transaction: the checks, the append and the fold commit together,
and an added task goes to the end of its own column however the board got there."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from client.device import Device
from client.errors import InvalidAction, NotFound
from protocol import new_id


@pytest.fixture
def device(tmp_path: Path) -> Iterator[Device]:
    opened = Device(tmp_path / "profile")
    yield opened
    opened.close()


def positions(device: Device, board: str, status: str) -> list[tuple[str, str]]:
    return [(t["position"], t["id"]) for t in device.tasks(board) if t["status"] == status]


def test_an_added_task_goes_after_every_task_of_its_own_column(device: Device) -> None:
    board = device.create_board("Columns")
    todo = [device.add_task(board, f"To do {i}") for i in range(5)]
    doing = [device.add_task(board, f"Doing {i}", status="doing") for i in range(3)]
    device.move_task(todo[0], index=4)  # to the end of To do
    device.move_task(doing[2], index=0)  # to the top of Doing
    device.move_task(todo[1], status="doing")  # to the end of Doing

    added_todo = device.add_task(board, "New to do")
    added_doing = device.add_task(board, "New doing", status="doing")
    added_done = device.add_task(board, "New done", status="done")

    assert [t for _, t in positions(device, board, "todo")] == [*todo[2:], todo[0], added_todo]
    assert [t for _, t in positions(device, board, "doing")][-2:] == [todo[1], added_doing]
    assert [t for _, t in positions(device, board, "done")] == [added_done]


def test_a_deleted_task_still_holds_its_place_at_the_end(device: Device) -> None:
    """A restored task comes back where it was: a new one goes after it, not over it."""
    board = device.create_board("Deleted")
    first = device.add_task(board, "First")
    last = device.add_task(board, "Last")
    device.delete_task(last)
    added = device.add_task(board, "Added")
    device.restore_task(last)
    assert [t for _, t in positions(device, board, "todo")] == [first, last, added]


def test_the_columns_of_one_board_do_not_bound_another_boards(device: Device) -> None:
    crowded = device.create_board("Crowded")
    for i in range(20):
        device.add_task(crowded, f"Task {i}")
    empty = device.create_board("Empty")
    device.add_task(empty, "Only")
    [(only, _)] = positions(device, empty, "todo")
    assert only < max(p for p, _ in positions(device, crowded, "todo"))


def test_an_action_on_what_is_not_in_the_profile_writes_nothing(device: Device) -> None:
    board = device.create_board("Board")
    task = device.add_task(board, "Task")
    before = (device.pending_count(), device.snapshot())
    with pytest.raises(NotFound):
        device.add_task(new_id(), "Nowhere")
    with pytest.raises(NotFound):
        device.set_task(new_id(), title="Nobody")
    with pytest.raises(NotFound):
        device.add_comment(new_id(), "On nothing")
    with pytest.raises(NotFound):
        device.rename_board(task, "A task is no board")
    with pytest.raises(NotFound):
        device.require_board(new_id())
    with pytest.raises(InvalidAction):
        device.add_task(board, "Bad status", status="someday")
    with pytest.raises(InvalidAction):
        device.set_task(task, priority="very")
    assert (device.pending_count(), device.snapshot()) == before
