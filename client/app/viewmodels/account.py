"""The account: who is signed in, sign out, change the password, switch to another account.

A device id belongs to the first user who syncs with it (the server refuses it to anyone
else), so each account has its own profile folder, with its own device id: the app's first
profile is its home folder, another account's is a sibling folder named after it
(``default@bob``). Switching never moves changes between accounts: what the old account
has not sent stays in its profile, announced, and goes when it signs in there again.

The network calls run on the sync thread: ``log_out`` and ``change_password`` (the app's
``BackgroundSync``) return futures at once; their answers come back through ``on_answer``.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from client.device import Device
from client.errors import ClientError, StoreError
from client.store.database import STORE_FILE

from . import _validation as check
from ._base import ViewModel
from ._text import plain_error, plural

LogOut = Callable[[], "Future[bool]"]
ChangePassword = Callable[[str, str, str, str], "Future[None]"]
"""``(server, username, password, new_password)``."""


@dataclass(frozen=True)
class ProfileItem:
    folder: Path
    username: str | None
    """None: a profile used offline, not yet any account's."""
    waiting: int
    """Changes not yet confirmed by the server, kept in this profile."""
    current: bool


def profile_folder(home: Path, username: str) -> Path:
    """The profile folder of ``username``: the home folder if it is theirs or no one's yet,
    else ``<home>@<username>`` beside it."""
    if _owner(home) in (None, username):
        return home
    return home.with_name(f"{home.name}@{username}")


def profiles(home: Path, current: Path) -> list[ProfileItem]:
    """The home profile, then every account's beside it, by name."""
    folders = [home, *sorted(home.parent.glob(f"{home.name}@*"))]
    found = []
    for folder in folders:
        try:
            device = Device(folder)
        except ClientError:
            continue  # a broken folder is not an account to switch to
        try:
            found.append(
                ProfileItem(folder, device.username, device.pending_count(), folder == current)
            )
        finally:
            device.close()
    return found


def _owner(folder: Path) -> str | None:
    if not (folder / STORE_FILE).exists():
        return None
    try:
        device = Device(folder)
    except StoreError:
        return None
    try:
        return device.username
    finally:
        device.close()


class AccountViewModel(ViewModel):
    def __init__(
        self,
        device: Device,
        home: Path,
        *,
        log_out: LogOut,
        change_password: ChangePassword,
        on_answer: Callable[[Callable[[], None]], None] = lambda answer: answer(),
    ) -> None:
        super().__init__()
        self.device = device
        self.home = home
        self._log_out = log_out
        self._change_password = change_password
        self._on_answer = on_answer
        self.busy = False
        self.message: str | None = None
        """What happened, in words: signed out and what was kept, the password changed."""
        self.signed_out = False
        self.switch_to: Path | None = None
        self.switch_name: str | None = None
        """After ``switch``: the account's username, for its sign-in form."""
        """After ``switch``: the profile folder the app reopens on."""

    @property
    def username(self) -> str | None:
        return self.device.username

    @property
    def kept_text(self) -> str:
        """What this profile still holds for the server, announced at sign-out and switch."""
        waiting, sent = self.device.pending_counts()
        if not waiting and not sent:
            return ""
        parts = []
        if waiting:
            parts.append(f"{plural(waiting, 'change')} waiting to send")
        if sent:
            parts.append(f"{plural(sent, 'change')} sent, awaiting confirmation")
        who = self.username or "this profile"
        return f"{' and '.join(parts)} kept on this device for {who}: sent at the next sign-in"

    # sign out

    def sign_out(self) -> Future[bool]:
        """End the session (on the server when it can be reached) and forget its tokens;
        unsynced changes are kept and ``message`` says how many."""
        done: Future[bool] = Future()
        if self.busy:
            done.set_result(False)
            return done
        self.busy, self.error, self.message = True, None, None
        self._notify()
        work = self._log_out()
        work.add_done_callback(
            lambda answer: self._on_answer(lambda: self._signed_out(answer, done))
        )
        return done

    def _signed_out(self, answer: Future[bool], done: Future[bool]) -> None:
        self.busy = False
        failure = None if answer.cancelled() else answer.exception()
        if failure is not None and not isinstance(failure, ClientError):
            self._notify()
            done.set_exception(failure)
            return
        ended = failure is None and not answer.cancelled() and answer.result()
        where = "Signed out" if ended else (
            "Signed out on this device (the server could not be reached to end the session)"
        )  # fmt: skip
        kept = self.kept_text
        self.message = f"{where}. {kept[:1].upper()}{kept[1:]}." if kept else f"{where}."
        self.signed_out = True
        self._notify()
        done.set_result(True)

    # switch account

    def switch(self, username: str) -> bool:
        """Open ``username``'s profile (made if new, with its own device id): ``switch_to``
        names its folder; this profile's unsent changes stay here, announced in
        ``message``."""

        def act() -> None:
            name = check.username(username)
            if name == self.username:
                raise check.Refused(f"You are signed in as {name} already")
            kept = self.kept_text
            self.switch_to, self.switch_name = profile_folder(self.home, name), name
            if self.switch_to == self.device.folder:  # the home profile, no one's yet
                self.switch_to = self.home.with_name(f"{self.home.name}@{name}")
            self.message = f"{kept[:1].upper()}{kept[1:]}." if kept else None

        return self._do(act)

    def profiles(self) -> list[ProfileItem]:
        """Every account's profile on this computer, to switch to."""
        return profiles(self.home, self.device.folder)

    # change password

    def change_password(self, current: str, new: str, again: str) -> Future[bool]:
        """Change the password (every session of the account ends), then sign in again
        here with the new one."""
        done: Future[bool] = Future()
        try:
            username = self.username
            if username is None or self.device.server is None:
                raise check.Refused("Sign in first: this profile has no account yet")
            check.password(new)
            if new != again:
                raise check.Refused("The new passwords differ")
            if new == current:
                raise check.Refused("Choose a password other than the current one")
        except check.Refused as exc:
            self.error = plain_error(exc)
            self._notify()
            done.set_result(False)
            return done
        if self.busy:
            done.set_result(False)
            return done
        self.busy, self.error, self.message = True, None, None
        self._notify()
        work = self._change_password(self.device.server, username, current, new)
        work.add_done_callback(lambda answer: self._on_answer(lambda: self._changed(answer, done)))
        return done

    def _changed(self, answer: Future[None], done: Future[bool]) -> None:
        self.busy = False
        failure = None if answer.cancelled() else answer.exception()
        if failure is not None and not isinstance(failure, ClientError):
            self._notify()
            done.set_exception(failure)
            return
        if failure is None and not answer.cancelled():
            self.message = "Password changed: every other session has ended; signed in again here"
        elif failure is not None and "wrong username or password" in str(failure).lower():
            self.error = "The current password is wrong"
        else:
            self.error = plain_error(failure) if failure else "Interrupted: try again"
        self._notify()
        done.set_result(self.error is None)
