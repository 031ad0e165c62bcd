"""Kept statements run straight on ``sqlite3`` where the connection is used in place.

SQLAlchemy's execution of a statement it has compiled and cached still costs some 60 to 100
microseconds of the loop's time (an execution context, the parameters processed, a greenlet
switch there and back, a result object), against 3 to 10 for the same call on ``sqlite3``.
A push's decision and a projector batch each run seven or eight statements, on the way
from one device's action to another device's view: 1 to 1.5 ms of it was this overhead.

So the hot paths call ``fetch``, ``execute`` and ``inserted`` here with the same SQLAlchemy
statements as before (one definition, one place to read them). On a SQLite file used in
place (``backend/sqlite_inline.py``) each statement is compiled once into its SQL and the
order of its parameters, then run on the ``sqlite3`` connection under the transaction, in
the transaction SQLAlchemy began. Anywhere else (PostgreSQL, SQLite in memory) it goes
through ``AsyncConnection.execute`` as before. A statement whose types would process its
parameters or results (a ``Boolean`` read back, a Python-side default) always goes through
SQLAlchemy, so the two paths never give different values.

Rows come back as tuples, in the statement's column order, on both paths. Errors are
SQLAlchemy's (``IntegrityError``, ``OperationalError``), as they would be through it.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.base import Executable

from backend.sqlite_inline import InlineConnection

__all__ = ["execute", "fetch", "inserted"]

Row = tuple[Any, ...]
Params = Mapping[str, Any]

_MARKER = re.compile(r"__\[POSTCOMPILE_(\w+)\]")
_NO_ROWS = "SELECT NULL WHERE 0"
"""What an empty list expands to: ``x IN (SELECT NULL WHERE 0)`` holds for no ``x`` and its
``NOT IN`` for every one, as SQL means them."""


@dataclass(frozen=True)
class _Plan:
    statement: Executable
    """Kept so that its ``id`` (this plan's key) is never reused by another object."""
    pieces: tuple[str, ...]
    """The SQL split at each list parameter (``expanding``): text, name, text, name, text."""
    names: tuple[str, ...]
    """The parameters in the order of their ``?``, list parameters included."""
    direct: bool
    """False: types process the parameters or the results; SQLAlchemy runs it."""
    fixed: Mapping[str, Any]
    """The values the statement holds itself (``in_(("a", "b"))``)."""

    def sql_and_args(self, params: Params) -> tuple[str, list[Any]]:
        if self.fixed:
            params = {**self.fixed, **params}
        args: list[Any] = []
        if len(self.pieces) == 1:
            return self.pieces[0], [params[name] for name in self.names]
        sql = [self.pieces[0]]
        for at in range(1, len(self.pieces), 2):
            values = params[self.pieces[at]]
            sql.append(", ".join("?" * len(values)) if values else _NO_ROWS)
            sql.append(self.pieces[at + 1])
        for name in self.names:
            value = params[name]
            if name in self.pieces[1::2]:
                args.extend(value)
            else:
                args.append(value)
        return "".join(sql), args


_plans: dict[tuple[int, tuple[str, ...]], _Plan] = {}


def _plan(conn: AsyncConnection, statement: Executable, keys: tuple[str, ...]) -> _Plan:
    found = _plans.get((id(statement), keys))
    if found is not None:
        return found
    dialect = conn.dialect
    compiled: Any = cast(Any, statement).compile(dialect=dialect, column_keys=list(keys) or None)
    processed = any(
        bind.type._cached_bind_processor(dialect) is not None for bind in compiled.binds.values()
    ) or any(
        column[3]._cached_result_processor(dialect, None) is not None
        for column in compiled._result_columns
    )
    prefetch = bool(getattr(compiled, "insert_prefetch", None)) or bool(
        getattr(compiled, "update_prefetch", None)
    )
    escaped: dict[str, str] = {v: k for k, v in (compiled.escaped_bind_names or {}).items()}
    split: list[str] = _MARKER.split(compiled.string)
    pieces: tuple[str, ...] = tuple(
        escaped.get(piece, piece) if i % 2 else piece for i, piece in enumerate(split)
    )
    names = tuple(escaped.get(n, n) for n in compiled.positiontup or ())
    fixed = {
        name: bind.effective_value
        for name, bind in compiled.binds.items()
        if name in names and not bind.required and bind.callable is None
    }
    plan = _Plan(statement, pieces, names, not processed and not prefetch, fixed)
    _plans[(id(statement), keys)] = plan
    return plan


def _sqlite(conn: AsyncConnection) -> sqlite3.Connection | None:
    """The ``sqlite3`` connection under ``conn`` if it is used in place, else None."""
    driver = conn.sync_connection.connection.driver_connection  # type: ignore[union-attr]
    return driver.sqlite if isinstance(driver, InlineConnection) else None


def _run(raw: sqlite3.Connection, sql: str, args: Any, many: bool = False) -> sqlite3.Cursor:
    try:
        return raw.executemany(sql, args) if many else raw.execute(sql, args)
    except sqlite3.Error as exc:
        raise DBAPIError.instance(sql, args, exc, sqlite3.Error) from exc


async def fetch(conn: AsyncConnection, statement: Executable, params: Params) -> list[Row]:
    """The rows of a query, as tuples."""
    raw = _sqlite(conn)
    if raw is not None:
        plan = _plan(conn, statement, ())
        if plan.direct:
            sql, args = plan.sql_and_args(params)
            return _run(raw, sql, args).fetchall()
    return [tuple(row) for row in await conn.execute(statement, dict(params))]


async def execute(conn: AsyncConnection, statement: Executable, rows: Sequence[Params]) -> None:
    """A statement with no result, once per parameter set in ``rows`` (all of one shape)."""
    if not rows:
        return
    raw = _sqlite(conn)
    if raw is not None:
        plan = _plan(conn, statement, tuple(rows[0]))
        if plan.direct:
            if len(plan.pieces) == 1:
                args = [plan.sql_and_args(row)[1] for row in rows]
                _run(raw, plan.pieces[0], args, many=True)
                return
            for row in rows:
                _run(raw, *plan.sql_and_args(row))
            return
    await conn.execute(statement, [dict(row) for row in rows])


async def inserted(
    conn: AsyncConnection, statement: Executable, rows: Sequence[Params]
) -> list[Any]:
    """An insert with ``RETURNING`` one column, for each parameter set in ``rows``: the
    values it returned (none for a row it did not insert)."""
    if not rows:
        return []
    raw = _sqlite(conn)
    if raw is not None:
        plan = _plan(conn, statement, tuple(rows[0]))
        if plan.direct:
            returned: list[Any] = []
            for row in rows:
                returned.extend(r[0] for r in _run(raw, *plan.sql_and_args(row)))
            return returned
    return list((await conn.execute(statement, [dict(row) for row in rows])).scalars())
