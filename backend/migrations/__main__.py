"""For developers: write a new revision from the models, or check that none is needed.

    python -m backend.migrations revision <component> "<what it does>"
    python -m backend.migrations check

``revision`` migrates a scratch SQLite database to the component's head, compares it with
the models (Alembic autogenerate) and writes what differs as the next named revision,
``backend/migrations/<component>/versions/<component>_<NNNN>_<what>.py``: read it, edit it
and ``ruff format`` it before committing (autogenerate misses renames, and data needs moving
by hand).
``check`` exits 1 if any history's head does not match its models.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from backend.db import Database
from backend.migrations import HISTORIES, config_for, metadata_of

REVISION_ID_MAX = 32
"""Alembic's version table holds a revision id in a VARCHAR(32) (PostgreSQL enforces it)."""


async def differences(history: str, scratch: Path) -> list[Any]:
    """What a new revision of ``history`` would have to do (Alembic's diff; [] when none)."""
    db = Database.for_component(history, data_dir=scratch, url=None)
    try:
        await db.migrate()
        async with db.read() as conn:
            return await conn.run_sync(_compare, history)
    finally:
        await db.dispose()


def _compare(conn: Connection, history: str) -> list[Any]:
    return list(compare_metadata(MigrationContext.configure(conn), metadata_of(history)))


async def write_revision(history: str, message: str, scratch: Path) -> str:
    """Autogenerate the next revision of ``history``; return its id."""
    db = Database.for_component(history, data_dir=scratch, url=None)
    try:
        await db.migrate()
        async with db.write() as conn:
            return await conn.run_sync(_revision, history, message)
    finally:
        await db.dispose()


def _revision(conn: Connection, history: str, message: str) -> str:
    config = config_for(history, connection=conn, metadata=metadata_of(history))
    count = sum(1 for _ in ScriptDirectory.from_config(config).walk_revisions())
    prefix = f"{history}_{count + 1:04d}_"
    slug = re.sub(r"[^a-z0-9]+", "_", message.lower()).strip("_")
    rev_id = (prefix + slug)[:REVISION_ID_MAX].rstrip("_")
    command.revision(config, message=message, autogenerate=True, rev_id=rev_id)
    return rev_id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.migrations", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    revision = commands.add_parser("revision", help="write the next revision from the models")
    revision.add_argument("history", choices=sorted(HISTORIES))
    revision.add_argument("message")
    commands.add_parser("check", help="exit 1 if a history's head does not match its models")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="outpost-migrations-") as scratch:
        if args.command == "revision":
            rev_id = asyncio.run(write_revision(args.history, args.message, Path(scratch)))
            print(
                f"wrote {rev_id}: read it, edit it, ruff format it, then run "
                "`python -m backend.migrations check`"
            )
            return 0
        failed = False
        for history in HISTORIES:
            found = asyncio.run(differences(history, Path(scratch)))
            print(f"{history}: {found or 'matches its models'}")
            failed = failed or bool(found)
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
