"""Errors of the backend, each with the HTTP status a client sees.

    BackendError                      base; ``status_code`` and a ``detail`` for the user
    ├── Unauthorized           401    bad credentials, expired or unknown token
    ├── Conflict               409    username taken
    ├── BadRequest             400    malformed request (the batch, a parameter)
    ├── UnprocessableBatch     422    a push batch that cannot be answered event by event
    ├── UnsupportedProtocol    426    a protocol version outside what the server speaks
    ├── RateLimited            429    too many requests; ``retry_after`` seconds
    └── StreamUnavailable      503    NATS JetStream cannot store events now; ``retry_after``

The HTTP layer turns them into ``{"status_code", "detail"}`` with ``Retry-After`` where set.
"""

from __future__ import annotations


class BackendError(Exception):
    status_code = 500

    def __init__(self, detail: str, *, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after


class Unauthorized(BackendError):
    status_code = 401


class Conflict(BackendError):
    status_code = 409


class BadRequest(BackendError):
    status_code = 400


class UnprocessableBatch(BackendError):
    status_code = 422


class UnsupportedProtocol(BackendError):
    status_code = 426


class RateLimited(BackendError):
    status_code = 429


class StreamUnavailable(BackendError):
    status_code = 503
