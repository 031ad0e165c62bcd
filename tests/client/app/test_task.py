"""One task: every field, only what changed sent, labels, comments, delete and restore."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from client.app.viewmodels import TaskViewModel, TimeText
from client.device import Device
from tests.support.backend import BackendProcess
from tests.support.online import online

PASSWORD = "correct horse"


@pytest.fixture
def device(tmp_path: Path) -> Device:
    return Device(tmp_path / "profile")


@pytest.fixture
def board(device: Device) -> str:
    return device.create_board("Launch")


@pytest.fixture
def task(device: Device, board: str) -> str:
    return device.add_task(board, "Ship", notes="soon", labels=["ui"])


@pytest.fixture
def model(device: Device, task: str) -> TaskViewModel:
    return TaskViewModel(device, task, format_time=lambda seconds: "at noon")


def outbox(device: Device) -> list[dict[str, Any]]:
    with device.store.read() as conn:
        rows = conn.execute("SELECT body FROM outbox ORDER BY position").fetchall()
    return [msgspec.json.decode(body) for (body,) in rows]


def test_values_hold_every_field_of_the_task(model: TaskViewModel) -> None:
    assert model.values == {
        "title": "Ship",
        "notes": "soon",
        "status": "todo",
        "priority": 0,
        "due": None,
        "assignee": None,
        "labels": ["ui"],
        "deleted": False,
    }
    assert not model.deleted


def test_save_edits_every_field_from_the_forms_text(model: TaskViewModel) -> None:
    assert model.save(
        title=" Ship it ",
        notes="today",
        priority="2",
        due="2025-04-01",
        assignee="alice",
        status="doing",
    )
    assert model.values is not None
    assert {k: model.values[k] for k in ("title", "notes", "priority", "due", "assignee")} == {
        "title": "Ship it",
        "notes": "today",
        "priority": 2,
        "due": "2025-04-01",
        "assignee": "alice",
    }
    assert model.values["status"] == "doing" and model.error is None


def test_save_sends_only_the_fields_that_changed(device: Device, model: TaskViewModel) -> None:
    before = len(outbox(device))
    assert model.save(title="Ship", notes="soon", priority=3, due="")
    sent = outbox(device)[before:]
    assert [(e["type"], e["payload"]) for e in sent] == [
        ("TaskUpdated", {"fields": {"priority": 3}})
    ]


def test_save_with_nothing_changed_records_nothing(device: Device, model: TaskViewModel) -> None:
    before = len(outbox(device))
    assert model.save(title="Ship", status="todo")
    assert len(outbox(device)) == before


def test_a_change_of_column_moves_the_task_to_the_end_of_it(
    device: Device, board: str, model: TaskViewModel, task: str
) -> None:
    device.add_task(board, "Already busy", status="doing")
    assert model.save(status="doing", priority=1)
    assert [t["title"] for t in device.column(board, "doing")] == ["Already busy", "Ship"]
    assert device.entity("task", task)["values"]["priority"] == 1  # type: ignore[index]


def test_empty_due_date_and_assignee_clear_them(model: TaskViewModel) -> None:
    model.save(due="2025-04-01", assignee="alice")
    assert model.save(due=" ", assignee="")
    assert model.values is not None
    assert (model.values["due"], model.values["assignee"]) == (None, None)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"title": "  "}, "A task needs a title"),
        ({"title": "x" * 501}, "A title is at most 500 characters"),
        ({"notes": "x" * 20_001}, "Notes are at most 20,000 characters"),
        ({"due": "14/03/2025"}, "Write the due date as YYYY-MM-DD, for example 2025-03-14"),
        ({"due": "2025-02-30"}, "2025-02-30 is not a date on the calendar"),
        ({"priority": 5}, "Priority is None, Low, Medium, High or Urgent (0 to 4)"),
        ({"priority": "-1"}, "Priority is None, Low, Medium, High or Urgent (0 to 4)"),
        ({"priority": "highest"}, "Priority is None, Low, Medium, High or Urgent (0 to 4)"),
        (
            {"assignee": "Alice Smith"},
            "Assign the task to a username (3 to 32 of a-z, 0-9, _ . -) or to nobody",
        ),
    ],
)
def test_save_refuses_bad_input_and_records_nothing(
    device: Device, model: TaskViewModel, fields: dict[str, Any], message: str
) -> None:
    before = len(outbox(device))
    assert model.save(**{"notes": "changed", **fields}) is False
    assert model.error == message
    assert len(outbox(device)) == before  # checked whole before anything is recorded
    assert model.values is not None and model.values["notes"] == "soon"


def test_an_unknown_field_or_status_is_a_programming_error(model: TaskViewModel) -> None:
    with pytest.raises(TypeError):
        model.save(colour="red")  # type: ignore[call-arg]
    with pytest.raises(ValueError):
        model.save(status="blocked")


def test_labels_are_added_once_and_removed(device: Device, model: TaskViewModel) -> None:
    assert model.add_label(" api ")
    before = len(outbox(device))
    assert model.add_label("api")  # already there: nothing to record
    assert len(outbox(device)) == before
    assert model.remove_label("ui")
    assert model.values is not None and model.values["labels"] == ["api"]


@pytest.mark.parametrize(
    ("label", "message"),
    [("", "A label needs a name"), ("x" * 51, "A label is at most 50 characters")],
)
def test_a_bad_label_is_refused(model: TaskViewModel, label: str, message: str) -> None:
    assert model.add_label(label) is False and model.error == message


def test_comments_are_added_listed_and_deleted(model: TaskViewModel) -> None:
    first = model.add_comment(" Looks good ")
    time.sleep(0.002)  # comments sort by the millisecond they were made in, then by id
    second = model.add_comment("Shipped")
    assert first and second
    assert model.comments == [
        {
            "id": first,
            "body": "Looks good",
            "author": "(you)",
            "time": "at noon",
            "can_delete": True,
        },
        {"id": second, "body": "Shipped", "author": "(you)", "time": "at noon", "can_delete": True},
    ]
    assert model.delete_comment(first)
    assert [c["id"] for c in model.comments] == [second]


def test_an_empty_comment_is_refused(model: TaskViewModel) -> None:
    assert model.add_comment("   ") is None
    assert (model.error, model.comments) == ("Write something first", [])


def test_a_comment_time_reads_as_a_time(device: Device, task: str) -> None:
    device.add_comment(task, "Noted")
    created = device.comments(task)[0]["created_at"] / 1000
    clock = TimeText(now=lambda: created, tz=UTC)
    model = TaskViewModel(device, task, format_time=clock)
    assert model.comments[0]["time"] == datetime.fromtimestamp(created, UTC).strftime("%H:%M")


def test_delete_and_restore(model: TaskViewModel) -> None:
    assert model.delete() and model.deleted
    assert model.restore() and not model.deleted


def test_an_archived_board_refuses_edits(device: Device, board: str, model: TaskViewModel) -> None:
    device.archive_board(board)
    model.refresh()
    message = "This board is archived: unarchive it to change its tasks"
    commands = [
        lambda: model.save(title="Thawed"),
        lambda: model.add_label("x"),
        lambda: model.remove_label("ui"),
        lambda: model.add_comment("hello"),
        lambda: model.delete_comment(str(uuid.uuid4())),
        model.delete,
        model.restore,
    ]
    for command in commands:
        assert not command()
        assert model.error == message


def test_a_task_that_is_not_there_has_no_values_and_says_so(device: Device) -> None:
    model = TaskViewModel(device, str(uuid.uuid4()))
    assert (model.values, model.comments, model.deleted) == (None, [], False)
    assert model.save(title="Anything") is False
    assert model.error == "That task is no longer on this device: a sync may have removed it"


def test_commands_and_refresh_tell_the_subscribers(model: TaskViewModel) -> None:
    calls: list[int] = []
    model.subscribe(lambda: calls.append(1))
    model.save(priority=1)
    model.add_comment("x")
    model.refresh()
    assert len(calls) == 3


# someone else's comment, through a real backend


@pytest.mark.integration
def test_only_a_comments_author_or_the_boards_owner_may_delete_it(
    tmp_path: Path, module_backend: BackendProcess
) -> None:
    alice, bob = (f"{name}{uuid.uuid4().hex[:6]}" for name in ("alice", "bob"))
    owner, member = Device(tmp_path / "alice"), Device(tmp_path / "bob")
    online(owner, module_backend.url, "signup", username=alice)
    online(member, module_backend.url, "signup", username=bob)
    board = owner.create_board("Launch")
    owner.share_board(board, bob)
    task = owner.add_task(board, "Ship")
    owner.add_comment(task, "From the owner")
    online(owner, module_backend.url, "sync")
    online(member, module_backend.url, "sync")

    model = TaskViewModel(member, task)
    mine = model.add_comment("From a member")
    assert [(c["author"], c["can_delete"]) for c in model.comments] == [
        (alice, False),
        (bob, True),
    ]
    assert model.delete_comment(model.comments[0]["id"]) is False
    assert model.error == "Only its author or the board's owner can delete a comment"
    online(member, module_backend.url, "sync")
    online(owner, module_backend.url, "sync")

    owners_view = TaskViewModel(owner, task)
    assert [c["can_delete"] for c in owners_view.comments] == [True, True]
    assert owners_view.delete_comment(str(mine))
    online(owner, module_backend.url, "sync")
    assert owner.rejected() == [] and [c["body"] for c in owners_view.comments] == [
        "From the owner"
    ]


# the editor's base: only what the user changed is saved; changes from elsewhere show live


def test_the_form_starts_as_the_task_and_tracks_what_the_user_touched(
    model: TaskViewModel,
) -> None:
    assert model.form == {
        "title": "Ship",
        "notes": "soon",
        "status": "todo",
        "priority": "0",
        "due": "",
        "assignee": "",
    }
    model.edit("notes", "typed")
    model.edit("title", "Ship")  # typed the same again: not a change
    assert model.touched == ["notes"]
    with pytest.raises(ValueError):
        model.edit("colour", "red")


def test_a_change_made_elsewhere_shows_in_untouched_fields_and_save_keeps_it(
    device: Device, model: TaskViewModel, task: str
) -> None:
    model.edit("notes", "typed while it changed")
    device.set_task(task, title="Renamed elsewhere", due="2026-12-24")  # not by this editor
    model.refresh()
    assert (model.form["title"], model.form["due"]) == ("Renamed elsewhere", "2026-12-24")
    assert model.form["notes"] == "typed while it changed"
    assert (model.conflicts, model.touched) == ({}, ["notes"])
    before = len(outbox(device))
    assert model.save()
    assert [(e["type"], e["payload"]) for e in outbox(device)[before:]] == [
        ("TaskUpdated", {"fields": {"notes": "typed while it changed"}})
    ]
    assert model.values is not None
    assert (model.values["title"], model.values["due"]) == ("Renamed elsewhere", "2026-12-24")


def test_a_field_changed_elsewhere_while_the_user_edits_it_is_marked(
    device: Device, model: TaskViewModel, task: str
) -> None:
    model.edit("title", "My title")
    model.edit("status", "doing")
    device.set_task(task, title="Their title")
    device.move_task(task, "done")
    model.refresh()
    assert model.conflicts == {"title": "Their title", "status": "done"}
    assert model.hint("title") == "Changed on another device: Their title"
    assert model.hint("status") == "Changed on another device: Done"
    assert model.hint("notes") == ""
    assert model.form["title"] == "My title"  # what the user typed stays
    assert model.save()  # the user saw it and saved: their value wins
    assert model.values is not None
    assert (model.values["title"], model.values["status"]) == ("My title", "doing")
    assert model.conflicts == {} and model.touched == []


def test_typing_what_another_device_wrote_ends_the_conflict(
    device: Device, model: TaskViewModel, task: str
) -> None:
    model.edit("due", "2026-01-01")
    device.set_task(task, due="2026-02-02")
    model.refresh()
    assert model.conflicts == {"due": "2026-02-02"}
    calls: list[int] = []
    model.subscribe(lambda: calls.append(1))
    model.edit("due", "2026-02-02")
    assert (model.conflicts, model.touched, calls) == ({}, [], [1])


@pytest.mark.integration
def test_faults_27_another_devices_rename_and_due_date_survive_a_save_of_the_notes(
    tmp_path: Path, module_backend: BackendProcess
) -> None:
    user = f"edit{uuid.uuid4().hex[:6]}"
    laptop, phone = Device(tmp_path / "laptop"), Device(tmp_path / "phone")
    online(laptop, module_backend.url, "signup", username=user)
    online(phone, module_backend.url, "login", username=user)
    board = laptop.create_board("Launch")
    task = laptop.add_task(board, "Draft", notes="", due="2026-01-10")
    online(laptop, module_backend.url, "sync")
    online(phone, module_backend.url, "sync")

    editor = TaskViewModel(laptop, task)  # the laptop's editor is open ...
    editor.edit("notes", "Two paragraphs")  # ... and the user types in Notes
    phone.set_task(task, title="Final draft", due="2026-02-20")  # meanwhile, elsewhere
    online(phone, module_backend.url, "sync")
    online(laptop, module_backend.url, "sync")
    editor.refresh()  # what the app does after a sync
    assert (editor.form["title"], editor.form["due"]) == ("Final draft", "2026-02-20")
    assert editor.conflicts == {}
    assert editor.save()
    online(laptop, module_backend.url, "sync")
    online(phone, module_backend.url, "sync")
    on_phone = phone.entity("task", task)
    assert on_phone is not None
    assert {k: on_phone["values"][k] for k in ("title", "due", "notes")} == {
        "title": "Final draft",
        "due": "2026-02-20",
        "notes": "Two paragraphs",
    }


@pytest.mark.integration
def test_faults_27_a_field_edited_on_both_devices_is_marked_with_the_other_value(
    tmp_path: Path, module_backend: BackendProcess
) -> None:
    user = f"both{uuid.uuid4().hex[:6]}"
    laptop, phone = Device(tmp_path / "laptop"), Device(tmp_path / "phone")
    online(laptop, module_backend.url, "signup", username=user)
    online(phone, module_backend.url, "login", username=user)
    board = laptop.create_board("Launch")
    task = laptop.add_task(board, "Draft")
    online(laptop, module_backend.url, "sync")
    online(phone, module_backend.url, "sync")

    editor = TaskViewModel(laptop, task)
    editor.edit("title", "Laptop's title")
    phone.set_task(task, title="Phone's title", priority=3)
    online(phone, module_backend.url, "sync")
    online(laptop, module_backend.url, "sync")
    editor.refresh()
    assert editor.conflicts == {"title": "Phone's title"}
    assert editor.hint("title") == "Changed on another device: Phone's title"
    assert (editor.form["title"], editor.form["priority"]) == ("Laptop's title", "3")
