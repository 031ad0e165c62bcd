"""What a board and an account need, driven in the real app on a virtual display at phone
width (400x800) and desktop width (1280x800), against a real backend (issue 16).

One user's day, at each width:

- sign-in against a server that never answers: the form waits with a Cancel and with
  "Continue offline" still open; Cancel gives the form back at once; a second try ends on
  its own after the short timeout and says the server cannot be reached;
- the right server typed in, an account made, a new board that says what to do, cards;
- undo from the snackbar after a delete, a move and an edit in the editor: the card comes
  back, goes back to its column, takes its old title;
- the owner sets the board's WIP limit on the boards screen and Doing's header shows it
  (``you 0/1``), on a phone in its tab; a task assigned with the member picker, a named
  priority, notes and a comment, all on its card; one save that moves a task into Doing
  and assigns it over the limit is undone by the backend's saga, and its notice names both
  changes;
- share: a name no one has is refused before anything is queued, a real member's is
  checked and shared, and both answers show under the share field;
- the account: the password changed, then a switch to another account, which signs in
  with a one-time password set by ``outpost users reset-password`` and must choose a new
  one, finds the board shared with it, and signs out.

Screenshots of each step are saved under ``tests/artifacts/`` (``actions-<width>-*.png``)
and checked against the layout the step must show, and each step's widget tree is audited
as the look test audits every screen.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from client.app.viewmodels.board import EMPTY_BOARD
from client.app.viewmodels.signin import CANCELLED, ONE_TIME, UNREACHABLE
from client.sync.runner import SIGN_IN_TIMEOUT_S
from tests.client.app.test_app_e2e import STARTUP_S, AppProcess, Query, card, titles
from tests.client.app.test_app_look import DESKTOP, PHONE, check_look
from tests.support.backend import BackendProcess, one_time_password
from tests.support.device import PASSWORD
from tests.support.device import Device as Phone
from tests.support.screenshots import Expected, assert_screenshot
from tests.support.xvfb import Xvfb, running_xvfb

pytestmark = pytest.mark.integration

NEW_PASSWORD = "a longer passphrase"
BOB_PASSWORD = "bobs own passphrase"


@pytest.fixture(scope="module")
def display(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Xvfb]:
    with running_xvfb(tmp_path_factory.mktemp("xvfb") / "xvfb.log") as server:
        yield server


@pytest.mark.parametrize(("width", "window"), [("phone", PHONE), ("desktop", DESKTOP)])
def test_sign_in_undo_wip_limit_share_and_accounts_like_a_user(
    tmp_path: Path,
    display: Xvfb,
    module_backend: BackendProcess,
    silent_server: str,
    width: str,
    window: tuple[int, int],
) -> None:
    suffix = uuid.uuid4().hex[:6]
    user, bob = f"ann{suffix}", f"bob{suffix}"
    Phone(module_backend.url, bob).signup()  # the member to share with
    home = tmp_path / "profile"
    home.mkdir()
    size = {"window_width": window[0], "window_height": window[1], "theme": "light"}
    (home / "app.json").write_text(json.dumps(size), encoding="utf-8")
    app = AppProcess(home, silent_server, display, tmp_path)
    shots = Shots(app, width, window)
    try:
        app.start()
        sign_in_cancelled_then_timed_out(app, shots, user)
        app.type("server_input", module_backend.url)
        app.tap("sign_up_button")
        app.wait_until("the boards, signed in", lambda seen: seen["screen"] == "boards")
        app.type("new_board_input", "Plans", enter=True)
        seen = app.wait_until("the new board", lambda seen: seen["screen"] == "board")
        assert seen["columns"]["todo"]["empty"] == EMPTY_BOARD["todo"], "it says what to do"
        for title in ("Write the plan", "Book a room", "Order lunch"):
            app.type("quick_add_input", title, enter=True)
        app.wait_until("three cards", lambda seen: len(titles(seen, "todo")) == 3)

        undo_delete_move_and_edit(app, shots, width)
        set_the_wip_limit(app, shots, width, user)
        share_with_a_check(app, shots, bob)
        change_password_and_switch_account(app, shots, module_backend, user, bob)
    finally:
        app.kill()


class Shots:
    """Screenshots of one run, named after the width, each checked against its layout."""

    def __init__(self, app: AppProcess, width: str, window: tuple[int, int]) -> None:
        self.app, self.width, self.window = app, width, window

    def check(self, step: str, expected: Expected) -> None:
        """The step's layout in its screenshot, and the look's audit of what it shows
        (touch targets, texts cut short, stock backgrounds)."""
        shot = self.app.screenshot(f"actions-{self.width}-{step}.png")
        assert_screenshot(shot, expected, self.window)
        check_look(self.app, "light", shot=False, name=f"{self.width} {step}")


def texts(seen: Query) -> dict[str, str]:
    found: dict[str, str] = seen["texts"]
    return found


def sign_in_cancelled_then_timed_out(app: AppProcess, shots: Shots, user: str) -> None:
    app.wait_until("the sign-in form", lambda seen: seen["screen"] == "signin", STARTUP_S)
    app.type("username_input", user)
    app.type("password_input", PASSWORD)
    app.tap("sign_in_button")  # the form's: the status bar shows none beside it
    seen = app.wait_until("the wait, with Cancel", lambda seen: "cancel_button" in texts(seen))
    assert texts(seen)["signin_busy"] == "Talking to the server…"
    shots.check(
        "signin-waiting",
        Expected(
            "signin",
            {"signin_busy": "Talking to the server…", "cancel_button": "Cancel"},
            apart=(("signin_busy", "cancel_button", "sign_in_button", "sign_up_button"),),
            above=(("cancel_button", "sign_in_button"),),
        ),
    )
    app.tap("cancel_button")
    seen = app.wait_until(
        "the form given back", lambda seen: texts(seen).get("signin_error") == CANCELLED
    )
    assert "cancel_button" not in texts(seen) and not texts(seen).get("signin_busy")
    assert texts(seen)["username_input"] == user, "what the user typed is kept"

    app.tap("sign_in_button")  # again: this time the short timeout ends the wait
    app.wait_until("the wait", lambda seen: "cancel_button" in texts(seen))
    seen = app.wait_until(
        "the timeout's answer",
        lambda seen: texts(seen).get("signin_error") == UNREACHABLE,
        SIGN_IN_TIMEOUT_S + 20,
    )
    assert "cancel_button" not in texts(seen)
    assert "can work on this device now" in texts(seen)["offline_hint"]


def undo_delete_move_and_edit(app: AppProcess, shots: Shots, width: str) -> None:
    app.tap("card:Book a room")
    app.tap("delete_button")
    seen = app.wait_until("the delete's snackbar", lambda seen: undo_text(seen) == "Task deleted")
    assert titles(seen, "todo") == ["Write the plan", "Order lunch"]
    shots.check(
        "undo-delete",
        Expected(
            "board",
            {"undo_text": "Task deleted", "undo_button": "Undo", "status_bar": None},
            apart=(("undo_bar", "status_bar"), ("undo_text", "undo_button")),
            above=(("undo_bar", "status_bar"),),
        ),
    )
    app.tap("undo_button")
    seen = app.wait_until("the card back", lambda seen: "Book a room" in titles(seen, "todo"))
    assert undo_text(seen) == "Undone" and "undo_button" not in texts(seen)
    assert titles(seen, "todo") == ["Write the plan", "Book a room", "Order lunch"]

    app.tap("card:Order lunch")
    app.tap("move_right_button")
    seen = app.wait_until("the move's snackbar", lambda seen: undo_text(seen) == "Moved to Doing")
    assert "Order lunch" not in titles(seen, "todo")
    if width == "phone":  # one column at a time: the moved card is in Doing's tab
        assert texts(seen)["tab_doing"].endswith("1")
    app.tap("undo_button")
    seen = app.wait_until("the card back in To do", lambda s: "Order lunch" in titles(s, "todo"))
    assert undo_text(seen) == "Undone"

    app.tap("card:Write the plan")
    app.key("enter")
    app.wait_until("the editor", lambda seen: seen["screen"] == "task")
    app.type("title_input", "Write the whole plan")
    app.tap("save_button")
    app.key("escape")
    seen = app.wait_until("the edit's snackbar", lambda seen: undo_text(seen) == "Changes saved")
    assert "Write the whole plan" in titles(seen, "todo")
    app.tap("undo_button")
    seen = app.wait_until("the old title", lambda seen: "Write the plan" in titles(seen, "todo"))
    assert undo_text(seen) == "Undone"
    app.tap("undo_close_button")
    app.wait_until("no snackbar", lambda seen: "undo_text" not in texts(seen))


def undo_text(seen: Query) -> str | None:
    return texts(seen).get("undo_text")


def set_the_wip_limit(app: AppProcess, shots: Shots, width: str, user: str) -> None:
    app.tap("card:Order lunch")
    app.tap("move_right_button")  # one card in Doing, no one's
    app.wait_until("a card in Doing", lambda seen: "Order lunch" not in titles(seen, "todo"))
    app.tap("back_button")
    app.wait_until("the boards", lambda seen: seen["screen"] == "boards")
    app.tap("board:Plans/select_button")
    app.type("wip_input", "1", enter=True)
    seen = app.wait_until("the limit kept", lambda seen: "1" in texts(seen).get("wip_input", ""))
    assert texts(seen)["wip_input"] == "1"
    app.tap("board:Plans/open_button")
    seen = app.wait_until("the board", lambda seen: seen["screen"] == "board")
    if width == "phone":
        assert texts(seen)["tab_doing"] == "Doing · 1 · you 0/1"  # the header in its tab
        app.tap("tab_doing")
    seen = app.wait_until("Doing", lambda seen: "doing" in seen["columns"])
    assert seen["columns"]["doing"]["title"] == "Doing · 1 · you 0/1"
    assert titles(seen, "doing") == ["Order lunch"]
    shots.check(
        "wip-limit",
        Expected(
            "board",
            {"column:doing/column_title": "Doing · 1 · you 0/1", "card:Order lunch": None},
            inside={"card:Order lunch": "column:doing"},
        ),
    )
    over_the_limit_in_one_save(app, shots, width, user)
    app.tap("back_button")
    app.wait_until("the boards", lambda seen: seen["screen"] == "boards")


def over_the_limit_in_one_save(app: AppProcess, shots: Shots, width: str, user: str) -> None:
    """At the limit, one save moves a task into Doing and assigns it to the user: the
    backend's saga undoes both, and the notice names both, in plain words."""
    edit("Order lunch", app)
    app.tap("assignee_picker")
    app.tap(f"option:{user} (you)")
    app.tap("priority_picker")
    app.tap("option:High")
    app.type("notes_input", "Sandwiches for six")
    app.type("comment_input", "Ask about allergies", enter=True)
    app.tap("save_button")
    app.key("escape")
    seen = app.wait_until("the load", lambda seen: "you 1/1" in header(seen, width))
    if width == "phone":
        app.tap("tab_doing")
    seen = app.wait_until("the card", lambda seen: "Order lunch" in titles(seen, "doing"))
    assert card(seen, "Order lunch")["meta"] == f"@{user} · High priority · notes · 1 comment"
    if width == "phone":
        app.tap("tab_todo")
    edit("Book a room", app)
    app.tap("status_picker")
    app.tap("option:Doing")
    app.tap("assignee_picker")
    app.tap(f"option:{user} (you)")
    app.tap("save_button")
    app.key("escape")
    seen = app.wait_until("the saga's notice", lambda seen: "notice:0" in seen["rows"])
    told = " ".join(seen["rows"]["notice:0"])
    assert (
        f"Moved back to To do and no longer assigned to {user}: {user} already has 1 task "
        "in Doing, the board's limit"
    ) in told, told
    shots.check("wip-notice", Expected("board", {"notice:0": None, "status_bar": None}))
    app.tap("notice:0/dismiss_button")
    seen = app.wait_until("the task back", lambda seen: "Book a room" in titles(seen, "todo"))
    assert "notice:0" not in seen["rows"]
    assert header(seen, width) == "Doing · 1 · you 1/1"


def edit(title: str, app: AppProcess) -> None:
    app.tap(f"card:{title}")
    app.key("enter")
    app.wait_until("the editor", lambda seen: seen["screen"] == "task")


def header(seen: Query, width: str) -> str:
    """Doing's header: its tab's title on a phone (the column may not be the one shown)."""
    if width == "phone":
        return texts(seen)["tab_doing"]
    return str(seen["columns"]["doing"]["title"])


def share_with_a_check(app: AppProcess, shots: Shots, bob: str) -> None:
    stranger = f"nobody{uuid.uuid4().hex[:6]}"
    app.type("share_input", stranger)
    app.tap("share_button")
    seen = app.wait_until("the name refused", lambda seen: texts(seen).get("share_error"))
    assert texts(seen)["share_error"] == f"No user named {stranger}: check the spelling"
    assert f"member:{stranger}" not in seen["rows"], "nothing was queued"
    app.type("share_input", bob, enter=True)
    seen = app.wait_until("the member listed", lambda seen: f"member:{bob}" in seen["rows"])
    seen = app.wait_until(
        "the share said", lambda seen: texts(seen).get("share_note") == f"Shared with {bob}"
    )
    assert not texts(seen).get("share_error")
    shots.check(
        "shared",
        Expected(
            "boards",
            {
                "share_input": None,
                "share_note": f"Shared with {bob}",
                f"member:{bob}": None,
            },
            apart=(("share_input", "share_note", f"member:{bob}"),),
            above=(("share_input", "share_note"), ("share_note", f"member:{bob}")),
        ),
    )


def change_password_and_switch_account(
    app: AppProcess, shots: Shots, backend: BackendProcess, user: str, bob: str
) -> None:
    app.tap("account_button")
    seen = app.wait_until("the account", lambda seen: seen["screen"] == "account")
    assert texts(seen)["account_title"] == f"Signed in as {user}"
    app.type("current_password_input", PASSWORD)
    app.type("new_password_input", NEW_PASSWORD)
    app.type("again_password_input", NEW_PASSWORD)
    app.tap("change_password_button")
    seen = app.wait_until(
        "the password changed",
        lambda seen: texts(seen).get("account_message", "").startswith("Password changed"),
    )
    assert not texts(seen).get("account_error")
    check_password(backend, user, NEW_PASSWORD)  # it works from another device

    one_time = one_time_password(backend, bob)
    app.type("switch_input", bob, enter=True)
    seen = app.wait_until("bob's sign-in", lambda seen: seen["screen"] == "signin")
    assert (texts(seen)["server_input"], texts(seen)["username_input"]) == (backend.url, bob)
    app.type("password_input", one_time)
    app.tap("sign_in_button")
    seen = app.wait_until(
        "a new password asked for", lambda seen: texts(seen).get("signin_error") == ONE_TIME
    )
    shots.check(
        "one-time-password",
        Expected(
            "signin",
            {"signin_error": ONE_TIME, "new_password_input": None, "set_password_button": None},
            apart=(("password_input", "new_password_input", "set_password_button"),),
        ),
    )
    app.type("new_password_input", BOB_PASSWORD)
    app.tap("set_password_button")
    app.wait_until("bob's boards", lambda seen: seen["screen"] == "boards")
    seen = app.wait_until("the shared board", lambda seen: "board:Plans" in seen["rows"])
    assert f"owner {user}" in " ".join(seen["rows"]["board:Plans"])
    check_password(backend, bob, BOB_PASSWORD)

    app.tap("account_button")
    seen = app.wait_until("bob's account", lambda seen: seen["screen"] == "account")
    assert texts(seen)["account_title"] == f"Signed in as {bob}"
    app.tap("sign_out_button")
    seen = app.wait_until("signed out", lambda seen: seen["screen"] == "signin")
    assert texts(seen)["signin_error"] == "Signed out."
    assert app.quit() == 0
    assert (app.profile.parent / f"{app.profile.name}@{bob}").is_dir(), "bob's own profile"


def check_password(backend: BackendProcess, username: str, password: str) -> None:
    """The server takes ``password`` for ``username`` (and no longer the old one)."""
    for tried, status in ((password, 200), (PASSWORD, 401)):
        reply = httpx.post(
            f"{backend.url}/v1/auth/token", json={"username": username, "password": tried}
        )
        assert reply.status_code == status, (tried, reply.text)
