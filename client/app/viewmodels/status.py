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
        """Changes not yet confirmed by the server: ``waiting`` to send, and ``sent``."""
        self.sent = 0
        """Of ``pending``: sent and stored by the server, awaiting the pull that confirms
        them (nothing is lost if the app closes now; they need no more sending)."""
        self.has_account = False
        """Whether this profile has an account yet; before one, there is nothing to sync
        and no sync controls are shown."""
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
        self.sent = min(progress.sent, progress.pending)
        self.received = max(0, progress.pulled - self._pulled_before)
        self.last_synced = progress.last_synced or self.last_synced
        if progress.state == "up_to_date":
            self.error_text = None
        elif _is_error(progress):
            self.error_text = plain_sync_error(progress.detail)
        self._notify()

    def _load(self) -> None:
        if self._device is not None:
            waiting, self.sent = self._device.pending_counts()
            self.pending = waiting + self.sent
            self.has_account = self._device.username is not None

    @property
    def online(self) -> bool:
        return self.state in ONLINE_STATES

    @property
    def syncing(self) -> bool:
        return self.state in ("connecting", "syncing")

    @property
    def waiting(self) -> int:
        """Changes waiting to be sent."""
        return self.pending - self.sent

    @property
    def show_sync_controls(self) -> bool:
        """ "Sync now" and the like: only once the profile has an account (or a sync
        reported anything but offline)."""
        return self.has_account or self.state != "offline"

    @property
    def state_text(self) -> str:
        """One word for the connection: what the status bar shows first."""
        if self.state == "signed_out":
            return "Signed out"
        return "Online" if self.online else "Offline"

    @property
    def pending_text(self) -> str:
        """What is not yet confirmed, the two kinds apart: "2 changes waiting to send",
        "3 changes sent, awaiting confirmation", both, or "All changes sent"."""
        parts = []
        if self.waiting:
            parts.append(f"{plural(self.waiting, 'change')} waiting to send")
        if self.sent:
            parts.append(f"{plural(self.sent, 'change')} sent, awaiting confirmation")
        return _join(*parts) or "All changes sent"

    @property
    def last_synced_text(self) -> str:
        if self.last_synced is None:
            return "Not synced yet"
        return f"Last synced {self._format_time(self.last_synced)}"

    @property
    def activity_text(self) -> str:
        """What sync is doing, without the state word, the pending counts or the last-sync
        time (the status bar shows those apart): "Syncing… 3 items received",
        "Connecting…", "Sign in to sync", or "" when there is nothing more to say."""
        if self.state == "syncing":
            return self._syncing_text()
        if self.state == "connecting":
            return "Connecting…"
        if self.state == "signed_out":
            return "Sign in to sync"
        if self.state == "up_to_date" and not self.pending:
            return "Up to date"
        return ""

    @property
    def text(self) -> str:
        """The one line a user reads, when there is room for one only."""
        if self.state == "syncing":
            return self._syncing_text()
        if self.state == "connecting":
            return "Connecting…"
        synced = self.last_synced_text.lower() if self.last_synced is not None else ""
        waiting = self.pending_text if self.pending else ""
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
        if self.waiting:
            return f"Syncing… {plural(self.waiting, 'change')} to send"
        return "Syncing…"


def _is_error(progress: Progress) -> bool:
    """An offline or error report with a reason, or a session that expired (merely not
    being signed in is a state, not an error)."""
    if progress.state in ("offline", "error"):
        return bool(progress.detail)
    return progress.state == "signed_out" and "expired" in progress.detail


def _join(*parts: str) -> str:
    return " · ".join(part for part in parts if part)
