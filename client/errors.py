"""Errors of the client: each says what happened and what the user can do.

ClientError                  base
├── StoreError               the local database failed (disk full, read-only, corrupt):
│                            the action did not happen at all
├── NotFound                 no such board, task or comment in this profile
├── InvalidAction            the action itself is not valid (a title too long, ...)
├── SignInRequired           no session, or the session expired and refresh failed
│   └── PasswordChangeRequired   the password is a one-time one: choose a new one first
└── ServerUnreachable        the server could not be reached; everything is kept

A broken connection is httpx's own ``httpx.TransportError`` (``client/sync/transport.py``):
the engine turns it into ServerUnreachable, the live runner reconnects; no user meets it.
"""

from __future__ import annotations


class ClientError(Exception):
    pass


class StoreError(ClientError):
    pass


class NotFound(ClientError):
    pass


class InvalidAction(ClientError):
    pass


class SignInRequired(ClientError):
    pass


class PasswordChangeRequired(SignInRequired):
    """The password signed in with is a one-time one (``outpost users reset-password``):
    no session until a new password is set with it."""


class ServerUnreachable(ClientError):
    pass
