"""Errors of the orchestrator's routes, under ``backend.errors.BackendError``.

BackendError
└── ReminderSettingError          base of the reminder-setting routes' errors
    ├── NotBoardOwner       403   only a board's owner sets its reminder lead time
    ├── UnknownBoard        404   no such board
    └── LeadOutOfRange      422   a lead time outside 0 .. 30 days
"""

from __future__ import annotations

from backend.errors import BackendError

__all__ = ["LeadOutOfRange", "NotBoardOwner", "ReminderSettingError", "UnknownBoard"]


class ReminderSettingError(BackendError):
    status_code = 400


class NotBoardOwner(ReminderSettingError):
    status_code = 403


class UnknownBoard(ReminderSettingError):
    status_code = 404


class LeadOutOfRange(ReminderSettingError):
    status_code = 422
