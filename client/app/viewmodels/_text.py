"""Words for the user: counts, times, errors and reasons."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta, tzinfo

from client.errors import ClientError, InvalidAction, NotFound

from ._validation import Refused

REASONS = {
    "invalid": "the server found the change not valid",
    "forbidden": "you are not allowed to do that on this board",
    "archived": "the board is archived",
    "id_conflict": "it clashed with another change",
    "unknown_type": "the server does not know this kind of change",
    "unsupported_schema": "the server does not support this version of the app",
    "removed_from_board": "you are no longer a member of the board",
    "wip_limit": "the board's limit on tasks in Doing was reached",
    "wip_limit_exceeded": "the board's limit on tasks in Doing was reached",
    "unreadable": "the server could not read the change, even on its own",
    "too_large": "the change is too large for the server to take",
    "server_error": "the server failed on the change every time it was sent",
}

# httpx's names for a connection that never came up, and for one that broke
_UNREACHABLE = ("unreachable", "cannot reach", "connecterror", "connecttimeout", "timed out")
_BROKEN = ("readerror", "writeerror", "remoteprotocolerror", "readtimeout")


def plural(count: int, word: str, words: str | None = None) -> str:
    """``1 change``, ``3 changes``, ``1,200 items``."""
    return f"{count:,} {word if count == 1 else words or word + 's'}"


def sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def reason_text(code: str) -> str:
    """Why the backend refused or undid a change, in words."""
    return sentence(REASONS.get(code, code.replace("_", " ")))


def plain_error(exc: ClientError) -> str:
    if isinstance(exc, Refused):  # the one error whose message is already plain
        return str(exc)
    if isinstance(exc, NotFound):
        found = re.match(r"no (\w+) ", str(exc))
        kind = found.group(1) if found else "item"
        return f"That {kind} is no longer on this device: a sync may have removed it"
    if isinstance(exc, InvalidAction):
        return f"That change is not valid ({exc})"
    return sentence(str(exc))


def plain_sync_error(detail: str) -> str:
    """A sync engine's detail (``upload failed: the server is busy: ...``) in plain words."""
    prefix = ""
    if detail.startswith("upload failed: "):
        prefix, detail = "Could not send your changes: ", detail.removeprefix("upload failed: ")
    lowered = detail.lower()
    if any(word in lowered for word in _BROKEN):
        words = "the connection to the server broke; trying again soon"
    elif any(word in lowered for word in _UNREACHABLE):
        words = "the server cannot be reached"
    elif "busy" in lowered:
        words = "the server is busy; trying again soon"
    elif "expired" in lowered:
        words = "your session has expired; sign in again"
    elif "clock" in lowered:
        words = "the server keeps refusing this device's clock; check its date and time"
    elif code := re.search(r"HTTP (\d{3})", detail):
        words = f"the server answered with an error (HTTP {code.group(1)})"
    else:
        words = detail.strip() or "something went wrong"
    return sentence(prefix + words) if prefix else sentence(words)


class TimeText:
    """``14:03`` today, ``yesterday 14:03``, ``3 Mar 14:03``, ``3 Mar 2024 14:03``.

    ``now`` and ``tz`` are there for tests (a fixed clock, UTC); the app uses the defaults.
    """

    def __init__(self, now: Callable[[], float] = time.time, tz: tzinfo | None = None) -> None:
        self._now = now
        self._tz = tz

    def __call__(self, epoch_s: float) -> str:
        when = datetime.fromtimestamp(epoch_s, self._tz)
        today = datetime.fromtimestamp(self._now(), self._tz).date()
        clock = when.strftime("%H:%M")
        if when.date() == today:
            return clock
        if when.date() == today - timedelta(days=1):
            return f"yesterday {clock}"
        day = f"{when.day} {when.strftime('%b')}"
        if when.year != today.year:
            day += f" {when.year}"
        return f"{day} {clock}"
