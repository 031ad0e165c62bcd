"""Notices: changes the backend refused or undid, with what happened and why."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypedDict

from client.device import Device
from client.store.notices import NoticeKind

from ._base import ViewModel
from ._text import TimeText, reason_text


class NoticeItem(TypedDict):
    id: str
    title: str
    """What happened: "Change not saved", "Change undone", "Board no longer shared"."""
    message: str
    reason: str
    """Why, in plain words."""
    reason_code: str
    time: str
    board: str | None
    task: str | None


class NoticesViewModel(ViewModel):
    def __init__(
        self, device: Device, *, format_time: Callable[[float], str] | None = None
    ) -> None:
        super().__init__()
        self.device = device
        self._format_time = format_time or TimeText()
        self.notices: list[NoticeItem] = []
        """Not yet dismissed, newest first."""
        self._reload()

    @property
    def count(self) -> int:
        return len(self.notices)

    def dismiss(self, notice: str) -> bool:
        return self._do(lambda: self.device.dismiss_notice(notice))

    def dismiss_all(self) -> bool:
        def act() -> None:
            for notice in self.notices:
                self.device.dismiss_notice(notice["id"])

        return self._do(act)

    def _load(self) -> None:
        found = sorted(
            self.device.notices(), key=lambda n: (n["created_at"], n["id"]), reverse=True
        )
        self.notices = [
            {
                "id": n["id"],
                "title": TITLES[n["kind"]],
                "message": n["message"],
                "reason": reason_text(n["reason"]),
                "reason_code": n["reason"],
                "time": self._format_time(n["created_at"] / 1000),
                "board": n["board"],
                "task": n["task"],
            }
            for n in found
        ]


TITLES = {
    NoticeKind.REJECTED: "Change not saved",
    NoticeKind.REMOVED: "Board no longer shared with you",
    NoticeKind.BACKEND: "Change undone",
}
"""What happened, by the notice's kind."""
