"""A long board in the real app (issue 16): its columns recycle their cards' widgets.

The app on a virtual display opens a board of ``CARDS`` cards in To do, more than a column
shows at once, at desktop and at phone width. Only the cards in sight exist as widgets; a
user scrolls to the end and back, and every card in sight shows its own labels, notes and
comment count (a recycled card keeps nothing of the one it showed before); a double tap on
a card reached by scrolling opens that card; a card at the end of the column is dragged to
Doing; a filter shows what it keeps from the first (its columns scroll to their top), and
clearing it shows them all again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from client.app.settings import AppSettings
from client.device import Device
from tests.client.app.test_app_e2e import STARTUP_S, AppProcess, client, titles
from tests.client.app.test_app_look import DESKTOP, OFFLINE, PHONE
from tests.support.xvfb import Xvfb, running_xvfb

pytestmark = pytest.mark.integration

CARDS = 120
FIRST = 3
"""Cards a column shows at either width once laid out."""
SHOWN_AT_MOST = 30
"""More card widgets than this in one column would mean the column does not recycle."""


@pytest.fixture(scope="module")
def display(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Xvfb]:
    with running_xvfb(tmp_path_factory.mktemp("xvfb") / "xvfb.log") as server:
        yield server


def title(i: int) -> str:
    return f"Card {i:03d}" + (": a longer title that takes a second line" if i % 5 == 0 else "")


def labels(i: int) -> list[str]:
    return [[], ["alpha"], ["beta", "gamma"]][i % 3]


def make_profile(folder: Path, window: tuple[int, int]) -> dict[str, int]:
    """A board of ``CARDS`` cards in To do (labels, notes and comments varying from one card
    to the next) and one in Doing; the number of each card by its title."""
    board = client(folder, "--server", OFFLINE, "board", "create", "Long")  # as a user's
    device = Device(folder)
    try:
        numbers = {}
        for i in range(CARDS):
            fields: dict[str, Any] = {"labels": labels(i)}
            if i % 6 == 0:
                fields["notes"] = "See the plan."
            task = device.add_task(board, title(i), **fields)
            if i % 4 == 0:
                device.add_comment(task, "Looks right.")
            numbers[title(i)] = i
        device.add_task(board, "Already doing", status="doing")
    finally:
        device.close()
    settings = AppSettings(window[0], window[1], last_board=board, offline_chosen=True)
    settings.theme = "light"
    settings.save(folder)
    return numbers


def check_cards(seen: dict[str, Any], numbers: dict[str, int]) -> list[str]:
    """Every card in sight in To do shows its own chips, notes and comments; its titles."""
    cards = seen["columns"]["todo"]["cards"]
    assert 0 < len(cards) <= SHOWN_AT_MOST, f"{len(cards)} card widgets in To do"
    for card in cards:
        i = numbers[card["title"]]
        assert card["labels"] == "  ".join(f"#{label}" for label in labels(i)), card
        assert ("notes" in card["meta"]) == (i % 6 == 0), card
        assert ("1 comment" in card["meta"]) == (i % 4 == 0), card
    return [card["title"] for card in cards]


@pytest.mark.parametrize(("width", "window"), [("phone", PHONE), ("desktop", DESKTOP)])
def test_a_long_column_recycles_its_cards_and_each_shows_its_own(
    tmp_path: Path, display: Xvfb, width: str, window: tuple[int, int]
) -> None:
    profile = tmp_path / "profile"
    numbers = make_profile(profile, window)
    app = AppProcess(profile, OFFLINE, display, tmp_path)
    try:
        app.start()
        first = [title(i) for i in range(FIRST)]  # in sight at either width, laid out
        seen = app.wait_until(
            "the long board", lambda seen: titles(seen, "todo")[:FIRST] == first, STARTUP_S
        )
        assert seen["columns"]["todo"]["title"].endswith(f"· {CARDS}")  # all counted
        top = check_cards(seen, numbers)
        assert top == [title(i) for i in range(len(top))]  # the first cards, in order

        # to the end: the last cards, in recycled widgets that show them as they are
        app.command("scroll", target="column:todo/scroll", to=0)
        last = title(CARDS - 1)
        seen = app.wait_until("the end of To do", lambda seen: last in titles(seen, "todo"))
        end = check_cards(seen, numbers)
        assert end[-1] == last and end == [title(numbers[t]) for t in end]
        assert not set(end) & set(top)
        app.command("scroll", target="column:todo/scroll", to=1)
        seen = app.wait_until("the top again", lambda seen: title(0) in titles(seen, "todo"))
        again = check_cards(seen, numbers)
        assert again == [title(i) for i in range(len(again))]

        # a card reached by scrolling opens with a double tap
        app.command("scroll", target="column:todo/scroll", to=0)
        app.wait_until("the end again", lambda seen: last in titles(seen, "todo"))
        app.tap(f"card:{title(CARDS - 2)}", double=True)
        seen = app.wait_until("its editor", lambda seen: seen["screen"] == "task")
        assert seen["texts"]["title_input"] == title(CARDS - 2)
        app.key("escape")
        app.wait_until("the board again", lambda seen: seen["screen"] == "board")

        if width == "desktop":  # the last card, dragged to the top of Doing
            app.command("scroll", target="column:todo/scroll", to=0)
            app.wait_until("the end again", lambda seen: last in titles(seen, "todo"))
            app.drag(f"card:{last}", to="card:Already doing", at=[0.5, 0.9])
            seen = app.wait_until(
                "the card in Doing", lambda seen: titles(seen, "doing")[:1] == [last]
            )
            assert titles(seen, "doing") == [last, "Already doing"]
            assert seen["columns"]["todo"]["title"].endswith(f"· {CARDS - 1}")

        # a filter sets the columns' cards again: what it keeps, each as it is
        app.type("filter_input", "Card 11")
        kept = [title(i) for i in range(110, CARDS) if title(i) != last or width == "phone"]
        seen = app.wait_until(
            "the filtered cards, from the first",
            lambda seen: (
                seen["columns"]["todo"]["title"].endswith(f"· {len(kept)}")
                and titles(seen, "todo")[:1] == kept[:1]
            ),
        )
        shown = check_cards(seen, numbers)
        assert shown == kept[: len(shown)]
        app.command("scroll", target="column:todo/scroll", to=0)
        seen = app.wait_until("the last one kept", lambda seen: kept[-1] in titles(seen, "todo"))
        shown = check_cards(seen, numbers)
        assert shown == kept[-len(shown) :]
        app.tap("clear_filter_button")
        seen = app.wait_until("all again", lambda seen: title(0) in titles(seen, "todo"))
        assert check_cards(seen, numbers)[0] == title(0)
    finally:
        app.kill()
