"""The app's look and layouts, end to end (issue 16): the real app on a virtual display at
phone width (400x800) and desktop width (1280x800), one start each, driven as a user would.

At each width it checks the widget tree (a single column under tabs with counts on a
phone, three side by side on a desktop), then walks every screen, in light and then in dark
(the switch in the status bar): the board, the task editor with its date picker and its
assignee picker open, the boards, the account, the sign-in. On each: every shown touch
target at least 48 dp and none with its text cut short, no stock Kivy background image
anywhere, and the screenshot's mean luminance in dark well below the same screen's in
light. The scheme chosen is kept in the profile's ``app.json``. Then, as a user would, it
sets a task's due date with the date picker (the next month, the 15th) and its assignee
with the member picker, saves, and finds both on the card and in the store.

``OUTPOST_WRITE_SCREENSHOTS=1`` also writes the pictures the README shows to
``docs/screenshots/``.
"""

from __future__ import annotations

import calendar
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from client.device import Device
from client.store.notices import NoticeKind, add_notice
from client.store.settings import Setting, write_setting
from tests.client.app.test_app_e2e import ARTIFACTS, REPOSITORY, STARTUP_S, AppProcess, titles
from tests.support.screenshots import Expected, assert_screenshot, png_pixels
from tests.support.xvfb import Xvfb, running_xvfb

pytestmark = pytest.mark.integration

STATUSES = ("todo", "doing", "done")
PHONE = (400, 800)
DESKTOP = (1280, 800)
OFFLINE = "http://127.0.0.1:9"
"""The profile's server: nothing answers there (the look needs no server)."""
DOCS = REPOSITORY / "docs" / "screenshots"
DARKER = 0.5
"""The dark scheme's mean luminance is at most half the light one's."""


@pytest.fixture(scope="module")
def display(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Xvfb]:
    with running_xvfb(tmp_path_factory.mktemp("xvfb") / "xvfb.log") as server:
        yield server


def make_profile(folder: Path, window: tuple[int, int]) -> None:
    """A board made offline on the device, as ``outpost client`` makes one (the look needs
    no server; in this process, to spare a client's start per line), opened at ``window``,
    in the light scheme to start with."""
    device = Device(folder)
    try:
        with device.store.write() as conn:
            write_setting(conn, Setting.SERVER, OFFLINE)
        board = device.create_board("Launch")
        device.add_task(board, "Write the announcement", labels=["launch", "web"], priority=3,
                        due="2020-01-02")  # fmt: skip
        device.add_task(board, "Print the flyers", labels=["print"])
        device.add_task(board, "Book the venue", status="doing", labels=["venue"])
        device.add_task(board, "Draft the plan", status="done")
        for member in ("bob", "carol"):  # queued, as sharing offline does
            device.share_board(board, member)
        with device.store.write() as conn:  # a notice, written the way the sync engine does
            why, what = "the board is archived", "Your change (new task) was not saved."
            add_notice(conn, "rejected:look", NoticeKind.REJECTED, board, None, why, what)
    finally:
        device.close()
    settings = {
        "window_width": window[0],
        "window_height": window[1],
        "last_board": board,
        "offline_chosen": True,
        "theme": "light",
    }
    (folder / "app.json").write_text(json.dumps(settings), encoding="utf-8")


@pytest.mark.parametrize(("width", "window"), [("phone", PHONE), ("desktop", DESKTOP)])
def test_the_look_at_phone_and_desktop_width_light_and_dark(
    tmp_path: Path, display: Xvfb, width: str, window: tuple[int, int]
) -> None:
    profile = tmp_path / "profile"
    make_profile(profile, window)
    app = AppProcess(profile, OFFLINE, display, tmp_path)
    try:
        app.start()
        seen = app.wait_until("the board", lambda seen: seen["screen"] == "board", STARTUP_S)
        assert tuple(seen["window"]) == window
        with_notice = check_notice_leaves_the_cards_whole(app)
        app.tap("notice:0/dismiss_button")
        seen = app.wait_until("no notice", lambda seen: "notice:0" not in seen["rows"])
        if width == "phone":
            check_phone_columns(app, seen)
        else:
            assert list(seen["columns"]) == ["todo", "doing", "done"]  # side by side
            assert titles(seen, "todo") == ["Write the announcement", "Print the flyers"]
        assert titles(seen, "todo") == ["Write the announcement", "Print the flyers"]
        assert card_labels(seen, "Write the announcement") == "#launch  #web"

        light = check_look(app, "light")
        regions = light["layout"]["regions"]
        first = rect(regions, "card:Write the announcement")
        assert with_notice[3] - with_notice[1] == first[3] - first[1], (
            "the notice cut the first card short",
            with_notice,
            first,
        )
        shown_columns = [name for name in regions if name.startswith("column:") and "/" not in name]
        tabs = [
            regions[f"tab_{status}"]["text"] for status in STATUSES if f"tab_{status}" in regions
        ]
        if width == "phone":  # one column, the width of the window less its margins
            assert (shown_columns, len(tabs)) == (["column:todo"], 3)
            assert regions["column:todo"]["rect"][2] >= window[0] - 2 * 16
        else:
            assert (shown_columns, tabs) == (["column:todo", "column:doing", "column:done"], [])
        app.tap("label_filter")  # the spinner's options are touch targets too
        opened = check_look(app, "light", shot=False)
        assert opened["targets"] > light["targets"]
        app.tap("option:launch")
        seen = app.wait_until(
            "only the launch label", lambda seen: not titles_anywhere(seen, "Print the flyers")
        )
        app.tap("clear_filter_button")

        # every other screen holds to the same, in light, then in dark
        lights = {"board": light, **visit_every_screen(app, "light")}
        app.tap("theme_button")
        dark = check_look(app, "dark")
        darks = {"board": dark, **visit_every_screen(app, "dark")}
        for screen, shot in lights.items():
            darker = darks[screen]["luminance"]
            assert darker < DARKER * shot["luminance"], (screen, shot, darks[screen])
        if os.environ.get("OUTPOST_WRITE_SCREENSHOTS") == "1":
            DOCS.mkdir(parents=True, exist_ok=True)
            for scheme, shot in (("light", light), ("dark", dark)):
                shutil.copyfile(shot["path"], DOCS / f"board-{width}-{scheme}.png")

        due = set_due_date_and_assignee_with_the_pickers(app, width, window)

        assert app.quit() == 0
        kept = json.loads((profile / "app.json").read_text(encoding="utf-8"))
        assert (kept["theme"], kept["window_width"]) == ("dark", window[0])
        device = Device(profile)  # what the app stored, read after it closed
        try:
            (board,) = device.boards()
            (flyers,) = [t for t in device.tasks(board["id"]) if t["title"] == "Print the flyers"]
        finally:
            device.close()
        assert (flyers["due"], flyers["assignee"]) == (due, "bob")
    finally:
        app.kill()


def visit_every_screen(app: AppProcess, scheme: str) -> dict[str, dict[str, Any]]:
    """From the board: the task editor, its date picker and its assignee picker open, the
    boards, the account, the sign-in; each audited and its luminance taken; back on the
    board at the end."""
    seen: dict[str, dict[str, Any]] = {}
    app.tap("card:Print the flyers", double=True)
    app.wait_until("the task editor", lambda seen: seen["screen"] == "task")
    seen["task"] = check_look(app, scheme, name="task")
    app.tap("due_picker")
    app.wait_until("the date picker", lambda seen: "date_title" in seen["texts"])
    seen["date picker"] = check_look(app, scheme, name="date-picker")
    app.key("escape")  # closes the picker, not the editor
    shown = app.wait_until("no picker", lambda seen: "date_title" not in seen["texts"])
    assert shown["screen"] == "task"
    app.tap("assignee_picker")
    shown = app.wait_until("the member picker", lambda seen: "option:Nobody" in seen["rows"])
    assert [row for row in shown["rows"] if row.startswith("option:")] == [
        "option:Nobody",
        "option:bob",
        "option:carol",
    ], "Nobody, then the board's members"
    seen["assignee picker"] = check_look(app, scheme, name="assignee-picker")
    app.tap("cancel_pick_button")
    app.wait_until("no picker", lambda seen: "option:Nobody" not in seen["rows"])
    app.key("escape")
    app.wait_until("the board again", lambda seen: seen["screen"] == "board")
    app.tap("back_button")
    app.wait_until("the boards", lambda seen: seen["screen"] == "boards")
    seen["boards"] = check_look(app, scheme, name="boards")
    app.tap("account_button")
    app.wait_until("the account", lambda seen: seen["screen"] == "account")
    seen["account"] = check_look(app, scheme, name="account")
    app.tap("account_back_button")
    app.wait_until("the boards", lambda seen: seen["screen"] == "boards")
    app.tap("sign_in_button")  # the status bar's, offline
    app.wait_until("the sign-in", lambda seen: seen["screen"] == "signin")
    seen["sign-in"] = check_look(app, scheme, name="signin")
    app.tap("offline_button")
    app.wait_until("the boards", lambda seen: seen["screen"] == "boards")
    app.tap("board:Launch/open_button")
    app.wait_until("the board again", lambda seen: seen["screen"] == "board")
    return seen


def set_due_date_and_assignee_with_the_pickers(
    app: AppProcess, width: str, window: tuple[int, int]
) -> str:
    """A task without a due date: the date picker opens on this month; next month, the
    15th; the member picker, bob; saved, the card shows both. The date picked."""
    app.tap("card:Print the flyers", double=True)
    seen = app.wait_until("the task editor", lambda seen: seen["screen"] == "task")
    assert (seen["texts"]["due_picker"], seen["texts"]["assignee_picker"]) == (
        "No due date",
        "Nobody",
    )
    app.tap("due_picker")
    seen = app.wait_until("the date picker", lambda seen: "date_title" in seen["texts"])
    year, month = month_of(seen["texts"]["date_title"])
    year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    app.tap("next_month_button")
    seen = app.wait_until(
        "the next month", lambda seen: month_of(seen["texts"]["date_title"]) == (year, month)
    )
    day = f"{year:04d}-{month:02d}-15"
    assert_screenshot(
        app.screenshot(f"look-{width}-date-picker.png"),
        Expected(
            "task",
            {
                "date_title": seen["texts"]["date_title"],
                "previous_month_button": None,
                "next_month_button": None,
                f"day:{day}": "15",
                "clear_date_button": "No due date",
                "cancel_pick_button": "Cancel",
            },
            apart=(("previous_month_button", "date_title", "next_month_button"),),
            inside={f"day:{day}": "day_grid", "day_grid": "sheet_body"},
            above=(("date_title", f"day:{day}"), (f"day:{day}", "clear_date_button")),
        ),
        window,
    )
    app.tap(f"day:{day}")
    seen = app.wait_until("the date picked", lambda seen: "date_title" not in seen["texts"])
    assert seen["texts"]["due_picker"] == day
    app.tap("assignee_picker")
    app.wait_until("the member picker", lambda seen: "option:bob" in seen["rows"])
    app.tap("option:bob")
    seen = app.wait_until("bob picked", lambda seen: "option:bob" not in seen["rows"])
    assert seen["texts"]["assignee_picker"] == "bob"
    assert_screenshot(
        app.screenshot(f"look-{width}-task-picked.png"),
        Expected(
            "task",
            {"title_input": "Print the flyers", "due_picker": day, "assignee_picker": "bob"},
            apart=(("title_input", "due_picker"), ("due_picker", "assignee_picker")),
            inside={"due_picker": "task_screen", "assignee_picker": "task_screen"},
        ),
        window,
    )
    app.tap("save_button")
    app.key("escape")
    seen = app.wait_until("the board", lambda seen: seen["screen"] == "board")
    if width == "phone":
        assert list(seen["columns"]) == ["todo"]
    assert card_meta(seen, "Print the flyers").startswith(f"@bob · due {day}"), seen
    return day


def month_of(title: str) -> tuple[int, int]:
    """``March 2025`` -> (2025, 3)."""
    name, year = title.split()
    return int(year), list(calendar.month_name).index(name)


def check_notice_leaves_the_cards_whole(app: AppProcess) -> tuple[int, int, int, int]:
    """With a notice showing, the board's cards are inside their column and above the
    notice (a long column scrolls); the first card's rectangle, to compare with the same
    card once the notice is gone (a rectangle is clipped to the scroll view it is in)."""
    shot = app.screenshot(f"look-{app.query()['window'][0]}-notice.png")
    regions = shot["layout"]["regions"]
    assert "notice:0" in regions, "the notice is not shown"
    column = rect(regions, "column:todo")
    notices = rect(regions, "notices")
    for name in ("card:Write the announcement", "card:Print the flyers"):
        card = rect(regions, name)
        assert column[0] <= card[0] and card[2] <= column[2], (name, card, column)
        assert column[1] <= card[1] and card[3] <= column[3], f"{name} is clipped: {card} {column}"
        assert card[3] <= notices[1], f"{name} runs under the notice: {card} {notices}"
    return rect(regions, "card:Write the announcement")


def rect(regions: dict[str, Any], name: str) -> tuple[int, int, int, int]:
    """left, top, right, bottom in window pixels (from the top left)."""
    assert name in regions, f"{name} is not shown: {sorted(regions)}"
    left, top, width, height = regions[name]["rect"]
    return left, top, left + width, top + height


def check_phone_columns(app: AppProcess, seen: dict[str, Any]) -> None:
    """One column at a time, under tabs with the counts; a tab or a swipe changes it."""
    assert list(seen["columns"]) == ["todo"], seen["columns"]
    texts = seen["texts"]
    tabs = (texts["tab_todo"], texts["tab_doing"], texts["tab_done"])
    assert tabs[0] == seen["columns"]["todo"]["title"]  # a tab says what its column's head says
    assert all(
        re.fullmatch(rf"{name}\s+·\s+{count}", tab)
        for name, count, tab in zip(("To do", "Doing", "Done"), (2, 1, 1), tabs, strict=True)
    ), tabs
    app.tap("tab_doing")
    seen = app.wait_until("Doing alone", lambda seen: list(seen["columns"]) == ["doing"])
    assert titles(seen, "doing") == ["Book the venue"]
    # a finger swipes right to left below Doing's card: the next column
    app.drag("column:doing", to="column:doing", at=[0.05, 0.45], pointer="finger", hold=0)
    seen = app.wait_until("Done after a swipe", lambda seen: list(seen["columns"]) == ["done"])
    assert titles(seen, "done") == ["Draft the plan"]
    app.tap("tab_todo")
    app.wait_until("To do again", lambda seen: list(seen["columns"]) == ["todo"])


def check_look(
    app: AppProcess, scheme: str, *, shot: bool = True, name: str = "board"
) -> dict[str, Any]:
    """The audit of the widget tree, and (``shot``) the window's mean luminance."""
    audit: dict[str, Any] = app.command("audit")
    assert audit["scheme"] == scheme
    assert audit["targets"] > 5, audit  # the walk found the buttons and fields
    assert audit["small"] == [], f"{name}: touch targets under 48 dp: {audit['small']}"
    assert audit["stock"] == [], f"{name}: stock Kivy backgrounds left: {audit['stock']}"
    assert audit["cut"] == [], f"{name}: texts cut short: {audit['cut']}"
    if shot:
        path = ARTIFACTS / f"look-{app.query()['window'][0]}-{name}-{scheme}.png"
        taken = app.screenshot(path.name)
        audit["path"] = path
        audit["layout"] = taken["layout"]
        audit["luminance"] = mean_luminance(path)
    return audit


def mean_luminance(path: Path) -> float:
    """Rec. 709 relative luminance (0 to 1, of the 8-bit values), every 4th pixel."""
    width, _height, rows = png_pixels(path)
    step = len(rows[0]) // width
    total, count = 0.0, 0
    for row in rows[::4]:
        for x in range(0, len(row), step * 4):
            red, green, blue = row[x], row[x + 1], row[x + 2]
            total += 0.2126 * red + 0.7152 * green + 0.0722 * blue
            count += 1
    return total / count / 255


def titles_anywhere(seen: dict[str, Any], title: str) -> bool:
    return any(title in titles(seen, status) for status in seen["columns"])


def card_meta(seen: dict[str, Any], title: str) -> str:
    for column in seen["columns"].values():
        for card in column["cards"]:
            if card["title"] == title:
                return str(card["meta"])
    raise AssertionError(f"no card {title!r}")


def card_labels(seen: dict[str, Any], title: str) -> str:
    for column in seen["columns"].values():
        for card in column["cards"]:
            if card["title"] == title:
                return str(card["labels"])
    raise AssertionError(f"no card {title!r}")
