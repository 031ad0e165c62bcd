"""``outpost backend backup`` and ``restore``: the data folder, copied while nothing runs.

A backup is a folder: every SQLite file of the data folder copied through SQLite's own
backup API (one consistent file each, its write-ahead log folded in), the embedded
nats-server's store (the streams and the consumers' positions, in the state the consumers
committed), the lake's archive and the token secret; and ``outpost-backup.json``, which
says what it holds. It is taken with the backend stopped (consumers first, then the BFFs:
what the consumers committed is then all in the stream and nothing moves), so the views,
the stream and the BFF's records agree.

A restore puts such a folder back and gives the views a **new generation** (their rows
kept): a device's cursor from before the restore names the old generation, so its next
pull answers ``reset``, the device rebuilds its confirmed state from the restored views
and pushes again every event it still holds, the events the backup lost included (duplicates
are harmless). Without the new generation, a device that had pulled past the backup would
walk on from a version the restored views reach again only with other rows, and miss them.

The data folder it replaces is kept beside it (``<data>.before-restore-<time>``), never
deleted. With ``--db-url`` the databases are in PostgreSQL (``pg_dump``/``pg_restore``
them; the restore's new generation is written there), and with ``--nats-url`` the stream
is on that server (``nats stream backup``/``restore``): the command copies the folder and
says what it did not cover.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from backend.components import NAMES, open_database
from backend.config import Settings
from backend.errors import BackendError, ComponentBusy
from backend.nats import find_running
from backend.projector.projector import new_generation

__all__ = ["MARKER", "Backup", "BackupError", "backup", "restore"]

MARKER = "outpost-backup.json"
_RUNTIME = {"nats-server.lock", "nats-server.json"}
"""Files of a running nats-server, never copied: a restored store is not running."""
_SQLITE_SIDE = ("-wal", "-shm", "-journal")


class BackupError(BackendError):
    """A backup or restore that cannot be done: the reason, and what to do."""


@dataclass
class Backup:
    folder: Path
    databases: list[str] = field(default_factory=list)
    """SQLite files copied (names relative to the data folder)."""
    not_covered: list[str] = field(default_factory=list)
    """What the operator backs up or restores apart (PostgreSQL, an external NATS)."""
    generation: str | None = None
    """After a restore: the views' new generation."""
    kept: Path | None = None
    """After a restore: where the data folder that was replaced now is."""


async def backup(settings: Settings, target: Path) -> Backup:
    """Copy the stopped backend's data folder into ``target`` (new or empty)."""
    source = settings.data_dir
    if not source.is_dir():
        raise BackupError(f"there is no data folder {source} to back up")
    if target.exists() and any(target.iterdir()):
        raise BackupError(f"{target} is not empty: back up into a new folder")
    await _refuse_while_running(settings, "back up")
    made = Backup(target)
    target.mkdir(parents=True, exist_ok=True)
    _copy_folder(source, target, made)
    made.not_covered = _not_covered(settings, "backup")
    marker = {
        "made_at_ms": int(time.time() * 1000),
        "data_dir": str(source.resolve()),
        "sqlite": made.databases,
        "not_covered": made.not_covered,
    }
    (target / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
    return made


async def restore(settings: Settings, source: Path) -> Backup:
    """Put the backup in ``source`` back as the data folder, then give the views a new
    generation so every device resets and re-pushes what the backup lost."""
    if not (source / MARKER).is_file():
        raise BackupError(f"{source} is not an Outpost backup (it has no {MARKER})")
    target = settings.data_dir
    await _refuse_while_running(settings, "restore")
    made = Backup(source)
    # Built beside the data folder and given its new generation there, then swapped in:
    # a restore that fails half way leaves the data folder as it was.
    staging = target.with_name(f"{target.name}.restoring")
    if staging.exists():
        shutil.rmtree(staging)  # what an interrupted restore left: only ever a copy
    staging.mkdir(parents=True)
    _copy_folder(source, staging, made)
    made.generation = await _new_generation(replace(settings, data_dir=staging))
    if target.exists():
        made.kept = target.with_name(
            f"{target.name}.before-restore-{time.strftime('%Y%m%d-%H%M%S')}"
        )
        target.rename(made.kept)
    staging.rename(target)
    made.not_covered = _not_covered(settings, "restore")
    return made


async def _refuse_while_running(settings: Settings, what: str) -> None:
    if settings.nats_url is None:
        running = find_running(settings.data_dir / "nats")
        if running is not None:
            who = (
                f"pid {running.owner_pid}"
                if running.owner_pid
                else f"nats-server pid {running.pid}"
            )
            raise ComponentBusy(
                f"the backend of {settings.data_dir} runs ({who}): stop its consumers, then "
                f"its BFFs, and {what} then"
            )
    for name in NAMES:
        if settings.db_url_for(name) is None and not settings.data_dir.is_dir():
            continue  # no folder, no SQLite file: nothing runs on it
        db = open_database(name, settings)
        try:
            lease = await db.try_lease(name)
            if lease is None:
                raise ComponentBusy(
                    f"another process runs the {name} consumer on this data: stop the "
                    f"consumers, then the BFFs, and {what} then"
                )
            await lease.release()
        finally:
            await db.dispose()


def _copy_folder(source: Path, target: Path, made: Backup) -> None:
    """Every file of ``source`` into ``target``: SQLite files through the backup API, the
    rest as they are (but a nats-server's runtime files, leases, logs and ``MARKER``)."""
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        destination = target / relative
        if path.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
            continue
        name = path.name
        if (
            name in _RUNTIME
            or name == MARKER
            or name.endswith((".lease", ".log"))
            or name.endswith(_SQLITE_SIDE)
        ):
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        if _is_sqlite(path):
            _copy_sqlite(path, destination)
            made.databases.append(str(relative))
        else:
            shutil.copy2(path, destination)


def _is_sqlite(path: Path) -> bool:
    """A SQLite database by its header (the nats-server's store has ``.db`` files too)."""
    with path.open("rb") as file:
        return file.read(16) == b"SQLite format 3\x00"


def _copy_sqlite(source: Path, destination: Path) -> None:
    with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as src:
        dst = sqlite3.connect(destination)
        try:
            src.backup(dst)
        finally:
            dst.close()


def _not_covered(settings: Settings, what: str) -> list[str]:
    notes = []
    urls = {settings.db_url_for(name) for name in (*NAMES, "bff", "limits")} - {None}
    if urls:
        tool = "pg_dump" if what == "backup" else "pg_restore"
        notes.append(f"PostgreSQL ({len(urls)} database URL(s)): {tool} them too")
    if settings.nats_url is not None:
        tool = "nats stream backup" if what == "backup" else "nats stream restore"
        notes.append(
            f"the streams on {settings.nats_url}: `{tool}` OUTPOST_EVENTS and OUTPOST_FAULTS"
        )
    return notes


async def _new_generation(settings: Settings) -> str:
    views = open_database("projector", settings)
    try:
        await views.migrate()
        async with views.write() as conn:
            return await new_generation(conn)
    finally:
        await views.dispose()
