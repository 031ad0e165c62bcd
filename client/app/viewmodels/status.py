"""The status line: online or not, what sync is doing, what is waiting, the last error.

Fed with the sync engine's ``Progress`` (through the one adapter that hands it to the UI
thread) and refreshed after local actions, so the pending count moves at once.
"""

from __future__ import annotations

from collections.abc import Callable

from client.device import Device
from client.sync.engine import Progress

from ._base import ViewModel
from ._text import TimeText, plain_sync_error, plural

ONLINE_STATES = frozenset({"syncing", "up_to_date", "error"})
"""States in which the last thing the engine did was to talk to the server."""


class StatusViewModel(ViewModel):
    def __init__(
        self,
        device: Device | None = None,
        *,
        format_time: Callable[[float], str] | None = None,
    ) -> None:
        super().__init__()
        self._device = device
        self._format_time = format_time or TimeText()
        self.state = "offline"
        self.detail = ""
        self.pending = 0
        self.received = 0
        """Items pulled during the sync in progress (a first large sync counts up)."""
        self.last_synced: float | None = None
        self.error_text: str | None = None
        self._pulled_before = 0
        self._reload()

    def update(self, progress: Progress) -> None:
        """Take in the engine's progress; its values are copied, it may change later."""
        if progress.state == "syncing" and self.state != "syncing":
            self._pulled_before = progress.pulled
        self.state, self.detail = progress.state, progress.detail
        self.pending = progress.pending
        self.received = max(0, progress.pulled - self._pulled_before)
        self.last_synced = progress.last_synced or self.last_synced
        if progress.state == "up_to_date":
            self.error_text = None
        elif _is_error(progress):
            self.error_text = plain_sync_error(progress.detail)
        self._notify()

    def _load(self) -> None:
        if self._device is not None:
            self.pending = self._device.pending_count()

    @property
    def online(self) -> bool:
        return self.state in ONLINE_STATES

    @property
    def syncing(self) -> bool:
        return self.state in ("connecting", "syncing")

    @property
    def pending_text(self) -> str:
        if not self.pending:
            return "All changes sent"
        return f"{plural(self.pending, 'change')} waiting"

    @property
    def last_synced_text(self) -> str:
        if self.last_synced is None:
            return "Not synced yet"
        return f"Last synced {self._format_time(self.last_synced)}"

    @property
    def text(self) -> str:
        """The one line a user reads."""
        if self.state == "syncing":
            return self._syncing_text()
        if self.state == "connecting":
            return "Connecting…"
        synced = self.last_synced_text.lower() if self.last_synced is not None else ""
        waiting = f"{plural(self.pending, 'change')} waiting" if self.pending else ""
        if self.state == "up_to_date":
            return _join(waiting or "Up to date", synced)
        if self.state == "signed_out":
            kept = f"{plural(self.pending, 'change')} kept on this device" if self.pending else ""
            return _join("Sign in to sync", kept)
        if self.state == "error":
            return f"Error: {self.error_text or 'something went wrong'}"
        return _join("Offline", waiting or synced)

    def _syncing_text(self) -> str:
        if self.received:
            return f"Syncing… {plural(self.received, 'item')} received"
        if self.pending:
            return f"Syncing… {plural(self.pending, 'change')} to send"
        return "Syncing…"


def _is_error(progress: Progress) -> bool:
    """An offline or error report with a reason, or a session that expired (merely not
    being signed in is a state, not an error)."""
    if progress.state in ("offline", "error"):
        return bool(progress.detail)
    return progress.state == "signed_out" and "expired" in progress.detail


def _join(*parts: str) -> str:
    return " · ".join(part for part in parts if part)
