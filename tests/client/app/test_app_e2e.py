"""The real app, end to end: ``outpost app`` in its own process on a virtual display, a
real backend, and a second device over HTTP.

The test runs the app through ``tests/support/app_under_test.py`` (the shipped app plus
the test control, ``tests/support/app_control.py``), drives it as a user would through the
control's socket (Kivy touches and key presses), and reads what the window
shows from its widget tree: the cards of each column, the status bar, the notices. It
saves screenshots under ``tests/artifacts/`` and checks each against the layout that screen
must show: the layout the app answers with the picture, and the picture's pixels against it
(``tests/support/screenshots.py``, issue 13).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from client.app.viewmodels.board import EMPTY_BOARD, EMPTY_COLUMN
from tests.support.backend import BackendProcess
from tests.support.device import PASSWORD
from tests.support.device import Device as Phone
from tests.support.screenshots import Expected, assert_screenshot
from tests.support.xvfb import Xvfb, running_xvfb

pytestmark = pytest.mark.integration

REPOSITORY = Path(__file__).resolve().parents[3]
ARTIFACTS = REPOSITORY / "tests" / "artifacts"
WINDOW = (1100, 720)  # the app's default window size (client.app.settings)
STARTUP_S = 90
SYNC_S = 60
Query = dict[str, Any]


# the app in a child process


class AppProcess:
    """The app (``outpost app`` with the test control added) on a display, driven through
    the control's socket."""

    def __init__(self, profile: Path, server: str, display: Xvfb, logs: Path) -> None:
        self.profile, self.server, self.display, self.logs = profile, server, display, logs
        self._folder = Path(tempfile.mkdtemp(prefix="outpost-app-"))  # short: a socket path
        self.socket = self._folder / "control.sock"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = logs / "app.log"

    def start(self) -> AppProcess:
        self.socket.unlink(missing_ok=True)
        env = {
            **os.environ,
            **self.display.env,
            "KIVY_HOME": str(self.logs / "kivy"),  # Kivy's config and its log file
            "KIVY_NO_ARGS": "1",
        }
        command = [sys.executable, "-m", "tests.support.app_under_test"]
        command += ["--control", str(self.socket), "--data-dir", str(self.profile)]
        command += ["--server", self.server]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=log, env=env, cwd=REPOSITORY
            )
        deadline = time.monotonic() + STARTUP_S
        while not self._listening():  # the file appears at bind, a moment before listen
            self._check_alive()
            if time.monotonic() > deadline:
                self.fail(f"the app did not start in {STARTUP_S}s")
            time.sleep(0.1)
        return self

    def _listening(self) -> bool:
        if not self.socket.exists():
            return False
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(str(self.socket))
            except ConnectionRefusedError:
                return False
        return True

    def command(self, op: str, *, closing: bool = False, **args: Any) -> Any:
        """Send one command and return its result; ``closing``: the app may end first."""
        self._check_alive()
        with socket.socket(socket.AF_UNIX) as connection:
            connection.settimeout(90)
            connection.connect(str(self.socket))
            stream = connection.makefile("rwb")
            stream.write(json.dumps({"op": op, **args}).encode() + b"\n")
            stream.flush()
            line = stream.readline()
        if not line:
            if closing:
                return None
            self.fail(f"the app closed the control socket during {op}")
        answer = json.loads(line)
        if not answer["ok"]:
            self.fail(f"{op} {args}: {answer['error']}")
        return answer["result"]

    # what a user does

    def tap(self, target: str, *, double: bool = False) -> None:
        self.command("tap", target=target, double=double)

    def drag(self, target: str, **how: Any) -> dict[str, Any]:
        """Press ``target``, move to ``to`` (``at`` within it) or ``to_window``, release;
        what showed just before the release."""
        result: dict[str, Any] = self.command("drag", target=target, **how)
        return result

    def type(self, target: str, text: str, *, enter: bool = False) -> None:
        self.command("type", target=target, text=text, enter=enter)

    def key(self, key: str, *modifiers: str) -> None:
        self.command("key", key=key, modifiers=list(modifiers))

    # what a user sees

    def query(self) -> Query:
        result: Query = self.command("query")
        return result

    def wait_until(
        self, what: str, check: Callable[[Query], object], timeout: float = SYNC_S
    ) -> Query:
        """Query until ``check`` holds; fail with what the app showed last."""
        began = time.monotonic()
        deadline = began + timeout
        while True:
            seen = self.query()
            if check(seen):
                print(f"app showed {what} after {time.monotonic() - began:.1f}s")  # if it fails
                return seen
            if time.monotonic() > deadline:
                self.fail(f"the app never showed {what} in {timeout}s; it showed:\n{show(seen)}")
            time.sleep(0.2)

    def screenshot(self, name: str) -> dict[str, Any]:
        """The window's picture, saved under tests/artifacts/, and the layout of that very
        frame (``tests/support/screenshots.py``)."""
        path = ARTIFACTS / name
        path.unlink(missing_ok=True)
        shot: dict[str, Any] = self.command("screenshot", path=str(path))
        return shot

    # its end

    def quit(self, timeout: float = 30) -> int:
        assert self.process is not None
        self.command("key", key="q", modifiers=["ctrl"], closing=True)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.fail(f"the app did not quit within {timeout}s of Ctrl+Q")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        shutil.rmtree(self._folder, ignore_errors=True)

    def _check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            self.fail(f"the app exited with {self.process.returncode}")

    def fail(self, message: str) -> NoReturn:
        tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])
        pytest.fail(f"{message}\n--- app log (last lines) ---\n{tail}")


def show(seen: Query) -> str:
    shown = {k: seen[k] for k in ("screen", "columns", "rows")}
    status = {k: v for k, v in seen["texts"].items() if k.startswith("status_")}
    return json.dumps({**shown, "status": status}, indent=1, ensure_ascii=False)


@pytest.fixture
def display(tmp_path: Path) -> Iterator[Xvfb]:
    with running_xvfb(tmp_path / "xvfb.log") as server:
        yield server


@pytest.fixture
def start_app(tmp_path: Path, display: Xvfb) -> Iterator[Callable[[Path, str], AppProcess]]:
    """Start apps on the display; every one is killed at the end, whatever happened."""
    started: list[AppProcess] = []

    def start(profile: Path, server: str) -> AppProcess:
        app = AppProcess(profile, server, display, tmp_path)
        started.append(app)
        return app.start()

    try:
        yield start
    finally:
        for app in started:
            app.kill()


# reading what the app shows


def titles(seen: Query, status: str) -> list[str]:
    return [card["title"] for card in seen["columns"].get(status, {}).get("cards", [])]


def card(seen: Query, title: str) -> dict[str, Any]:
    for column in seen["columns"].values():
        for found in column["cards"]:
            if found["title"] == title:
                return dict(found)
    raise AssertionError(f"no card {title!r} on the board:\n{show(seen)}")


def status(seen: Query) -> str:
    return str(seen["texts"]["status_text"])


def synced(seen: Query) -> bool:
    texts: dict[str, str] = seen["texts"]
    return texts["status_text"].startswith("Up to date") and (
        texts["status_pending"] == "All changes sent"
    )


# screenshots: what each must show (checked by tests/support/screenshots.py)

COLUMNS = {"todo": "To do", "doing": "Doing", "done": "Done"}


def board_layout(board: str, columns: dict[str, list[str]], **more: str | None) -> Expected:
    """The board screen: its title, the three columns side by side with their counts (an
    empty one says so), each card inside its column in its order, cards apart, empty gaps
    between the columns and left of them; ``more``: further regions and their texts."""
    texts: dict[str, str | None] = {"board_title": board, "status_bar": None}
    inside: dict[str, str] = {}
    above: list[tuple[str, str]] = []  # each column's cards in their order
    for status, cards in columns.items():
        texts[f"column:{status}"] = None
        texts[f"column:{status}/column_title"] = f"{COLUMNS[status]} · {len(cards)}"
        if not cards:
            empty = EMPTY_COLUMN if any(columns.values()) else EMPTY_BOARD
            texts[f"column:{status}/empty"] = empty[status]
        for title in cards:
            texts[f"card:{title}/card_title"] = title
            inside[f"card:{title}"] = f"column:{status}"
        above += [(f"card:{a}", f"card:{b}") for a, b in itertools.pairwise(cards)]
    texts.update(more)
    cards = tuple(inside)
    return Expected(
        "board",
        texts,
        apart=(
            ("back_button", "board_title", "filter_input", "quick_add_input", "column:todo"),
            ("column:todo", "column:doing", "column:done", "status_bar"),
            cards,
        ),
        inside=inside,
        above=tuple(above),
        gaps=(("column:todo", "column:doing"), ("column:doing", "column:done")),
        margins=("back_button", "quick_add_input", "column:todo"),
    )


# the tests


def test_the_app_syncs_both_ways_keeps_offline_edits_and_sends_them_after_restart(
    tmp_path: Path, backend: BackendProcess, start_app: Callable[[Path, str], AppProcess]
) -> None:
    user = f"e2e{uuid.uuid4().hex[:8]}"
    profile = tmp_path / "profile"
    app = start_app(profile, backend.url)

    # sign up in the app, make a board, add a card
    app.wait_until("the sign-in screen", lambda seen: seen["screen"] == "signin", STARTUP_S)
    app.type("username_input", user)
    app.type("password_input", PASSWORD)
    app.tap("sign_up_button")
    app.wait_until("the boards, signed in", lambda seen: seen["screen"] == "boards")
    app.type("new_board_input", "Launch", enter=True)  # a new board opens at once
    seen = app.wait_until("the new board, open", lambda seen: seen["screen"] == "board")
    assert seen["texts"]["board_title"] == "Launch"
    assert seen["columns"]["todo"]["empty"] == EMPTY_BOARD["todo"], "it says what to do"
    app.type("quick_add_input", "Write the announcement", enter=True)
    seen = app.wait_until(
        "the card added, sent", lambda seen: titles(seen, "todo") and synced(seen)
    )
    assert titles(seen, "todo") == ["Write the announcement"]
    assert seen["texts"]["board_title"] == "Launch"
    assert seen["texts"]["status_state"] == "Online"

    # a second device of the same user pulls it, and adds a card the app then shows
    phone = Phone(backend.url, user).login()
    board = wait_for_task(phone, "Write the announcement")["board"]
    assert phone.values("board", board) == {
        "name": "Launch",
        "wip_limit": None,
        "archived": False,
        "owner": user,
    }
    _, created = phone.new_task(
        board, "Book the venue", status="doing", assignee=user, priority=2, labels=["venue"]
    )
    assert phone.push(created)[0]["status"] == "accepted"
    seen = app.wait_until("the second device's card", lambda seen: titles(seen, "doing"))
    assert titles(seen, "doing") == ["Book the venue"]
    assert card(seen, "Book the venue")["meta"] == f"@{user} · Medium priority"
    assert card(seen, "Book the venue")["labels"] == "#venue"
    assert seen["columns"]["doing"]["title"] == "Doing · 1"

    # move cards with keys and buttons
    app.tap("card:Write the announcement")
    app.key("right")
    seen = app.wait_until("the card in Doing", lambda seen: len(titles(seen, "doing")) == 2)
    assert titles(seen, "doing") == ["Book the venue", "Write the announcement"]
    app.key("up")
    seen = app.wait_until(
        "the card moved up", lambda seen: titles(seen, "doing")[0] == "Write the announcement"
    )
    assert card(seen, "Write the announcement")["selected"]
    app.tap("card:Book the venue")
    app.tap("move_left_button")
    seen = app.wait_until("a card back in To do", lambda seen: titles(seen, "todo"))
    assert (titles(seen, "todo"), titles(seen, "doing")) == (
        ["Book the venue"],
        ["Write the announcement"],
    )

    # edit a task: every kind of field, a label, a comment
    app.tap("card:Write the announcement")
    app.key("enter")
    app.wait_until("the task editor", lambda seen: seen["screen"] == "task")
    app.tap("due_picker")  # a keyboard user types the date into the date picker
    app.type("typed_date_input", "2020-01-02", enter=True)
    app.wait_until("the date typed", lambda seen: seen["texts"]["due_picker"] == "2020-01-02")
    app.tap("assignee_picker")  # the board's members: the user owns it
    app.tap(f"option:{user} (you)")
    app.type("notes_input", "Two paragraphs, no more.")
    app.tap("priority_picker")
    app.tap("option:High")
    app.type("new_label_input", "launch", enter=True)
    app.type("comment_input", "Draft is in the shared folder", enter=True)
    app.tap("save_button")
    seen = app.wait_until(
        "the label and the comment",
        lambda seen: (
            "label:launch" in seen["rows"]
            and "comment:Draft is in the shared folder" in seen["rows"]
        ),
    )
    assert seen["texts"]["priority_picker"] == "High"
    assert seen["texts"]["due_picker"] == "2020-01-02"
    assert seen["rows"]["comment:Draft is in the shared folder"][-1] == (
        "Draft is in the shared folder"
    )
    editor = ("title_input", "notes_input", "status_picker", "priority_picker", "due_picker")
    assert_screenshot(
        app.screenshot("app-task-editor.png"),
        Expected(
            "task",
            {
                "task_heading": "Task",
                "save_button": "Save",
                "title_input": "Write the announcement",
                "notes_input": "Two paragraphs, no more.",
                "status_picker": "Doing",
                "priority_picker": "High",
                "due_picker": "2020-01-02",
                "assignee_picker": f"{user} (you)",
                "label:launch": None,
                "comment:Draft is in the shared folder": None,
                "status_bar": None,
            },
            apart=((*editor, "assignee_picker", "label:launch", "status_bar"),),
            margins=editor[:2],
        ),
        WINDOW,
    )
    app.key("escape")
    seen = app.wait_until(
        "the edited card, sent",
        lambda seen: (
            seen["screen"] == "board"
            and "overdue" in card(seen, "Write the announcement")["meta"]
            and synced(seen)
        ),
    )
    assert card(seen, "Write the announcement") == {
        "title": "Write the announcement",
        "meta": f"@{user} · due 2020-01-02 · overdue · High priority · notes · 1 comment",
        "labels": "#launch",
        "selected": True,
    }
    assert_screenshot(
        app.screenshot("app-board.png"),
        board_layout(
            "Launch",
            {"todo": ["Book the venue"], "doing": ["Write the announcement"], "done": []},
            **{
                "card:Write the announcement/card_meta": card(seen, "Write the announcement")[
                    "meta"
                ]
            },
        ),
        WINDOW,
    )
    edited = wait_for_task(phone, "Write the announcement", lambda t: t["priority"] == 3)
    assert (edited["due"], edited["assignee"], edited["labels"], edited["status"]) == (
        "2020-01-02",
        user,
        ["launch"],
        "doing",
    )

    # filter by text (Ctrl+F), by label; delete a card and restore it
    app.key("f", "ctrl")
    assert app.query()["focus"] == "filter_input"
    app.type("filter_input", "VENUE")
    seen = app.wait_until("only the venue", lambda seen: not titles(seen, "doing"))
    assert titles(seen, "todo") == ["Book the venue"]
    app.tap("clear_filter_button")
    app.tap("label_filter")
    app.tap("option:launch")
    seen = app.wait_until("only the launch label", lambda seen: not titles(seen, "todo"))
    assert titles(seen, "doing") == ["Write the announcement"]
    app.tap("clear_filter_button")
    app.wait_until("every card", lambda seen: titles(seen, "todo") and titles(seen, "doing"))
    app.tap("card:Book the venue")
    app.key("delete")
    app.wait_until("the card deleted", lambda seen: not titles(seen, "todo"))
    app.tap("show_deleted")
    app.wait_until("the deleted card", lambda seen: "deleted:Book the venue" in seen["rows"])
    app.tap("deleted:Book the venue/restore_button")
    seen = app.wait_until("the card restored", lambda seen: titles(seen, "todo"))
    assert titles(seen, "todo") == ["Book the venue"]
    assert seen["texts"]["deleted_title"] == "No deleted tasks"
    app.tap("show_deleted")
    app.wait_until("everything sent", synced)

    # the backend goes away: edits still show, and the status says offline
    backend.stop()
    app.wait_until("offline", lambda seen: seen["texts"]["status_state"] == "Offline")
    app.type("quick_add_input", "Print the flyers", enter=True)
    app.tap("card:Book the venue")
    app.key("right")
    seen = app.wait_until(
        "the offline edits, offline",
        lambda seen: (
            seen["texts"]["status_pending"] == "2 changes waiting to send"
            and seen["texts"]["status_state"] == "Offline"
        ),
    )
    assert titles(seen, "todo") == ["Print the flyers"]
    assert titles(seen, "doing") == ["Write the announcement", "Book the venue"]
    assert status(seen) == "", "the state and the count are shown once each, apart"
    assert seen["texts"]["status_error"] == "The server cannot be reached"
    assert_screenshot(
        app.screenshot("app-offline.png"),
        board_layout(
            "Launch",
            {
                "todo": ["Print the flyers"],
                "doing": ["Write the announcement", "Book the venue"],
                "done": [],
            },
            status_state="Offline",
            status_pending="2 changes waiting to send",
            status_error="The server cannot be reached",
        ),
        WINDOW,
    )

    # the backend comes back: "sync now", and the edits reach the other device
    backend.start()
    app.key("r", "ctrl")
    seen = app.wait_until("everything sent after the restart", synced)
    assert seen["texts"]["status_state"] == "Online"
    assert seen["texts"]["status_error"] == ""
    assert wait_for_task(phone, "Print the flyers")["status"] == "todo"
    assert wait_for_task(phone, "Book the venue", lambda t: t["status"] == "doing")

    # closed and opened again: the same board, the same cards, the same window size
    assert app.quit() == 0
    again = start_app(profile, backend.url)
    seen = again.wait_until("the last board", lambda seen: seen["screen"] == "board", STARTUP_S)
    assert seen["texts"]["board_title"] == "Launch"
    assert (titles(seen, "todo"), titles(seen, "doing")) == (
        ["Print the flyers"],
        ["Write the announcement", "Book the venue"],
    )
    assert tuple(seen["window"]) == WINDOW
    again.wait_until("up to date again", synced)


def test_the_app_moves_cards_by_dragging_them_with_the_mouse_or_a_finger(
    tmp_path: Path, module_backend: BackendProcess, start_app: Callable[[Path, str], AppProcess]
) -> None:
    profile, server, user = tmp_path / "profile", module_backend.url, f"drag{uuid.uuid4().hex[:8]}"
    client(profile, "--server", server, "signup", user, "--password", PASSWORD)
    board = client(profile, "board", "create", "Sprint")
    for title in ("Alpha", "Bravo", "Charlie"):
        client(profile, "task", "add", board, title)
    client(profile, "task", "add", board, "Delta", "--status", "doing")
    client(profile, "sync")

    app = start_app(profile, server)
    app.wait_until("the boards", lambda seen: seen["screen"] == "boards", STARTUP_S)
    app.tap("board:Sprint/open_button")
    seen = app.wait_until("the board", lambda seen: len(titles(seen, "todo")) == 3)
    assert (titles(seen, "todo"), titles(seen, "doing")) == (
        ["Alpha", "Bravo", "Charlie"],
        ["Delta"],
    )

    # a tap still selects (nothing moves), a double tap still opens the editor
    app.tap("card:Bravo")
    seen = app.query()
    assert card(seen, "Bravo")["selected"] and titles(seen, "todo") == ["Alpha", "Bravo", "Charlie"]
    app.tap("card:Bravo", double=True)
    app.wait_until("the task editor", lambda seen: seen["screen"] == "task")
    app.key("escape")
    app.wait_until("the board again", lambda seen: seen["screen"] == "board")

    # the mouse: from To do onto the upper half of Doing's card, so before it
    during = app.drag(
        "card:Alpha",
        to="card:Delta",
        at=[0.5, 0.8],
        hold=0.1,
        screenshot=str(ARTIFACTS / "board-dragging.png"),
    )
    assert sorted(during["during"]) == sorted(["dragging:Alpha", "drop:doing:0"]), during
    assert_screenshot(
        during["screenshot"],
        Expected(
            "board",
            {
                "column:todo/column_title": "To do · 3",
                "column:doing/column_title": "Doing · 1",
                "card:Delta/card_title": "Delta",
                "dragging:Alpha": None,
                "drop:doing:0": None,
            },
            apart=(("column:todo", "column:doing", "column:done"), ("drop:doing:0", "card:Delta")),
            inside={"drop:doing:0": "column:doing", "card:Delta": "column:doing"},
            gaps=(("column:doing", "column:done"),),  # the dragged copy spans the other
        ),
        WINDOW,
    )
    seen = app.wait_until("Alpha in Doing", lambda seen: "Alpha" in titles(seen, "doing"))
    assert (titles(seen, "todo"), titles(seen, "doing")) == (
        ["Bravo", "Charlie"],
        ["Alpha", "Delta"],
    )
    assert card(seen, "Alpha")["selected"]

    # a finger, held a moment first: within To do, Charlie above Bravo
    during = app.drag("card:Charlie", to="card:Bravo", at=[0.5, 0.9], hold=0.6, pointer="finger")
    assert sorted(during["during"]) == sorted(["dragging:Charlie", "drop:todo:0"]), during
    seen = app.wait_until("Charlie first", lambda seen: titles(seen, "todo")[0] == "Charlie")
    assert titles(seen, "todo") == ["Charlie", "Bravo"]

    # released outside every column, or Escape before the release: nothing moves
    during = app.drag("card:Bravo", to="quick_add_input", hold=0.1)  # above the columns
    assert sorted(during["during"]) == sorted(["dragging:Bravo"]), (
        during
    )  # no marker: no place to land
    during = app.drag("card:Bravo", to="card:Delta", hold=0.1, before_release="escape")
    assert sorted(during["during"]) == sorted(["dragging:Bravo", "drop:doing:1"]), during
    seen = app.wait_until("everything sent", synced)
    assert (titles(seen, "todo"), titles(seen, "doing")) == (
        ["Charlie", "Bravo"],
        ["Alpha", "Delta"],
    )
    assert seen["screen"] == "board"  # Escape put the card back, and stayed on the board
    assert_screenshot(
        app.screenshot("board-after-drag.png"),
        board_layout(
            "Sprint", {"todo": ["Charlie", "Bravo"], "doing": ["Alpha", "Delta"], "done": []}
        ),
        WINDOW,
    )

    # the moves reached the server: another device of the user pulls them, in that order
    phone = Phone(server, user).login()
    wait_for_task(phone, "Alpha", lambda t: t["status"] == "doing")
    wait_for_task(phone, "Charlie", lambda t: t["position"] < pulled(phone, "Bravo")["position"])
    assert pulled(phone, "Alpha")["position"] < pulled(phone, "Delta")["position"]
    assert pulled(phone, "Bravo")["status"] == "todo"

    # ... and the app's own store, read after it closed
    assert app.quit() == 0
    (sprint,) = json.loads(client(profile, "show", "--json"))["boards"]
    columns = {
        status: [t["title"] for t in sprint["tasks"] if t["status"] == status]
        for status in ("todo", "doing")
    }
    assert columns == {"todo": ["Charlie", "Bravo"], "doing": ["Alpha", "Delta"]}


def test_the_app_opens_a_profile_made_by_outpost_client(
    tmp_path: Path, module_backend: BackendProcess, start_app: Callable[[Path, str], AppProcess]
) -> None:
    profile, server, user = tmp_path / "profile", module_backend.url, f"cli{uuid.uuid4().hex[:8]}"
    client(profile, "--server", server, "signup", user, "--password", PASSWORD)
    board = client(profile, "board", "create", "Groceries")
    client(profile, "task", "add", board, "Milk", "--label", "dairy", "--priority", "2")
    client(profile, "task", "add", board, "Bread", "--status", "doing")
    client(profile, "sync")

    app = start_app(profile, server)
    seen = app.wait_until("the boards", lambda seen: seen["screen"] == "boards", STARTUP_S)
    assert seen["texts"]["boards_user"] == f"Signed in as {user}"
    app.tap("board:Groceries/open_button")
    seen = app.wait_until("the board", lambda seen: titles(seen, "todo"))
    assert (titles(seen, "todo"), titles(seen, "doing"), titles(seen, "done")) == (
        ["Milk"],
        ["Bread"],
        [],
    )
    assert card(seen, "Milk")["labels"] == "#dairy"
    app.type("quick_add_input", "Eggs", enter=True)
    app.wait_until(
        "the new card, sent", lambda seen: "Eggs" in titles(seen, "todo") and synced(seen)
    )
    assert app.quit() == 0

    shown = json.loads(client(profile, "show", "--json"))
    (groceries,) = shown["boards"]
    assert [t["title"] for t in groceries["tasks"] if t["status"] == "todo"] == ["Milk", "Eggs"]


def test_the_app_tells_why_a_board_went_away_and_the_notice_can_be_dismissed(
    tmp_path: Path, module_backend: BackendProcess, start_app: Callable[[Path, str], AppProcess]
) -> None:
    profile, server, user = tmp_path / "profile", module_backend.url, f"lost{uuid.uuid4().hex[:8]}"
    client(profile, "--server", server, "signup", user, "--password", PASSWORD)
    owner = Phone(server, f"own{uuid.uuid4().hex[:8]}").signup()
    board, created = owner.new_board("Shared plans")
    shared = owner.push(created, owner.event("MemberAdded", {"username": user}, board=board))
    assert [result["status"] for result in shared] == ["accepted", "accepted"]

    app = start_app(profile, server)
    seen = app.wait_until("the shared board", lambda seen: "board:Shared plans" in seen["rows"])
    assert seen["rows"]["board:Shared plans"][0] == f"Shared plans   owner {owner.username}"
    assert "notices_title" not in seen["texts"]  # no notices: the panel takes no room

    (removed,) = owner.push(owner.event("MemberRemoved", {"username": user}, board=board))
    assert removed["status"] == "accepted"
    seen = app.wait_until("a notice", lambda seen: "notice:0" in seen["rows"])
    title, message, reason = seen["rows"]["notice:0"][:3]
    assert title.startswith("Board no longer shared with you · ")
    assert message == "You no longer have access to the board 'Shared plans'."
    assert reason == "You are no longer a member of the board"
    assert seen["texts"]["notices_title"] == "Notices  ·  1"
    assert "board:Shared plans" not in seen["rows"]
    assert_screenshot(
        app.screenshot("app-notice.png"),
        Expected(
            "boards",
            {
                "boards_user": f"Signed in as {user}",
                "new_board_input": None,
                "notices": None,
                "notices_title": "Notices  ·  1",
                "notice:0/notice_title": title,
                "notice:0/notice_message": message,
                "notice:0/notice_reason": reason,
                "notice:0/dismiss_button": "Dismiss",
                "status_bar": None,
            },
            apart=(("boards_screen", "notices", "status_bar"),),
            inside={"notice:0": "notices", "new_board_input": "boards_screen"},
            margins=("new_board_input",),
        ),
        WINDOW,
    )
    app.tap("notice:0/dismiss_button")
    seen = app.wait_until("no notice", lambda seen: "notice:0" not in seen["rows"])
    assert "notices_title" not in seen["texts"]


def test_the_editor_saves_only_what_the_user_changed_and_shows_other_devices_edits(
    tmp_path: Path, module_backend: BackendProcess, start_app: Callable[[Path, str], AppProcess]
) -> None:
    """FAULTS row 27: another device renames the open task and changes its due date and
    priority while the user types in Notes and picks a priority; Save keeps their title and
    due date, and the field changed on both shows that it changed elsewhere."""
    profile, server, user = tmp_path / "profile", module_backend.url, f"ed{uuid.uuid4().hex[:8]}"
    client(profile, "--server", server, "signup", user, "--password", PASSWORD)
    board = client(profile, "board", "create", "Launch")
    client(profile, "task", "add", board, "Draft", "--due", "2026-01-10")
    client(profile, "sync")
    phone = Phone(server, user).login()
    wait_for_task(phone, "Draft")
    task = next(i for (kind, i), c in phone.state.items() if kind == "task")

    app = start_app(profile, server)
    app.wait_until("the boards", lambda seen: seen["screen"] == "boards", STARTUP_S)
    app.tap("board:Launch/open_button")
    app.wait_until("the board", lambda seen: titles(seen, "todo") == ["Draft"])
    app.tap("card:Draft", double=True)
    seen = app.wait_until("the task editor", lambda seen: seen["screen"] == "task")
    assert (seen["texts"]["title_input"], seen["texts"]["due_picker"]) == ("Draft", "2026-01-10")
    notes = "Two paragraphs, no more."
    app.type("notes_input", notes)
    app.tap("priority_picker")
    app.tap("option:High")

    fields = {"title": "Final draft", "due": "2026-02-20", "priority": 1}
    renamed = phone.event("TaskUpdated", {"fields": fields}, board=board, entity=task)
    assert phone.push(renamed)[0]["status"] == "accepted"
    seen = app.wait_until(
        "the other device's edits in the open editor",
        lambda seen: (
            seen["texts"]["title_input"] == "Final draft" and "priority_changed" in seen["texts"]
        ),
    )  # (a hint's label takes its height a frame after its text)
    texts = seen["texts"]
    assert (texts["due_picker"], texts["notes_input"]) == ("2026-02-20", notes)
    assert texts["priority_picker"] == "High"  # what the user picked stays ...
    assert texts["priority_changed"] == "Changed on another device: Low"  # ... marked
    assert "title_changed" not in texts and "notes_changed" not in texts
    assert_screenshot(
        app.screenshot("app-task-changed-elsewhere.png"),
        Expected(
            "task",
            {
                "title_input": "Final draft",
                "notes_input": notes,
                "due_picker": "2026-02-20",
                "priority_picker": "High",
                "priority_changed": "Changed on another device: Low",
            },
            apart=(
                ("title_input", "notes_input", "priority_picker", "priority_changed", "due_picker"),
            ),
            inside={"priority_changed": "task_screen"},
            margins=("title_input", "notes_input"),
        ),
        WINDOW,
    )

    app.tap("save_button")
    seen = app.wait_until("the save sent", synced)
    assert "priority_changed" not in seen["texts"]
    saved = wait_for_task(phone, "Final draft", lambda t: t["notes"] == notes)
    assert (saved["title"], saved["due"], saved["notes"], saved["priority"]) == (
        "Final draft",
        "2026-02-20",
        notes,
        3,
    ), "the editor wrote fields the user never changed back over the other device's"


# helpers


def wait_for_task(
    phone: Phone, title: str, check: Callable[[dict[str, Any]], bool] = lambda _: True
) -> dict[str, Any]:
    """Pull until a task with this title (and passing ``check``) is there; its values and
    board."""
    began = time.monotonic()
    deadline = began + SYNC_S
    while True:
        phone.pull()
        for (kind, _), change in phone.state.items():
            values = change["values"]
            if kind == "task" and values["title"] == title and check(values):
                print(f"second device pulled {title!r} after {time.monotonic() - began:.1f}s")
                return {**values, "board": change["board"]}
        if time.monotonic() > deadline:
            raise AssertionError(f"the second device never pulled {title!r}")
        time.sleep(0.2)


def pulled(phone: Phone, title: str) -> dict[str, Any]:
    """What the second device last pulled of the task with this title."""
    for (kind, _), change in phone.state.items():
        if kind == "task" and change["values"]["title"] == title:
            return dict(change["values"])
    raise AssertionError(f"the second device has no task {title!r}")


def client(profile: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "outpost", "client", "--data-dir", str(profile), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"outpost client {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()
