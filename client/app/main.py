"""The app: a window over one profile, its view models, and the sync thread.

``run_app`` picks the profile folder, prepares the demo account if asked, sets Kivy up
(window size, no quit on Escape) before any window exists, and runs ``OutpostApp``. The app
builds the view models over the profile's device, hands them to the screens, moves
between screens, and fans the sync thread's progress (which arrives through ``on_ui``) out
to the view models on screen. Every user action is a local transaction; only the sync
thread talks to the server.
"""

# mypy: allow-subclassing-any, no-warn-unused-ignores

from __future__ import annotations

import logging
import signal
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from kivy.app import App  # type: ignore[import-untyped]
from kivy.config import Config  # type: ignore[import-untyped]

from client.app.viewmodels import (
    AccountViewModel,
    BoardsViewModel,
    BoardViewModel,
    NoticesViewModel,
    SignInViewModel,
    StatusViewModel,
    TaskViewModel,
)
from client.device import Device
from client.errors import ClientError
from client.sync.engine import Progress
from client.sync.runner import SignInAction

from .background import BackgroundSync
from .demo import prepare_demo
from .look import resolve_scheme, toggled
from .quiet import after_kivy_import
from .settings import (
    DEFAULT_PROFILE,
    DEMO_PROFILE,
    MIN_WINDOW,
    AppSettings,
    default_profile_dir,
)
from .shortcuts import shortcut
from .ui_thread import on_ui

log = logging.getLogger(__name__)

DEFAULT_SERVER = "http://127.0.0.1:8000"
TITLE = "Outpost"


def run_app(
    server: str | None,
    data_dir: Path | None,
    demo: bool = False,
    app_class: type[OutpostApp] | None = None,
    verbose: bool = False,
) -> int:
    """Open the app on a profile folder (default: the platform's user data folder).
    ``app_class``: a subclass of ``OutpostApp`` to run instead (a caller's code, never a
    setting: the end-to-end tests' wrapper adds its control this way)."""
    home = data_dir or default_profile_dir(DEMO_PROFILE if demo else DEFAULT_PROFILE)
    folder = AppSettings.load(home).profile_folder(home)  # the account used last
    settings = AppSettings.load(folder)
    if demo:
        server = server or DEFAULT_SERVER
        problem = _prepare_demo(folder, server, settings)
        if problem:
            log.warning("demo: %s; the app opens anyway", problem)
    _configure_kivy(settings)
    after_kivy_import(verbose)  # warnings and up only, unless --verbose (``quiet.py``)
    app = (app_class or OutpostApp)(folder, settings, server, home=home)
    for stop in (signal.SIGINT, signal.SIGTERM):  # close as the window would: settings saved
        signal.signal(stop, lambda *_: on_ui(app.stop))
    app.run()
    return 0


def _prepare_demo(folder: Path, server: str, settings: AppSettings) -> str | None:
    """The demo account and its board, which the app opens first."""
    try:
        device = Device(folder)
    except ClientError as exc:
        return str(exc)
    try:
        problem = prepare_demo(device, server)
        boards = device.boards(include_archived=False)
        if settings.last_board is None and boards:
            settings.last_board = boards[0]["id"]
        return problem
    finally:
        device.close()


def _configure_kivy(settings: AppSettings) -> None:
    """Before the window exists: its size, and Escape as "back" rather than "quit"."""
    Config.set("graphics", "width", str(settings.window_width))
    Config.set("graphics", "height", str(settings.window_height))
    Config.set("graphics", "minimum_width", str(MIN_WINDOW[0]))
    Config.set("graphics", "minimum_height", str(MIN_WINDOW[1]))
    Config.set("kivy", "exit_on_escape", "0")
    Config.set("input", "mouse", "mouse,disable_multitouch")  # right-click makes no red dots


class OutpostApp(App):
    def __init__(
        self, folder: Path, settings: AppSettings, server: str | None, home: Path | None = None
    ) -> None:
        super().__init__()
        self.title = TITLE
        self.folder = folder
        self.home = home or folder
        """The first profile's folder; other accounts' are beside it (``account.py``)."""
        self.settings = settings
        self.server_arg = server
        self.device: Device | None = None
        self.sync: BackgroundSync | None = None
        self.boards_model: BoardsViewModel | None = None
        self.notices_model: NoticesViewModel | None = None
        self.board_model: BoardViewModel | None = None
        self.task_model: TaskViewModel | None = None
        self.account_model: AccountViewModel | None = None
        self.shell: Any = None
        """The window's root widget (``screens/shell.kv``), once built."""
        self.theme: Any = None
        """The colours on screen (``screens/theme.py``), once built."""

    # building

    def build(self) -> Any:
        from kivy.clock import Clock  # type: ignore[import-untyped]
        from kivy.core.window import Window  # type: ignore[import-untyped]

        from .screens.shell import Shell
        from .screens.theme import theme

        self.theme = theme

        self.theme.apply(resolve_scheme(self.settings.theme))
        Window.clearcolor = self.theme.background
        self.theme.bind(background=lambda _theme, colour: setattr(Window, "clearcolor", colour))
        Window.bind(on_key_down=self._on_key_down)
        self._refresh_soon = Clock.create_trigger(self._refresh_on_screen)
        root = Shell()
        self.shell = root
        for screen in root.ids.screens.screens:
            screen.nav = self
        self._open_profile()
        return root

    def _open_profile(self, switched_from: str | None = None) -> None:
        """The view models over ``self.folder``'s device, handed to the screens; the first
        screen shown (at start, and after switching account). ``switched_from``: after a
        switch, the server of the account left, which the sign-in form offers to a profile
        that has none yet (``--server`` was for the profile the app started on)."""
        root = self.shell
        self.signin_model = SignInViewModel(
            self.folder,
            sign_in=self._sign_in,
            change_password=self._change_password,
            on_answer=on_ui,
            default_server=switched_from or self.server_arg or DEFAULT_SERVER,
        )
        self.device = self.signin_model.device
        self.status_model = StatusViewModel(self.device)
        root.ids.signin_screen.attach(self.signin_model)
        root.ids.status_bar.attach(
            self.status_model,
            sync_now=self.sync_now,
            sign_in=self.show_sign_in,
            signed_in=lambda: self.signin_model.has_session,
        )
        if self.device is not None:
            self._attach_device(self.device)
        self._open_first_screen(None if switched_from else self.server_arg)

    def _attach_device(self, device: Device) -> None:
        self.sync = BackgroundSync(device, self._on_progress)
        sync = self.sync
        self.boards_model = BoardsViewModel(device, check_user=sync.check_user, on_answer=on_ui)
        self.notices_model = NoticesViewModel(device)
        self.shell.ids.boards_screen.attach(self.boards_model, self._user_text())
        self.shell.ids.notices.attach(self.notices_model)

    def _open_first_screen(self, asked: str | None) -> None:
        """``asked``: the server the app was started for (``--server``)."""
        device, settings = self.device, self.settings
        if device is None:
            self._show("signin")  # the store could not be opened: the screen says why
            return
        other_server = asked is not None and asked != device.server
        signed_in_or_offline = self.signin_model.has_session or settings.offline_chosen
        if signed_in_or_offline and not other_server:
            self._connect()
            self._open_last_board()
        else:
            if asked:
                self.signin_model.server_url = asked
            self.shell.ids.signin_screen.render()
            self._show("signin")

    def _open_last_board(self) -> None:
        last = self.settings.last_board
        if self.device is not None and last and self.device.entity("board", last):
            self.open_board(last)
        else:
            self.open_boards()

    # navigation (what the screens may ask)

    def open_boards(self) -> None:
        if self.boards_model is None:
            self._show("signin")
            return
        self.shell.ids.boards_screen.user_text = self._user_text()
        self._show("boards")

    def open_board(self, board_id: str) -> None:
        assert self.device is not None
        self.board_model = BoardViewModel(self.device, board_id)
        offer = self.task_model.undo_offer if self.task_model is not None else None
        if offer is not None:  # back from the editor: its Undo stays on offer on the board
            self.board_model.undo_offer = offer
            self.task_model = None
        self.shell.ids.board_screen.attach(self.board_model)
        self.settings.last_board = board_id
        self.settings.save(self.folder)
        if self.boards_model is not None:
            self.boards_model.select(board_id)
        self._show("board")

    def open_task(self, task_id: str) -> None:
        assert self.device is not None
        self.task_model = TaskViewModel(self.device, task_id)
        self.shell.ids.task_screen.attach(self.task_model)
        self._show("task")

    def open_account(self) -> None:
        if self.device is None or self.sync is None:
            self._show("signin")
            return
        self.account_model = AccountViewModel(  # afresh: what it said last time is past
            self.device,
            self.home,
            log_out=self.sync.log_out,
            change_password=self.sync.change_password,
            on_answer=on_ui,
        )
        self.shell.ids.account_screen.attach(self.account_model)
        self._show("account")

    def signed_out(self, message: str) -> None:
        """Signed out: the sign-in screen, saying what this profile keeps."""
        self.settings.offline_chosen = False
        self.settings.save(self.folder)
        self.status_model.refresh()
        self.signin_model.error = message
        self.shell.ids.signin_screen.render()
        self._show("signin")

    def switch_profile(self, folder: Path, message: str | None, username: str | None) -> None:
        """Another account's profile (its own device id): the sync of this one stops, its
        unsent changes stay in its folder; the app opens the other and remembers it."""
        self.settings.save(self.folder)
        self.shell.ids.account_screen.detach()
        server = self.device.server if self.device is not None else None
        if self.sync is not None:
            self.sync.stop()
        if self.device is not None:
            self.device.close()
        self.sync, self.device, self.board_model, self.task_model = None, None, None, None
        home = AppSettings.load(self.home)
        home.active_profile = None if folder == self.home else folder.name
        home.save(self.home)
        self.folder, self.settings = folder, AppSettings.load(folder)
        self._open_profile(server)  # a new account's profile starts on the same server
        model = self.signin_model
        if username and not model.username:  # a new profile: its form names the account
            model.username = username
        model.error = message or model.error
        self.shell.ids.signin_screen.render()

    def _change_password(
        self, server: str, username: str, password: str, new_password: str
    ) -> Future[None]:
        """A one-time password changed at sign-in, on the sync thread."""
        assert self.sync is not None
        return self.sync.change_password(server, username, password, new_password)

    def show_sign_in(self) -> None:
        self.shell.ids.signin_screen.render()
        self._show("signin")

    def signed_in(self) -> None:
        self.settings.offline_chosen = False
        self.settings.save(self.folder)
        self._connect()
        self.sync_now()  # what was done offline goes now
        self.status_model.refresh()
        self.shell.ids.boards_screen.user_text = self._user_text()
        self._open_last_board()

    def _sign_in(
        self, server: str, action: SignInAction, username: str, password: str
    ) -> Future[None]:
        """A sign-in, asked of the sync thread (the model signs in only with a device)."""
        assert self.sync is not None
        return self.sync.sign_in(server, action, username, password)

    def continued_offline(self) -> None:
        self.settings.offline_chosen = True
        self.settings.save(self.folder)
        self._connect()
        self.open_boards()

    def sync_now(self) -> None:
        if self.sync is not None and not self.sync.running:
            self._connect()
        if self.sync is not None:
            self.sync.sync_now()

    def changed_locally(self) -> None:
        self.status_model.refresh()
        if self.sync is not None:
            self.sync.sync_now()

    def switch_theme(self) -> None:
        """The switch in the status bar: the other scheme, kept in ``app.json``."""
        scheme = toggled(self.theme.scheme)
        self.theme.apply(scheme)
        self.settings.theme = scheme
        self.settings.save(self.folder)

    # sync progress, arriving on the UI thread

    def _on_progress(self, progress: Progress) -> None:
        self.status_model.update(progress)
        self._refresh_soon()  # once a frame at most, however many pages arrive

    def _refresh_on_screen(self, *_args: Any) -> None:
        """What a sync may have changed: the screen in front, and the notices."""
        current = {
            "boards": self.boards_model,
            "board": self.board_model,
            "task": self.task_model,
        }.get(self.shell.ids.screens.current)
        if current is not None:
            current.refresh()
        if self.notices_model is not None:
            self.notices_model.refresh()

    # keys

    def _on_key_down(
        self, _window: Any, key: int, _scancode: int, _codepoint: str | None, modifiers: list[str]
    ) -> bool:
        action = shortcut(key, list(modifiers), self._text_focused())
        if action is None:
            return False
        if action == "sync":
            self.sync_now()
            return True
        if action == "quit":
            self.stop()
            return True
        screen = self.shell.ids.screens.current_screen
        return bool(screen.on_shortcut(action))

    def _text_focused(self) -> bool:
        """A text field has the focus: on a screen, or in a picker open over it."""
        from kivy.core.window import Window
        from kivy.uix.textinput import TextInput  # type: ignore[import-untyped]

        return any(
            isinstance(w, TextInput) and w.focus
            for top in Window.children
            for w in top.walk(restrict=True)
        )

    # lifetime

    def on_stop(self) -> None:
        from kivy.core.window import Window

        width, height = Window.size
        self.settings.window_width, self.settings.window_height = int(width), int(height)
        self.settings.save(self.folder)
        self.shell.ids.account_screen.detach()
        if self.sync is not None:
            self.sync.stop()
        if self.device is not None:
            self.device.close()

    # helpers

    def _show(self, name: str) -> None:
        self.shell.ids.screens.current = name

    def _connect(self) -> None:
        server = self.device.server if self.device is not None else None
        if self.sync is not None and server:
            self.sync.connect(server)

    def _user_text(self) -> str:
        name = self.device.username if self.device is not None else None
        if name and self.signin_model.has_session:
            return f"Signed in as {name}"
        if name:
            return f"{name} · signed out: sign in to sync"
        return "Working on this device only: sign in to sync"
