"""The pickers: named priorities, the date picker's month grid, the board's members as
assignees; each clears, and the stored values stay what the catalog says."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from client.app.viewmodels import TaskViewModel
from client.app.viewmodels.pickers import (
    PRIORITY_NAMES,
    DatePicker,
    priority_choices,
    priority_name,
)
from client.device import Device
from client.store.settings import Setting, write_setting

TODAY = date(2025, 3, 14)


@pytest.fixture
def device(tmp_path: Path) -> Device:
    found = Device(tmp_path / "profile")
    with found.store.write() as conn:
        write_setting(conn, Setting.USERNAME, "alice")
    return found


@pytest.fixture
def board(device: Device) -> str:
    board = device.create_board("Launch")
    device.share_board(board, "bob")
    device.share_board(board, "carol")
    return board


def test_priorities_are_named_none_low_medium_high_urgent() -> None:
    assert PRIORITY_NAMES == ("None", "Low", "Medium", "High", "Urgent")
    assert [priority_name(value) for value in range(5)] == list(PRIORITY_NAMES)
    assert priority_name(7) == "7", "a value this app does not know shows as its number"
    choices = priority_choices(2)
    assert [(c.value, c.name, c.selected) for c in choices][1:3] == [
        (1, "Low", False),
        (2, "Medium", True),
    ]


def test_the_editor_picks_a_priority_by_name_and_stores_its_number(
    device: Device, board: str
) -> None:
    task = device.add_task(board, "Ship")
    editor = TaskViewModel(device, task)
    assert editor.priority_name == "None"
    editor.pick_priority(4)
    assert (editor.form["priority"], editor.priority_name) == ("4", "Urgent")
    assert [c.name for c in editor.priority_choices if c.selected] == ["Urgent"]
    assert editor.save()
    found = device.entity("task", task)
    assert found is not None and found["values"]["priority"] == 4
    assert editor.save(priority="low"), "a name typed in is read too"
    found = device.entity("task", task)
    assert found is not None and found["values"]["priority"] == 1


def test_the_month_grid_starts_on_monday_with_the_neighbouring_days_greyed() -> None:
    picker = DatePicker(None, today=lambda: TODAY)
    assert (picker.title, picker.value, picker.weekdays[0]) == ("March 2025", "", "Mon")
    weeks = picker.weeks
    assert len(weeks) == 6 and all(len(week) == 7 for week in weeks)
    first = weeks[0]
    assert [(c.date, c.in_month) for c in first[4:7]] == [
        ("2025-02-28", False),
        ("2025-03-01", True),
        ("2025-03-02", True),
    ]
    [today] = [c for week in weeks for c in week if c.today]
    assert today.date == "2025-03-14" and today.in_month
    assert not any(c.selected for week in weeks for c in week)


def test_the_grid_pages_through_months_and_years() -> None:
    picker = DatePicker("2025-12-31", today=lambda: TODAY)
    assert picker.title == "December 2025"
    picker.next_month()
    assert picker.title == "January 2026"
    picker.previous_month()
    picker.previous_month()
    assert picker.title == "November 2025"
    picker.show_today()
    assert picker.title == "March 2025"
    assert picker.value == "2025-12-31", "paging does not change the date picked"


def test_picking_a_day_selects_it_and_clearing_leaves_no_date() -> None:
    picker = DatePicker(None, today=lambda: TODAY)
    assert picker.pick("2025-04-02")
    assert (picker.value, picker.title) == ("2025-04-02", "April 2025")
    assert [c.date for week in picker.weeks for c in week if c.selected] == ["2025-04-02"]
    assert picker.clear() and picker.value == ""


@pytest.mark.parametrize(
    ("day", "error"),
    [
        ("2025-02-30", "2025-02-30 is not a date on the calendar"),
        ("14/03/2025", "Write the due date as YYYY-MM-DD, for example 2025-03-14"),
    ],
)
def test_a_day_not_on_the_calendar_is_refused_in_words(day: str, error: str) -> None:
    picker = DatePicker("2025-03-01", today=lambda: TODAY)
    assert not picker.pick(day)
    assert (picker.error, picker.value) == (error, "2025-03-01")
    broken = DatePicker(day, today=lambda: TODAY)
    assert (broken.error, broken.value, broken.title) == (error, "", "March 2025")


def test_the_editor_opens_the_picker_on_its_due_date_and_takes_the_pick(
    device: Device, board: str
) -> None:
    task = device.add_task(board, "Ship", due="2025-05-20")
    editor = TaskViewModel(device, task)
    picker = editor.date_picker(today=lambda: TODAY)
    assert (picker.title, picker.value) == ("May 2025", "2025-05-20")
    picker.pick("2025-05-27")
    editor.pick_due(picker.value)
    assert editor.save()
    found = device.entity("task", task)
    assert found is not None and found["values"]["due"] == "2025-05-27"
    editor.clear_due()
    assert editor.save()
    found = device.entity("task", task)
    assert found is not None and found["values"]["due"] is None


def test_the_assignee_picker_offers_nobody_and_the_boards_members(
    device: Device, board: str
) -> None:
    task = device.add_task(board, "Ship")
    editor = TaskViewModel(device, task)
    choices = editor.assignee_choices
    assert [(c.username, c.label, c.selected) for c in choices] == [
        ("", "Nobody", True),
        ("alice", "alice (you)", False),
        ("bob", "bob", False),
        ("carol", "carol", False),
    ]
    editor.pick_assignee("bob")
    assert [c.username for c in editor.assignee_choices if c.selected] == ["bob"]
    assert editor.save()
    found = device.entity("task", task)
    assert found is not None and found["values"]["assignee"] == "bob"
    editor.clear_assignee()
    assert editor.save()
    found = device.entity("task", task)
    assert found is not None and found["values"]["assignee"] is None


def test_an_assignee_no_longer_on_the_board_is_still_shown_as_such(
    device: Device, board: str
) -> None:
    task = device.add_task(board, "Ship", assignee="carol")
    device.unshare_board(board, "carol")
    editor = TaskViewModel(device, task)
    assert [(c.username, c.label, c.selected) for c in editor.assignee_choices][-1] == (
        "carol",
        "carol (not on the board)",
        True,
    )
    assert "carol" not in [c.username for c in editor.assignee_choices[:-1]]


def test_a_priority_changed_elsewhere_is_named_in_the_hint(device: Device, board: str) -> None:
    task = device.add_task(board, "Ship", priority=2)
    editor = TaskViewModel(device, task)
    editor.pick_priority(4)
    device.set_task(task, priority=1)  # another device's edit, as a sync folds it in
    editor.refresh()
    assert editor.hint("priority") == "Changed on another device: Low"


def test_the_pickers_of_column_and_the_fields_text_read_as_the_editor_shows_them(
    device: Device, board: str
) -> None:
    task = device.add_task(board, "Ship")
    editor = TaskViewModel(device, task)
    assert (editor.status_name, editor.due_text, editor.assignee_text) == (
        "To do",
        "No due date",
        "Nobody",
    )
    assert [(c.value, c.name, c.selected) for c in editor.status_choices] == [
        ("todo", "To do", True),
        ("doing", "Doing", False),
        ("done", "Done", False),
    ]
    editor.pick_status("doing")
    editor.pick_due("2025-03-20")
    editor.pick_assignee("alice")
    assert (editor.status_name, editor.due_text, editor.assignee_text) == (
        "Doing",
        "2025-03-20",
        "alice (you)",
    )
    with pytest.raises(ValueError, match="status must be one of"):
        editor.pick_status("later")
    assert editor.save()
    found = device.entity("task", task)
    assert found is not None
    assert (found["values"]["status"], found["values"]["due"], found["values"]["assignee"]) == (
        "doing",
        "2025-03-20",
        "alice",
    )


def test_a_board_made_before_the_profile_had_an_account_offers_no_placeholder_owner(
    tmp_path: Path,
) -> None:
    """Offline before any sign-in, the board's owner is "(you)": no username a task can be
    assigned to (the save would refuse it), so the picker leaves it out."""
    device = Device(tmp_path / "offline")
    board = device.create_board("Launch")
    device.share_board(board, "bob")
    editor = TaskViewModel(device, device.add_task(board, "Ship"))
    assert [(c.username, c.label) for c in editor.assignee_choices] == [
        ("", "Nobody"),
        ("bob", "bob"),
    ]
