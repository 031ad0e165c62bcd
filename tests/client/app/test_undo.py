"""Undo after delete, move and edit: the inverse events, only for the fields that still hold
what the action set; otherwise the task changed elsewhere and the result says so."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from client.app.viewmodels import BoardViewModel, TaskViewModel
from client.device import Device
from client.store.outbox import Outbox

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


def values(device: Device, task: str) -> dict[str, Any]:
    found = device.entity("task", task)
    assert found is not None
    return dict(found["values"])


def outbox_types(device: Device) -> list[str]:
    with device.store.read() as conn:
        return [json.loads(body)["type"] for body in Outbox(conn).bodies()]


def test_a_delete_offers_undo_which_restores_the_task(
    device: Device, board: str, model: BoardViewModel
) -> None:
    task = device.add_task(board, "Book the venue")
    model.refresh()
    assert model.undo_offer is None, "nothing done yet: no snackbar"
    assert model.delete(task)
    offer = model.undo_offer
    assert offer is not None and (offer.text, offer.action) == ("Task deleted", "Undo")
    assert titles(model) == []
    assert model.undo()
    assert (model.undo_result, model.undo_offer) == ("Undone", None)
    assert titles(model) == ["Book the venue"]
    assert outbox_types(device)[-2:] == ["TaskDeleted", "TaskRestored"]


def test_undoing_a_delete_restored_elsewhere_says_so_and_writes_nothing(
    device: Device, board: str, model: BoardViewModel
) -> None:
    task = device.add_task(board, "Book the venue")
    model.refresh()
    model.delete(task)
    device.restore_task(task)  # another device's restore, as a sync folds it in
    device.set_task(task, title="Book the big venue")
    written = len(outbox_types(device))
    assert model.undo()
    assert model.undo_result == "Not undone: the task changed elsewhere since"
    assert len(outbox_types(device)) == written, "no inverse event"
    assert values(device, task)["title"] == "Book the big venue"


def test_a_move_to_another_column_is_undone_to_its_column_and_place(
    device: Device, board: str, model: BoardViewModel
) -> None:
    first, second, third = (device.add_task(board, name) for name in ("one", "two", "three"))
    model.refresh()
    assert model.move(second, "doing")
    assert model.undo_offer is not None and model.undo_offer.text == "Moved to Doing"
    assert model.undo_offer.fields == ("status", "position")
    assert (titles(model), titles(model, "doing")) == (["one", "three"], ["two"])
    assert model.undo()
    assert model.undo_result == "Undone"
    assert (titles(model), titles(model, "doing")) == (["one", "two", "three"], [])
    assert {first, third} <= {card["id"] for card in model.columns["todo"]}


def test_a_move_within_its_column_is_undone_too(
    device: Device, board: str, model: BoardViewModel
) -> None:
    for name in ("one", "two", "three"):
        device.add_task(board, name)
    model.refresh()
    three = model.columns["todo"][2]["id"]
    assert model.move_up(three)
    assert model.undo_offer is not None and model.undo_offer.text == "Moved"
    assert titles(model) == ["one", "three", "two"]
    model.undo()
    assert titles(model) == ["one", "two", "three"]


def test_a_move_then_moved_elsewhere_is_not_undone(
    device: Device, board: str, model: BoardViewModel
) -> None:
    task = device.add_task(board, "one")
    model.refresh()
    model.move(task, "doing")
    device.move_task(task, "done")  # another device finished it meanwhile
    assert model.undo()
    assert model.undo_result == "Not undone: the task changed elsewhere since"
    assert values(device, task)["status"] == "done"


def test_a_move_whose_column_changed_elsewhere_but_not_its_place_undoes_only_the_place(
    device: Device, board: str, model: BoardViewModel
) -> None:
    task = device.add_task(board, "one")
    device.add_task(board, "busy", status="doing")
    model.refresh()
    model.move(task, "doing")
    moved = values(device, task)["position"]
    device.set_task(task, status="done")  # the column changed elsewhere, the place did not
    model.undo()
    assert model.undo_result == (
        "Undone, except the column: changed elsewhere since, kept as it is now"
    )
    after = values(device, task)
    assert after["status"] == "done" and after["position"] != moved


def test_a_dropped_card_where_it_was_offers_nothing(
    device: Device, board: str, model: BoardViewModel
) -> None:
    from client.app.viewmodels.board import DropTarget

    task = device.add_task(board, "one")
    model.refresh()
    assert model.drop(task, DropTarget("todo", 0))
    assert model.undo_offer is None


def test_a_new_action_replaces_the_offer_and_dismissing_ends_it(
    device: Device, board: str, model: BoardViewModel
) -> None:
    one, two = device.add_task(board, "one"), device.add_task(board, "two")
    model.refresh()
    model.move(one, "doing")
    model.delete(two)
    assert model.undo_offer is not None and model.undo_offer.task == two
    model.dismiss_undo()
    assert (model.undo_offer, model.undo_result) == (None, None)
    assert not model.undo(), "nothing to undo"
    assert values(device, two)["deleted"] is True


def test_undo_on_an_archived_board_is_refused_in_words(
    device: Device, board: str, model: BoardViewModel
) -> None:
    task = device.add_task(board, "one")
    model.refresh()
    model.delete(task)
    device.archive_board(board)
    model.refresh()
    assert not model.undo()
    assert model.error == "This board is archived: unarchive it to change its tasks"
    assert values(device, task)["deleted"] is True


def test_an_edit_is_undone_field_by_field(device: Device, board: str) -> None:
    task = device.add_task(board, "Book", priority=1)
    editor = TaskViewModel(device, task)
    assert editor.save(title="Book the venue", priority=3, due="2025-04-01")
    offer = editor.undo_offer
    assert offer is not None and offer.text == "Changes saved"
    assert set(offer.fields) == {"title", "priority", "due"}
    assert editor.undo()
    assert editor.undo_result == "Undone"
    now = values(device, task)
    assert (now["title"], now["priority"], now["due"]) == ("Book", 1, None)
    assert editor.form["title"] == "Book", "the form follows the task as undone"


def test_an_edit_undone_keeps_a_field_changed_elsewhere_and_says_which(
    device: Device, board: str
) -> None:
    task = device.add_task(board, "Book", priority=1)
    editor = TaskViewModel(device, task)
    editor.save(title="Book the venue", priority=3)
    device.set_task(task, title="Book the hall")  # another device's edit
    editor.refresh()
    assert editor.undo()
    assert editor.undo_result == (
        "Undone, except the title: changed elsewhere since, kept as it is now"
    )
    now = values(device, task)
    assert (now["title"], now["priority"]) == ("Book the hall", 1)


def test_an_edit_that_moved_the_task_is_undone_to_its_column(device: Device, board: str) -> None:
    task = device.add_task(board, "Book")
    device.add_task(board, "busy", status="doing")
    editor = TaskViewModel(device, task)
    editor.save(status="doing", notes="call them")
    assert editor.undo_offer is not None
    assert set(editor.undo_offer.fields) == {"status", "position", "notes"}
    editor.undo()
    now = values(device, task)
    assert (now["status"], now["notes"]) == ("todo", "")


def test_a_save_that_changed_nothing_offers_nothing(device: Device, board: str) -> None:
    task = device.add_task(board, "Book")
    editor = TaskViewModel(device, task)
    assert editor.save(title="Book")
    assert editor.undo_offer is None


def test_the_editors_delete_offers_undo(device: Device, board: str) -> None:
    task = device.add_task(board, "Book")
    editor = TaskViewModel(device, task)
    editor.delete()
    assert editor.undo_offer is not None and editor.undo_offer.text == "Task deleted"
    editor.undo()
    assert editor.undo_result == "Undone" and not editor.deleted
