"""The list of boards: create, rename, archive, share; who is on each."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypedDict

from client.device import Device
from client.errors import ClientError

from . import _validation as check
from ._base import ViewModel
from ._identity import me, require_owner
from ._text import plain_error
from .share import CheckUser, ShareViewModel, unchecked


class BoardItem(TypedDict):
    id: str
    name: str
    archived: bool
    owner: str
    is_owner: bool
    wip_limit: int | None


class MemberItem(TypedDict):
    username: str
    role: str
    is_you: bool


class BoardsViewModel(ViewModel):
    def __init__(
        self,
        device: Device,
        *,
        check_user: CheckUser = unchecked,
        on_answer: Callable[[Callable[[], None]], None] = lambda answer: answer(),
    ) -> None:
        """``check_user`` asks the server whether a username exists (the app's
        ``BackgroundSync.check_user``); ``on_answer`` runs its answer on the UI thread."""
        super().__init__()
        self.device = device
        self._check_user = check_user
        self._on_answer = on_answer
        self.boards: list[BoardItem] = []
        """Open boards first, then archived ones, each by name."""
        self.selected: str | None = None
        self._reload()

    def select(self, board: str | None) -> None:
        self.selected = board
        self._notify()

    def create(self, name: str) -> str | None:
        """A new board, selected; its id, or None (see ``error``)."""
        done, board = self._run(lambda: self.device.create_board(check.board_name(name)))
        if done and board is not None:
            self.select(board)
        return board

    def rename(self, board: str, name: str) -> bool:
        def act() -> None:
            require_owner(self.device, self._board(board), "rename it")
            self.device.rename_board(board, check.board_name(name))

        return self._do(act)

    def archive(self, board: str) -> bool:
        return self._set_archived(board, True)

    def unarchive(self, board: str) -> bool:
        return self._set_archived(board, False)

    def share(self, board: str, username: str) -> bool:
        def act() -> None:
            require_owner(self.device, self._board(board), "share it")
            name = check.username(username)
            if name in {m["username"] for m in self.members(board)}:
                raise check.Refused(f"{name} is already on this board")
            self.device.share_board(board, name)

        return self._do(act)

    def set_wip_limit(self, board: str, limit: int | str | None) -> bool:
        """The most tasks in Doing per assignee (1..100), or none; the owner only."""

        def act() -> None:
            require_owner(self.device, self._board(board), "set its limit on tasks in Doing")
            self.device.set_wip_limit(board, check.wip_limit(limit))

        return self._do(act)

    def share_dialog(self, board: str) -> ShareViewModel:
        """The share dialog of ``board``: the name is checked with the server before the
        share is queued (``share`` queues it unchecked)."""
        dialog = ShareViewModel(
            self.device, board, check_user=self._check_user, on_answer=self._on_answer
        )
        dialog.subscribe(self.refresh)
        return dialog

    def unshare(self, board: str, username: str) -> bool:
        def act() -> None:
            found = self._board(board)
            require_owner(self.device, found, "remove people from it")
            if found is not None and username == found["owner"]:
                raise check.Refused("The owner cannot be removed from their own board")
            self.device.unshare_board(board, username)

        return self._do(act)

    def members(self, board: str) -> list[MemberItem]:
        """Who is on a board, the owner first."""
        you = me(self.device)
        try:
            members = self.device.members(board)
        except ClientError as exc:
            self.error = plain_error(exc)
            return []
        return [
            {"username": m["username"], "role": m["role"], "is_you": m["username"] == you}
            for m in members
        ]

    def _set_archived(self, board: str, archived: bool) -> bool:
        def act() -> None:
            doing = "archive it" if archived else "unarchive it"
            require_owner(self.device, self._board(board), doing)
            self.device.archive_board(board, archived)

        return self._do(act)

    def _board(self, board: str) -> dict[str, Any] | None:
        found = self.device.entity("board", board)
        return None if found is None else dict(found["values"])

    def _load(self) -> None:
        you = me(self.device)
        boards = sorted(self.device.boards(), key=lambda b: b["archived"])  # stable: by name
        self.boards = [
            {
                "id": b["id"],
                "name": b["name"],
                "archived": b["archived"],
                "owner": b["owner"],
                "is_owner": b["owner"] == you,
                "wip_limit": b["wip_limit"],
            }
            for b in boards
        ]
        if self.selected is not None and all(b["id"] != self.selected for b in self.boards):
            self.selected = None  # the board went away (access lost)
