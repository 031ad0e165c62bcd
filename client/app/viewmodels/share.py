"""The share dialog: a username, checked with the server before the share is queued.

The check (``GET /v1/users/{username}``) runs on the sync thread, the one that talks to the
server: ``check_user`` (the app's ``BackgroundSync.check_user``) returns a future at once,
and the answer comes back through ``on_answer`` (the app's ``on_ui``). A name the server does
not know is not queued; when the server cannot be asked (offline, signed out, too many
checks), the share is queued anyway and ``note`` says the server checks it when it is sent.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from client.device import Device
from client.errors import ClientError, InvalidAction

from . import _validation as check
from ._base import ViewModel
from ._identity import me, require_owner
from ._text import plain_error

CheckUser = Callable[[str], "Future[bool]"]

NOT_CHECKED = (
    "Could not check the name now: the share is queued, and refused later if no one has it"
)


def unchecked(username: str) -> Future[bool]:
    """For a device that cannot ask a server (no account yet): the check cannot be made."""
    from client.errors import ServerUnreachable

    answer: Future[bool] = Future()
    answer.set_exception(ServerUnreachable("not signed in"))
    return answer


class ShareViewModel(ViewModel):
    def __init__(
        self,
        device: Device,
        board: str,
        *,
        check_user: CheckUser = unchecked,
        on_answer: Callable[[Callable[[], None]], None] = lambda answer: answer(),
    ) -> None:
        super().__init__()
        self.device = device
        self.board = board
        self._check_user = check_user
        self._on_answer = on_answer
        self.username = ""
        self.busy = False
        """A check is under way: the dialog's Share button waits."""
        self.note: str | None = None
        """After a share queued without a check: why, in words."""
        self.shared: str | None = None
        """The username last shared with (the dialog closes)."""

    def submit(self, username: str | None = None) -> Future[bool]:
        """Check the name, then queue the share; the future says whether it was queued."""
        done: Future[bool] = Future()
        if username is not None:
            self.username = username
        self.error, self.note, self.shared = None, None, None
        try:
            name = self._validated()
        except ClientError as exc:
            self.error = plain_error(exc)
            self._notify()
            done.set_result(False)
            return done
        if self.busy:
            done.set_result(False)
            return done
        self.busy = True
        self._notify()
        work = self._check_user(name)
        work.add_done_callback(
            lambda answer: self._on_answer(lambda: self._finish(answer, name, done))
        )
        return done

    def _validated(self) -> str:
        found = self.device.entity("board", self.board)
        board: dict[str, Any] | None = None if found is None else dict(found["values"])
        require_owner(self.device, board, "share it")
        name = check.username(self.username)
        if name == me(self.device):
            raise check.Refused("That is you: the board is yours already")
        if name in {m["username"] for m in self.device.members(self.board)}:
            raise check.Refused(f"{name} is already on this board")
        return name

    def _finish(self, answer: Future[bool], name: str, done: Future[bool]) -> None:
        self.busy = False
        failure = None if answer.cancelled() else answer.exception()
        if failure is not None and not isinstance(failure, ClientError):
            self._notify()
            done.set_exception(failure)  # a programming error: not for the user's eyes
            return
        if isinstance(failure, InvalidAction):
            self.error = plain_error(failure)
        elif failure is None and not answer.cancelled() and not answer.result():
            self.error = f"No user named {name}: check the spelling"
        else:
            if failure is not None or answer.cancelled():
                self.note = NOT_CHECKED
            try:
                self.device.share_board(self.board, name)
                self.shared, self.username = name, ""
            except ClientError as exc:
                self.error = plain_error(exc)
        self._notify()
        done.set_result(self.shared is not None)
