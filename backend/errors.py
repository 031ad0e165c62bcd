"""Errors of the backend: every exception class under ``backend/`` derives from BackendError.

    BackendError                      base; ``status_code`` and a ``detail`` for the user
    ├── Unauthorized           401    bad credentials, expired or unknown token
    ├── Forbidden              403    not the admin (``bff/ops/guards.py``)
    ├── Conflict               409    username taken
    ├── PasswordRefused        422    a new password outside 8..128 (``bff/auth/services.py``)
    ├── BadRequest             400    malformed request (the batch, a parameter)
    ├── NoSuchUser             404    the member check names no account (``bff/users.py``)
    ├── UnprocessableBatch     422    a push batch that cannot be answered event by event
    ├── UnsupportedProtocol    426    a protocol version outside what the server speaks
    ├── RateLimited            429    too many requests; ``retry_after`` seconds
    ├── StreamUnavailable      503    NATS JetStream cannot store events now; ``retry_after``
    │   what a command tells its operator (never an HTTP answer):
    ├── ComponentBusy                 another process runs the component a command would change
    ├── BackupError                   `outpost backend backup|restore` cannot do it (`backup.py`)
    ├── LeaseLost                     a consumer's lease went (its database restarted): it stops
    ├── DeliveryGap                   a consumer's batch skips events: it subscribes again
    ├── LaunchError                   a backend child process exited or did not answer
    ├── EmbeddedNatsError             the embedded nats-server failed (``nats/errors.py``)
    ├── FaultsError                   ``outpost faults`` cannot do it (``faults/stream.py``)
    ├── UnknownUser                   ``outpost users`` names no account (``bff/auth/reset.py``)
    ├── MigrationError                a database from a newer Outpost (``migrations/``)
    ├── LakeError                     ``outpost lake`` cannot do it (``lake/errors.py``)
    ├── LakeFileError                 a lake file or line not in the lake's format (same)
    │   the external service gateway (``gateway/errors.py``):
    ├── GatewayError           400    base of the gateway's
    │   ├── SignatureRefused   401    an inbound delivery whose signature does not verify
    │   ├── NotBoardOwner      403    only a board's owner registers webhooks and sources
    │   ├── NotRegistered      404    no such source, board, webhook, delivery or login
    │   ├── TargetRefused      422    a webhook URL outside ``OUTPOST_WEBHOOK_ALLOW``
    │   └── DeliveryUnreadable 422    an inbound body its source's mapping cannot read
    │   the orchestrator's reminder setting (``orchestrator/errors.py``):
    └── ReminderSettingError   400    base of the reminder-setting routes'
        ├── NotBoardOwner      403    only a board's owner sets its reminder lead time
        ├── UnknownBoard       404    no such board
        └── LeadOutOfRange     422    a lead time outside 0 .. 30 days

The HTTP layer turns them into ``{"status_code", "detail"}`` with ``Retry-After`` where set.
A test walks every module under ``backend/`` and fails on an exception class outside this
tree (``tests/backend/test_errors.py``).
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


class NoSuchUser(BackendError):
    status_code = 404


class UnprocessableBatch(BackendError):
    status_code = 422


class UnsupportedProtocol(BackendError):
    status_code = 426


class RateLimited(BackendError):
    status_code = 429


class StreamUnavailable(BackendError):
    status_code = 503


class LeaseLost(BackendError):
    """A consumer found, in the transaction that would commit a batch, that its lease is no
    longer held by its lease connection (PostgreSQL restarted, or the session was ended):
    another process may hold it now, so the batch is rolled back and the runner waits for
    the lease again instead of consuming beside the new holder."""


class DeliveryGap(BackendError):
    """A batch of the event stream does not go on right after the consumer's position (the
    events in between went to another consumer of the same durable): nothing is committed
    and the runner subscribes again from its position."""


class ComponentBusy(BackendError):
    """Another process runs the component this command would change under it."""


class LaunchError(BackendError):
    """The backend exited, or did not answer in time; the message ends with its log."""
