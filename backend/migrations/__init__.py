"""Named, recorded schema migrations of the backend's databases: one Alembic history each.

Every component's database (``backend.db.Database``) has its own history, in
``backend/migrations/<component>/versions/``, of revisions named ``<component>_<NNNN>_<what>``
(like the device store's ``0001_initial``). The database records the revision it is at in
its own ``alembic_version`` table: in the SQLite file, or inside the component's PostgreSQL
schema ``outpost_<component>``. ``migrate`` runs at every start of a component, before it
reads or writes: in one transaction, under the component's write lock (SQLite) or an advisory
lock (PostgreSQL), so two processes starting together migrate once.

- A fresh database is built by the history from its first revision, ``<component>_0001_tables``.
- A database made before there were migrations (tables, no version table) is adopted: the
  first revision keeps the tables it finds and creates only those missing, so the database
  ends at the baseline with the rows it had; the later revisions then apply as usual.
- A database at a revision this Outpost does not know was migrated by a newer Outpost: the
  component refuses to start (``MigrationError``, naming the revision) rather than guess.

``python -m backend.migrations`` writes a new revision from the models (autogenerate) and
checks that every history's head matches its models: see the README's "Databases" section.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Connection

from backend.errors import BackendError

if TYPE_CHECKING:
    from backend.db import Database

__all__ = ["HISTORIES", "MigrationError", "config_for", "metadata_of", "migrate"]

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent

HISTORIES: Mapping[str, str] = {
    "bff": "backend.bff.models:BffBase",
    "limits": "backend.bff.limits.models:LimitsBase",
    "projector": "backend.projector.models:ProjectorBase",
    "workload": "backend.saga.workload:WorkloadBase",
    "gateway": "backend.gateway.models:GatewayBase",
    "lake": "backend.lake.models:metadata",
    "orchestrator": "backend.orchestrator.component:OrchestratorBase",
}
"""Each history, by component, and where its models live (the target of autogenerate)."""

VERSION_TABLE = "alembic_version"


class MigrationError(BackendError):
    """A component's database that this Outpost cannot bring to its schema."""


def metadata_of(history: str) -> MetaData:
    """The models' metadata that ``history``'s head must match."""
    module, _, name = HISTORIES[history].partition(":")
    found = getattr(importlib.import_module(module), name)
    metadata = found if isinstance(found, MetaData) else found.metadata
    assert isinstance(metadata, MetaData)
    return metadata


def config_for(history: str, **attributes: Any) -> Config:
    """Alembic's configuration of one history, built in code: users need no alembic.ini."""
    if history not in HISTORIES:
        raise ValueError(f"no migration history {history!r}: choose from {', '.join(HISTORIES)}")
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", str(HERE / history / "versions"))
    config.set_main_option("file_template", "%%(rev)s")
    config.attributes.update(attributes)
    return config


async def migrate(db: Database) -> list[str]:
    """Bring ``db`` to the head of its component's history; return the revisions applied."""
    async with db.write() as conn:
        if db.schema is not None:
            # One migrator at a time per component, even before its schema exists.
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:name))"),
                {"name": f"outpost:migrate:{db.component}"},
            )
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{db.schema}"'))
        return await conn.run_sync(_upgrade, db.component)


def _upgrade(conn: Connection, history: str) -> list[str]:
    # No schema is named here, nor in env.py or the revisions: the connection's search_path
    # is the component's schema alone, so tables and version table all land in it.
    config = config_for(history, connection=conn)
    script = ScriptDirectory.from_config(config)
    current = MigrationContext.configure(conn).get_current_heads()
    for revision in current:
        try:
            script.get_revision(revision)
        except CommandError:
            raise MigrationError(
                f"the {history} database is at revision {revision!r}, which this Outpost does "
                f"not know (its newest is {script.get_current_head()!r}): a newer Outpost "
                "migrated it. Run that newer Outpost, or restore a backup made before it ran."
            ) from None
    if not current and _has_tables(conn):
        log.info("%s database: made before migrations; adopting it at the baseline", history)
    pending = [
        step.revision
        for step in script.iterate_revisions("heads", current[0] if current else "base")
    ][::-1]
    command.upgrade(config, "heads")
    if pending:
        log.info("%s database: applied %s", history, ", ".join(pending))
    return pending


def _has_tables(conn: Connection) -> bool:
    return bool(set(inspect(conn).get_table_names()) - {VERSION_TABLE})
