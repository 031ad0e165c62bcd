"""What a stream consumer component gives the shared runner."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import BigInteger, Column, MetaData, String, Table
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.db import Database
from protocol import Event


@dataclass(frozen=True)
class WrittenViews:
    """The rows a pull-serving component wrote to its views in one batch, handed to the live
    hub of its own process with the change notice: the page of changes for a connection
    caught up to ``after`` needs no read of the views (``PullService.read_shared``)."""

    generation: str
    after: int
    """The views' last version before the batch."""
    last: int
    """The last version the batch wrote."""
    rows: list[tuple[str, str, str, int, str | None, str, str | None]]
    """(kind, id, board, version, values, meta, audience) of every row written, by version."""


@dataclass
class Outcome:
    """What one batch did: events that cannot succeed, and what changed for the pokes."""

    poison: dict[int, str] = field(default_factory=dict)
    """stream seq -> why this event can never be applied (it goes to the fault stream)."""
    boards: set[str] = field(default_factory=set)
    usernames: set[str] = field(default_factory=set)
    written: WrittenViews | None = None
    """For the live hub beside a pull-serving component: what the batch wrote."""


@dataclass(frozen=True)
class RawRecord:
    """One stream message as it was stored, for components that keep raw bytes (the lake)."""

    seq: int
    subject: str
    data: bytes
    time_ms: int
    """When the stream stored it (UTC milliseconds)."""
    event: Event | None
    """The decoded event, or None when it is unreadable (``error`` says why)."""
    error: str | None


def positions_table(metadata: MetaData) -> Table:
    """How far a consumer has come in the stream, in its own database (a faulted event
    counts as passed)."""
    return Table(
        "positions",
        metadata,
        Column("component", String(32), primary_key=True),
        Column("seq", BigInteger, nullable=False),
    )


class Component(Protocol):
    """A consumer of ``OUTPOST_EVENTS`` with its own database."""

    name: str
    serves_pull: bool
    """Whether pull reads this component's views: if so, it holds back the watermark."""
    db: Database
    positions: Table
    """The component's ``positions_table``, written in the same transaction as its work."""

    async def prepare(self) -> None:
        """Create the component's tables (and anything else it needs) before consuming."""
        ...

    async def handle(self, conn: AsyncConnection, events: list[Event]) -> Outcome:
        """Apply a batch (stream order, each with ``seq``) inside the runner's transaction."""
        ...

    async def start_over(self, conn: AsyncConnection) -> None:
        """Forget everything (position included): the stream will be replayed from seq 1."""
        ...


class RawComponent(ABC):
    """A component that takes every message as stored, readable or not (the lake): the
    runner calls ``handle_raw`` instead of ``handle`` and faults nothing by itself.

    Declared by subclassing, never guessed from the methods a component happens to have:
    the runner asks ``isinstance(component, RawComponent)``. The subclass is a
    ``Component`` as well (it has ``name``, ``db``, ``positions``, ``handle``...)."""

    @abstractmethod
    async def handle_raw(self, conn: AsyncConnection, records: list[RawRecord]) -> Outcome:
        """Keep a batch of stored messages (stream order) inside the runner's transaction;
        ``Outcome.poison`` names those it cannot keep, to be faulted."""


class BackgroundWork(ABC):
    """A component with work of its own beside the stream (the gateway sends webhooks):
    whoever runs the component runs ``run_beside`` as a task next to its runner, and sets
    ``stop`` when it stops. Declared by subclassing, like ``RawComponent``."""

    @abstractmethod
    async def run_beside(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set."""
