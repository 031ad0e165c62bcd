"""The local view: the confirmed state with the pending events folded on top.

The same ``protocol.merge`` functions as the backend's projector: a pulled change becomes a
merge state (``from_change``), the outbox's pending events are folded onto it, and the
result is what the user sees. An action folds its events in at once; a pull refolds only
the entities it touched.

A view row keeps the plain values the UI reads (``vals``) and the merge state behind them
(``state``). While no pending event folds onto an entity, its state is its confirmed
state, and the row holds ``AS_CONFIRMED`` instead of a second copy: a bootstrap then writes
each state once, not twice (100,000 synthetic tasks: 122 MB of store instead of 257 MB).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import msgspec

from client.store.outbox import Outbox
from protocol import (
    Event,
    EventRejected,
    MergeError,
    UnreadableEvent,
    Writer,
    decode_event,
    merge,
)
from protocol.merge import EntityKey, EntityState, PulledChange

log = logging.getLogger(__name__)
_state_decoder = msgspec.json.Decoder(EntityState)
_encode = msgspec.json.encode

OWN_ACTOR = "(you)"
"""Who a pending event is by, before this profile has signed in anywhere."""


DECODED_KEPT = 65_536
"""Outbox events kept decoded (``event_of``): a refold reads every pending event of its
boards again, and a backlog of thousands would be decoded and validated on each pull."""
_decoded: dict[tuple[bytes, str], Event] = {}
_decoded_lock = threading.Lock()


def event_of(body: bytes, username: str | None) -> Event:
    """A pending event as the merge rules see it: its author is this device's user.

    Decoded once: the same bytes with the same author give the same (immutable) event,
    kept for later refolds, at most ``DECODED_KEPT`` of them, the oldest forgotten first."""
    key = (bytes(body), username or OWN_ACTOR)
    event = _decoded.get(key)
    if event is None:
        decoded = decode_event(key[0], Writer.DEVICE)
        event = msgspec.structs.replace(decoded, actor=key[1])
        remember(key[0], event)
    return event


def remember(body: bytes, event: Event) -> None:
    """Keep ``event``, decoded from ``body`` (its ``actor`` set as ``event_of`` does), for
    ``event_of``: an action knows its events already."""
    with _decoded_lock:
        while len(_decoded) >= DECODED_KEPT:
            del _decoded[next(iter(_decoded))]
        _decoded[(body, event.actor or OWN_ACTOR)] = event


def readable_event(body: bytes, username: str | None) -> Event | None:
    """``event_of``, or None for a body this device cannot read (a damaged row, or one an
    older version wrote): such an event can be sent and refused, never shown."""
    try:
        return event_of(body, username)
    except (EventRejected, UnreadableEvent) as exc:
        log.warning("an outbox event this device cannot read: %s", exc)
        return None


def pending(
    conn: sqlite3.Connection, username: str | None, boards: Iterable[str] | None = None
) -> list[Event]:
    """The outbox's events (of some boards), in the order they were made."""
    events = (readable_event(body, username) for body in Outbox(conn).bodies(boards))
    return [event for event in events if event is not None]


AS_CONFIRMED = b""
"""A view row's ``state`` while nothing pending folds onto the entity: the state is the
one in ``confirmed``. Every write of a confirmed state refolds its view row in the same
transaction, and whatever deletes a confirmed row deletes its view row too."""


def load_confirmed(conn: sqlite3.Connection, key: EntityKey) -> EntityState | None:
    row = conn.execute(
        "SELECT state FROM confirmed WHERE kind = ? AND id = ?", (key.kind, key.id)
    ).fetchone()
    return None if row is None else _state_decoder.decode(row[0])


def view_row(
    conn: sqlite3.Connection, key: EntityKey
) -> tuple[str, bytes | None, EntityState | None] | None:
    """An entity's view row in one query: its board, its values (None until it is created)
    and the merge state behind them (the confirmed one, for ``AS_CONFIRMED``); None if the
    view has no row for it."""
    row = conn.execute(
        "SELECT v.board, v.vals, CASE WHEN v.state = ? THEN c.state ELSE v.state END "
        "FROM view v LEFT JOIN confirmed c ON c.kind = v.kind AND c.id = v.id "
        "WHERE v.kind = ? AND v.id = ?",
        (AS_CONFIRMED, key.kind, key.id),
    ).fetchone()
    if row is None:
        return None
    if row[2] is None:  # AS_CONFIRMED without a confirmed state
        log.error("the view of %s %s has lost its confirmed state", key.kind, key.id)
        return row[0], row[1], None
    return row[0], row[1], _state_decoder.decode(row[2])


def load_view(conn: sqlite3.Connection, key: EntityKey) -> EntityState | None:
    """The merge state behind an entity's view row (``view_row``'s)."""
    row = view_row(conn, key)
    return None if row is None else row[2]


_WRITE_VIEW = (
    "INSERT INTO view (kind, id, board, state, vals, task_status, task_position) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kind, id) DO UPDATE SET "
    "board = excluded.board, state = excluded.state, vals = excluded.vals, "
    "task_status = excluded.task_status, task_position = excluded.task_position"
)


def _view_row(state: EntityState, stored: bytes) -> tuple[Any, ...]:
    """``_WRITE_VIEW``'s parameters: a task's column and position are also columns of
    their own (``view_task_column``, for an add's lookup of where its column ends)."""
    values = merge.values(state)
    if values is None:
        return (state.kind, state.id, state.board, stored, None, None, None)
    column = (values["status"], values["position"]) if state.kind == "task" else (None, None)
    return (state.kind, state.id, state.board, stored, _encode(values), *column)


def write_view(conn: sqlite3.Connection, state: EntityState, stored: bytes | None = None) -> None:
    """An entity's view row: ``state``'s values, and ``state`` (stored as ``stored``, when
    given: ``AS_CONFIRMED`` for a confirmed state with nothing folded on it)."""
    conn.execute(_WRITE_VIEW, _view_row(state, _encode(state) if stored is None else stored))


def fold_into_view(conn: sqlite3.Connection, events: Iterable[Event]) -> None:
    """An action's events, folded into the view at once."""
    for event in events:
        for key in merge.keys_of(event):
            current = load_view(conn, key) or merge.new_state(key, event.board)
            write_view(conn, merge.apply(current, event))


def refold(conn: sqlite3.Connection, keys: Iterable[EntityKey], username: str | None) -> None:
    """Recompute the view of some entities from their confirmed state and pending events."""
    keys = set(keys)
    if not keys:
        return
    boards = {_board_of(conn, key) for key in keys} - {None}
    by_key: dict[EntityKey, list[Event]] = defaultdict(list)
    for event in pending(conn, username, boards):  # type: ignore[arg-type]
        for key in merge.keys_of(event):
            if key in keys:
                by_key[key].append(event)
    for key in keys:
        base = load_confirmed(conn, key)
        events = by_key.get(key, [])
        if base is None and not events:
            conn.execute("DELETE FROM view WHERE kind = ? AND id = ?", (key.kind, key.id))
            continue
        if base is not None and not events:
            write_view(conn, base, AS_CONFIRMED)
            continue
        state = base or merge.new_state(key, events[0].board)
        for event in events:
            state = merge.apply(state, event)
        write_view(conn, state)


def keys_of_board(conn: sqlite3.Connection, board: str) -> set[EntityKey]:
    rows = conn.execute(
        "SELECT kind, id FROM view WHERE board = ? UNION SELECT kind, id FROM confirmed "
        "WHERE board = ?",
        (board, board),
    )
    return {EntityKey(kind, entity_id) for kind, entity_id in rows}


def _board_of(conn: sqlite3.Connection, key: EntityKey) -> str | None:
    for table in ("confirmed", "view"):
        row = conn.execute(
            f"SELECT board FROM {table} WHERE kind = ? AND id = ?", (key.kind, key.id)
        ).fetchone()
        if row is not None:
            return str(row[0])
    return None


def confirm(
    conn: sqlite3.Connection, change: dict[str, Any], table: str = "confirmed"
) -> EntityKey:
    """Store one pulled change (as JSON decodes it) as the confirmed state of its entity."""
    (state,) = confirm_many(conn, [change], table)
    return state.key


def confirm_many(
    conn: sqlite3.Connection, changes: list[dict[str, Any]], table: str = "confirmed"
) -> list[EntityState]:
    """``confirm_pulled`` of changes as JSON decodes them."""
    return confirm_pulled(conn, msgspec.convert(changes, list[PulledChange]), table)


def confirm_pulled(
    conn: sqlite3.Connection, changes: list[PulledChange], table: str = "confirmed"
) -> list[EntityState]:
    """Store pulled entity changes as the confirmed states of their entities, in order, in
    one statement; return the states. The caller refolds their view rows in the same
    transaction (``refold_confirmed``): a row may say ``AS_CONFIRMED``."""
    confirmed = []
    for c in changes:
        if c.kind == "notice" or c.values is None or c.meta is None:
            raise MergeError(f"the pulled {c.kind} {c.id} is not an entity's state")
        confirmed.append(merge.from_change(c.kind, c.id, c.board, c.values, c.meta))
    conn.executemany(
        f"INSERT INTO {table} (kind, id, board, state) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (kind, id) DO UPDATE SET board = excluded.board, state = excluded.state",
        [(s.kind, s.id, s.board, _encode(s)) for s in confirmed],
    )
    return confirmed


def refold_confirmed(
    conn: sqlite3.Connection, confirmed: list[EntityState], username: str | None
) -> None:
    """``refold`` of entities whose confirmed states were just written (``confirm_pulled``'s
    answer): the same view rows, without reading those states back, in one statement."""
    if not confirmed:
        return
    by_key: dict[EntityKey, list[Event]] = defaultdict(list)
    events = pending(conn, username, {s.board for s in confirmed})
    if events:
        keys = {s.key for s in confirmed}
        for event in events:
            for key in merge.keys_of(event):
                if key in keys:
                    by_key[key].append(event)
    rows = []
    for state in confirmed:
        folded = by_key.get(state.key) if by_key else None
        stored = AS_CONFIRMED
        if folded:
            for event in folded:
                state = merge.apply(state, event)
            stored = _encode(state)
        rows.append(_view_row(state, stored))
    conn.executemany(_WRITE_VIEW, rows)
