"""Sign-in: a server, a username, a password; sign up, sign in, or continue offline.

The profile is one device store (the folder ``outpost client --data-dir`` reads too). A
profile used offline has no user yet: its pending work is folded as "(you)", and the
first sign-in makes it that user's and pushes it on the next sync. A profile that
belongs to one user is never handed to another: their work would be sent as theirs.

Only the sync thread talks to the server: the commands hand the sign-in to ``sign_in``
(the app's ``BackgroundSync.sign_in``, which runs it on the sync thread) and return a
``Future[bool]`` at once. The answer comes back through ``on_answer`` (the app's
``on_ui``), so the model changes, and ``changed`` fires, on the UI thread only. The
password is sent, never written anywhere, and forgotten once signed in.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Literal, Protocol

from client.device import Device
from client.errors import (
    ClientError,
    PasswordChangeRequired,
    ServerUnreachable,
    SignInRequired,
)
from client.store.settings import Setting, write_setting
from client.sync.runner import SignInAction

from . import _validation as check
from ._base import ViewModel
from ._text import plain_error

Outcome = Literal["signed_in", "offline"]

UNREACHABLE = "Cannot reach the server — you can continue offline"
TAKEN = "That username is taken"
WRONG_CREDENTIALS = "Wrong username or password"
CANCELLED = "Sign-in cancelled: try again, or continue offline"
ONE_TIME = "This password works once: choose a new password to finish signing in"


class SignIn(Protocol):
    """Sign up or in with ``server`` on the sync thread; the future tells how it went."""

    def __call__(
        self, server: str, action: SignInAction, username: str, password: str
    ) -> Future[None]: ...


class ChangePassword(Protocol):
    """Change the password with ``server`` on the sync thread, then sign in with it."""

    def __call__(
        self, server: str, username: str, password: str, new_password: str
    ) -> Future[None]: ...


def no_password_change(
    server: str, username: str, password: str, new_password: str
) -> Future[None]:
    raise RuntimeError("this sign-in view model was given no sync runner to change passwords")


def no_sign_in(server: str, action: SignInAction, username: str, password: str) -> Future[None]:
    """For a model that never signs in (a test of the form alone)."""
    raise RuntimeError("this sign-in view model was given no sync runner to sign in with")


def at_once(answer: Callable[[], None]) -> None:
    """``on_answer`` for a model used from one thread only."""
    answer()


class SignInViewModel(ViewModel):
    def __init__(
        self,
        profile_root: Path,
        *,
        device_factory: Callable[[Path], Device] = Device,
        sign_in: SignIn = no_sign_in,
        change_password: ChangePassword = no_password_change,
        on_answer: Callable[[Callable[[], None]], None] = at_once,
        default_server: str = "",
    ) -> None:
        """``sign_in`` runs a sign-in on the sync thread; ``on_answer`` runs a function on
        the UI thread (the app's ``on_ui``)."""
        super().__init__()
        self._sign_in = sign_in
        self._change_password = change_password
        self._on_answer = on_answer
        self.device: Device | None = None
        self.server_url = default_server
        self.username = ""
        self.password = ""
        self.field_errors: dict[str, str] = {}
        self.busy = False
        self.offer_offline = False
        """True once the server could not be reached: the screen shows "continue offline"."""
        self.must_change_password = False
        """The password given is a one-time one (``outpost users reset-password``): the
        screen asks for a new one (``new_password``) and ``set_new_password`` finishes."""
        self.new_password = ""
        self.outcome: Outcome | None = None
        self._open_error: str | None = None
        self._work: Future[None] | None = None
        """The sign-in under way, to cancel."""
        self._cancelled = False
        try:
            self.device = device_factory(profile_root)
        except ClientError as exc:
            self.error = self._open_error = plain_error(exc)
        else:
            self.server_url = self.device.server or default_server
            self.username = self.device.username or ""

    @property
    def has_session(self) -> bool:
        """The profile is signed in already: the app can skip this screen."""
        return self.device is not None and self.device.store.setting(Setting.TOKEN) is not None

    def sign_up(self) -> Future[bool]:
        return self._authenticate("signup")

    def sign_in(self) -> Future[bool]:
        return self._authenticate("login")

    @property
    def can_cancel(self) -> bool:
        """A sign-in is under way: the screen shows Cancel."""
        return self.busy

    @property
    def can_continue_offline(self) -> bool:
        """ "Continue offline" works whatever the server does, even while it is asked."""
        return self.device is not None

    def cancel(self) -> bool:
        """Stop waiting for the server: the sign-in is cancelled on the sync thread, the
        form is usable again and "continue offline" is offered."""
        work = self._work
        if not self.busy or work is None:
            return False
        self._cancelled = True
        work.cancel()  # its done-callback (on the UI thread) finishes the model
        if not work.cancelled():  # it had finished already: its answer stands
            self._cancelled = False
            return False
        return True

    def continue_offline(self) -> bool:
        """Use the profile without an account; a valid server address is kept for later.
        A sign-in under way is cancelled first."""
        if self.busy:
            self.cancel()
            self.busy = False
        self.field_errors, self.error = {}, self._open_error
        if self.device is None:
            self._notify()
            return False
        try:
            self.server_url = check.server_url(self.server_url)
            _remember_server(self.device, self.server_url)
        except check.Refused:
            pass  # nothing to remember: the user can enter it when signing in later
        except ClientError as exc:
            self.error = plain_error(exc)
        self.outcome = "offline" if self.error is None else None
        self._notify()
        return self.error is None

    def set_new_password(self) -> Future[bool]:
        """After a one-time password: set ``new_password`` with it, then sign in with the
        new one. Every other session of the account ends."""
        done: Future[bool] = Future()
        credentials = self._validated()
        if credentials is not None and self.new_password == credentials[2]:
            self.field_errors["new_password"] = "Choose a password other than the one-time one"
        elif credentials is not None:
            try:
                check.password(self.new_password)
            except check.Refused as exc:
                self.field_errors["new_password"] = str(exc)
        if self.field_errors:
            self.error = next(iter(self.field_errors.values()))
        if credentials is None or self.field_errors or self.busy or self.device is None:
            self._notify()
            done.set_result(False)
            return done
        server, username, password = credentials
        self.busy, self.error, self.offer_offline, self._cancelled = True, None, False, False
        self._notify()
        work = self._change_password(server, username, password, self.new_password)
        self._work = work
        work.add_done_callback(
            lambda finished: self._on_answer(lambda: self._finish(finished, "login", server, done))
        )
        return done

    # sign up and sign in

    def _authenticate(self, action: SignInAction) -> Future[bool]:
        done: Future[bool] = Future()
        credentials = self._validated()
        if self.device is None:
            self.error = self._open_error
        if credentials is None or self.device is None or self.busy:
            self._notify()
            done.set_result(False)
            return done
        server, username, password = credentials
        self.busy, self.error, self.offer_offline = True, None, False
        self._cancelled = False
        self._notify()
        work = self._sign_in(server, action, username, password)
        self._work = work
        work.add_done_callback(
            lambda finished: self._on_answer(lambda: self._finish(finished, action, server, done))
        )
        return done

    def _validated(self) -> tuple[str, str, str] | None:
        self.error, self.field_errors = None, {}
        fields: dict[str, tuple[Callable[[str], str], str]] = {
            "server_url": (check.server_url, self.server_url),
            "username": (check.username, self.username),
            "password": (check.password, self.password),
        }
        valid: list[str] = []
        for name, (validate, value) in fields.items():
            try:
                valid.append(validate(value))
            except check.Refused as exc:
                self.field_errors[name] = str(exc)
        owner = self.device.username if self.device else None
        if not self.field_errors and owner is not None and owner != valid[1]:
            self.field_errors["username"] = (
                f"This profile belongs to {owner}: sign in as {owner}, "
                "or start the app with another data folder"
            )
        if self.field_errors:
            self.error = next(iter(self.field_errors.values()))
            return None
        return valid[0], valid[1], valid[2]

    def _finish(self, work: Future[None], action: str, server: str, done: Future[bool]) -> None:
        if work is not self._work:
            done.set_result(False)  # an older sign-in, cancelled: a newer one is the one
            return
        self.busy, self._work = False, None
        if work.cancelled() and self._cancelled:
            self._cancelled = False
            if self.outcome != "offline":
                self.error, self.offer_offline = CANCELLED, True
                self._notify()
            done.set_result(False)
            return
        failure = None if work.cancelled() else work.exception()
        if failure is not None and not isinstance(failure, ClientError):
            self._notify()
            done.set_exception(failure)  # a programming error: not for the user's eyes
            return
        signed_in = not work.cancelled() and failure is None
        if signed_in and self.device is not None:
            try:
                _remember_server(self.device, server)
            except ClientError as exc:
                failure, signed_in = exc, False
        if signed_in:
            self.password, self.outcome, self.server_url = "", "signed_in", server
            self.new_password, self.must_change_password = "", False
        elif failure is None:
            self.error = "Signing in was interrupted: try again"
        else:
            self.error = self._explain(failure, action)
            self.offer_offline = isinstance(failure, ServerUnreachable)
            if isinstance(failure, PasswordChangeRequired):
                self.must_change_password = True
        self._notify()
        done.set_result(signed_in)

    @staticmethod
    def _explain(failure: ClientError, action: str) -> str:
        if isinstance(failure, ServerUnreachable):
            return UNREACHABLE
        if isinstance(failure, PasswordChangeRequired):
            return ONE_TIME
        if isinstance(failure, SignInRequired):
            detail = str(failure)
            if action == "signup" and "taken" in detail:
                return TAKEN
            if action == "login" and "wrong username or password" in detail.lower():
                return WRONG_CREDENTIALS
            return f"The server said no: {detail}"
        return plain_error(failure)


def _remember_server(device: Device, server: str) -> None:
    with device.store.write() as conn:
        write_setting(conn, Setting.SERVER, server)
