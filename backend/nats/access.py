"""How a command reaches the NATS of a data folder: the server that runs on its store, or
one of its own, never a second server on the same store (see ``ownership.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend.nats.embedded import EmbeddedNats
from backend.nats.errors import StoreInUseError
from backend.nats.ownership import RunningServer, find_running

__all__ = ["StoreAccess", "use_store"]


@dataclass(frozen=True)
class StoreAccess:
    """The URL to connect to, and whose server it is."""

    url: str
    embedded: EmbeddedNats | None
    """A server this command started; it stops when the command ends."""
    shared: RunningServer | None
    """Another process's server, which this command only connects to."""

    def describe(self) -> str:
        if self.shared is not None:
            return f"the running {self.shared.describe()}"
        return f"embedded nats-server at {self.url}"


@asynccontextmanager
async def use_store(
    store_dir: Path, *, share: bool, supervise: bool = True, **options: Any
) -> AsyncIterator[StoreAccess]:
    """The NATS of ``store_dir`` for the time of the block.

    A server that a live process runs there is used (``share``) or refused with
    StoreInUseError naming it (not ``share``: this command would own the store). Otherwise
    a server is started here (``options`` go to ``EmbeddedNats``), after stopping a
    leftover, and stopped at the end.
    """
    running = find_running(store_dir)
    if running is not None and not running.leftover:
        if not share or running.url is None:
            raise StoreInUseError(store_dir, running.describe(), running)
        yield StoreAccess(running.url, None, running)
        return
    embedded = EmbeddedNats(store_dir, **options)
    await embedded.start(supervise=supervise)
    try:
        yield StoreAccess(embedded.url, embedded, None)
    finally:
        await embedded.stop()
