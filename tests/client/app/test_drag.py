"""Dragging a card, without a window: which column and index a point falls at, where the
marker goes, and what a drop does."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from client.app.viewmodels import BoardViewModel
from client.app.viewmodels.board import ColumnArea, DropTarget, drop_line, drop_target
from client.device import Device

# three columns side by side, 300 wide, 600 high; y grows upwards (Kivy's window)
TODO = ColumnArea(
    "todo",
    (0, 0, 300, 600),
    (
        ("a", (10, 500, 280, 60)),  # middle at 530
        ("b", (10, 430, 280, 60)),  # middle at 460
        ("c", (10, 360, 280, 60)),  # middle at 390
    ),
)
DOING = ColumnArea("doing", (310, 0, 300, 600), (("d", (320, 500, 280, 60)),))
DONE = ColumnArea("done", (620, 0, 300, 600))
BOARD = (TODO, DOING, DONE)


@pytest.mark.parametrize(
    ("x", "y", "expected"),
    [
        (150, 590, DropTarget("todo", 0)),  # above the first card
        (150, 540, DropTarget("todo", 0)),  # on the first card's upper half
        (150, 520, DropTarget("todo", 1)),  # on its lower half: after it
        (150, 495, DropTarget("todo", 1)),  # in the gap between the first and second
        (150, 400, DropTarget("todo", 2)),  # on the third's upper half
        (150, 380, DropTarget("todo", 3)),  # on its lower half
        (150, 10, DropTarget("todo", 3)),  # below every card: the end
        (460, 560, DropTarget("doing", 0)),
        (460, 100, DropTarget("doing", 1)),
        (700, 300, DropTarget("done", 0)),  # an empty column: its only place
        (700, 590, DropTarget("done", 0)),
    ],
)
def test_a_point_falls_at_a_column_and_the_index_after_the_cards_above_it(
    x: float, y: float, expected: DropTarget
) -> None:
    assert drop_target(BOARD, x, y) == expected


@pytest.mark.parametrize(
    ("x", "y"), [(305, 300), (930, 300), (150, 600), (150, -1), (-5, 300), (1000, 1000)]
)
def test_a_point_outside_every_column_is_no_target(x: float, y: float) -> None:
    assert drop_target(BOARD, x, y) is None


def test_the_card_dragged_does_not_count_in_its_own_column() -> None:
    # "a" dragged below "b": index 1 among b, c
    assert drop_target(BOARD, 150, 440, dragging="a") == DropTarget("todo", 1)
    assert drop_target(BOARD, 150, 10, dragging="a") == DropTarget("todo", 2)
    # "b" dragged over itself: where it was
    assert drop_target(BOARD, 150, 470, dragging="b") == DropTarget("todo", 1)
    assert drop_target(BOARD, 460, 100, dragging="a") == DropTarget("doing", 1)


def test_cards_scrolled_out_of_sight_still_count() -> None:
    scrolled = ColumnArea(
        "todo", (0, 0, 300, 200), (("a", (10, 300, 280, 60)), ("b", (10, 120, 280, 60)))
    )
    assert drop_target([scrolled], 150, 190) == DropTarget("todo", 1)


def test_the_marker_sits_between_the_cards_either_side_of_the_drop() -> None:
    assert drop_line(TODO, 0, gap=10) == 565  # above the first
    assert drop_line(TODO, 1, gap=10) == 495  # between the first and the second
    assert drop_line(TODO, 3, gap=10) == 355  # below the last
    assert drop_line(TODO, 99, gap=10) == 355
    assert drop_line(TODO, 1, dragging="b", gap=10) == 460  # between a and c
    assert drop_line(DONE, 0) == 600  # empty: the column's top ...
    assert drop_line(DONE, 0, empty=560) == 560  # ... or where its cards would start
    high = ColumnArea("todo", (0, 0, 300, 200), (("a", (10, 195, 280, 60)),))
    assert drop_line(high, 0, gap=10) == 200  # always within the column


@pytest.fixture
def model(tmp_path: Path) -> BoardViewModel:
    device = Device(tmp_path / "profile")
    board = device.create_board("Launch")
    return BoardViewModel(device, board, today=lambda: date(2025, 3, 14))


def titles(model: BoardViewModel, status: str) -> list[str]:
    return [card["title"] for card in model.columns[status]]


def test_a_drop_moves_the_card_to_the_column_and_index(model: BoardViewModel) -> None:
    first, second, third = (model.quick_add(name) for name in ("one", "two", "three"))
    assert first and second and third
    assert model.drop(third, DropTarget("doing", 0))
    assert (titles(model, "todo"), titles(model, "doing")) == (["one", "two"], ["three"])
    assert model.drop(first, DropTarget("doing", 0))
    assert titles(model, "doing") == ["one", "three"]
    assert model.drop(second, DropTarget("doing", 1))
    assert titles(model, "doing") == ["one", "two", "three"]
    assert model.drop(first, DropTarget("doing", 2))  # within the column, to its end
    assert titles(model, "doing") == ["two", "three", "one"]


def test_a_drop_where_the_card_was_records_nothing(model: BoardViewModel) -> None:
    first, second = (model.quick_add(name) for name in ("one", "two"))
    assert first and second
    waiting = model.device.pending_count()
    calls: list[str] = []
    model.subscribe(lambda: calls.append("changed"))
    assert model.drop(second, DropTarget("todo", 1))
    assert titles(model, "todo") == ["one", "two"]
    assert calls == []
    assert model.device.pending_count() == waiting
    assert model.drop(second, DropTarget("todo", 0))
    assert titles(model, "todo") == ["two", "one"]
    assert model.device.pending_count() == waiting + 1
