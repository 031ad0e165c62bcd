"""The bodies of the reminder-setting routes (``/v1/boards/{board}/reminders``)."""

from __future__ import annotations

import msgspec

__all__ = ["LeadRequest", "ReminderSettings"]

MAX_LEAD_S = 30 * 24 * 3600
"""The longest lead time a board may set: 30 days."""


class LeadRequest(msgspec.Struct, kw_only=True):
    """A board's new reminder lead time: whole seconds before the due date's 00:00 UTC,
    0 .. 2592000 (30 days); null goes back to the backend's default."""

    lead_s: int | None


class ReminderSettings(msgspec.Struct, kw_only=True):
    """A board's reminder lead time, and whether it is the backend's default."""

    board: str
    lead_s: int
    """Seconds before the due date's 00:00 UTC that the assignee is reminded."""
    default: bool
    """True when the board has no lead of its own (``OUTPOST_REMINDER_LEAD_S``)."""
    replanned: int = 0
    """After a change: how many planned reminders of the board were planned again."""
