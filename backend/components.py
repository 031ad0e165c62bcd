"""The stream consumers of the backend, by name: what each is and how to build it.

Every component owns its own database (SQLite ``<data>/<name>.db`` or the PostgreSQL
schema ``outpost_<name>``) and consumes ``OUTPOST_EVENTS`` through the one shared
``ConsumerRunner``. ``outpost backend`` runs the ones named in ``OUTPOST_COMPONENTS`` (all
by default): beside the BFF, or in its child process those of ``OUTPOST_CONSUMERS_APART``;
``outpost backend consume --components lake`` runs some alone, which is how they scale out
or restart on their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from nats.aio.client import Client as NatsClient
from nats.js.client import JetStreamContext

from backend.config import Settings
from backend.consumers.component import Component
from backend.db import Database
from backend.nats.publisher import Publisher
from backend.writer import EventWriter


@dataclass(frozen=True)
class ComponentContext:
    settings: Settings
    js: JetStreamContext
    """For components that read the stream's state (the lake)."""
    publisher: Publisher
    """For components that publish (the saga's events, compensations): the one seam."""
    writer: EventWriter | None = None
    """For components that write events as a push would (the orchestrator, the gateway):
    the push's decisions on behalf of a named user (``backend.writer``). Built where the
    BFF's database is open."""
    nc: NatsClient | None = None
    """For components that keep timers on JetStream (the orchestrator)."""


@dataclass(frozen=True)
class ComponentSpec:
    name: str
    summary: str
    build: Callable[[Database, ComponentContext], Component]


def _projector(db: Database, context: ComponentContext) -> Component:
    from backend.projector.projector import Projector

    return Projector(db, context.publisher)


def _workload(db: Database, context: ComponentContext) -> Component:
    from backend.saga.workload import Workload

    return Workload(db, context.publisher)


def _lake(db: Database, context: ComponentContext) -> Component:
    from backend.lake.component import Lake

    return Lake(db, context.settings.data_dir / "lake", context.js)


def _gateway(db: Database, context: ComponentContext) -> Component:
    from backend.gateway.allow import AllowList
    from backend.gateway.component import Gateway

    settings = context.settings
    return Gateway(
        db,
        context.publisher,
        allow=AllowList.parse(settings.webhook_allow),
        retries=settings.webhook_retries,
        timeout_s=settings.webhook_timeout_s,
        nc=context.nc,
    )


def _orchestrator(db: Database, context: ComponentContext) -> Component:
    from backend.orchestrator.component import Orchestrator
    from backend.orchestrator.timers import Timers

    if context.writer is None or context.nc is None:
        raise ValueError("the orchestrator needs the backend writer and a NATS connection")
    timers = Timers(context.nc)
    return Orchestrator(db, context.writer, timers, lead_s=context.settings.reminder_lead_s)


SPECS: dict[str, ComponentSpec] = {
    spec.name: spec
    for spec in (
        ComponentSpec(
            "projector",
            "the task views that pull serves, and the saga's compensator",
            _projector,
        ),
        ComponentSpec("workload", "the WIP-limit check of the saga", _workload),
        ComponentSpec("lake", "every event archived raw, by UTC date and hour", _lake),
        ComponentSpec("gateway", "outbound webhooks, queued and retried per endpoint", _gateway),
        ComponentSpec(
            "orchestrator",
            "due-date reminders and recurring tasks, timers on JetStream schedules",
            _orchestrator,
        ),
    )
}
NAMES = tuple(SPECS)


def open_database(name: str, settings: Settings) -> Database:
    return Database.for_component(name, data_dir=settings.data_dir, url=settings.db_url_for(name))


def build(name: str, db: Database, context: ComponentContext) -> Component:
    try:
        spec = SPECS[name]
    except KeyError:
        raise ValueError(f"unknown component {name!r}: choose from {', '.join(NAMES)}") from None
    return spec.build(db, context)
