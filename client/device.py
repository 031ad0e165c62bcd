"""A device: one profile's store, its identity and clock, its actions and its queries.

Every action is one local transaction that appends its events to the outbox and folds
them into the view, then returns: no network, no waiting. What an action returned is on
disk (``synchronous=FULL``) before the call returns.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import httpx
import msgspec

from client.errors import InvalidAction, NotFound, ServerUnreachable, SignInRequired
from client.store.database import Store
from client.store.outbox import Outbox
from client.store.settings import Setting, read_setting, write_setting
from client.store.view import OWN_ACTOR, fold_into_view, remember, view_row
from client.sync.transport import bearer, body_of, detail_of
from protocol import (
    Event,
    EventRejected,
    HybridLogicalClock,
    Writer,
    new_device_id,
    new_id,
    position_after,
    position_between,
    validate_event,
)
from protocol.catalog import TASK_DEFAULTS
from protocol.hlc import system_ms
from protocol.merge import EntityKey, meta

_decode = msgspec.json.decode
_encode = msgspec.json.encode

TASK_FIELDS = ("title", "notes", "status", "priority", "due", "assignee", "position")
STATUSES = ("todo", "doing", "done")


COLUMN_END = "SELECT MAX(task_position) FROM view WHERE board = ? AND task_status = ?"
"""The last position in a column of a board: one lookup in ``view_task_column``."""


class Device:
    def __init__(self, folder: Path, *, clock_error_ms: int = 0) -> None:
        """Open (or create) the profile in ``folder``.

        ``clock_error_ms`` makes this device's wall clock wrong by that much, as a real
        device's can be (the conflict tool and the tests use it); the correction the sync
        engine learns from the server (``clock_offset``) is kept in the profile.
        """
        self.store = Store(folder)
        self.folder = folder
        with self.store.write() as conn:
            self.device_id = read_setting(conn, Setting.DEVICE_ID) or new_device_id()
            write_setting(conn, Setting.DEVICE_ID, self.device_id)
        offset = int(self.store.setting(Setting.CLOCK_OFFSET, "0") or 0)
        self.clock = HybridLogicalClock(
            self.device_id,
            lambda: system_ms() + clock_error_ms,
            offset_ms=offset,
            last=self.store.setting(Setting.CLOCK_LAST),
        )

    # identity

    @property
    def username(self) -> str | None:
        return self.store.setting(Setting.USERNAME)

    @property
    def server(self) -> str | None:
        return self.store.setting(Setting.SERVER)

    def close(self) -> None:
        self.store.close()

    # account (online: through the engine's HTTP seam, ``client.sync.transport.connect``)

    async def change_password(
        self,
        http: httpx.AsyncClient,
        password: str,
        new_password: str,
        username: str | None = None,
    ) -> None:
        """Change the password of this profile's account, or of ``username`` in a profile
        that has none yet (also a one-time one from ``outpost users reset-password``). The
        server ends every session of the account, so the tokens are forgotten here: sign in
        again with the new password. Neither password is kept."""
        owner = self.username
        if owner is not None and username not in (None, owner):
            raise InvalidAction(f"this profile belongs to {owner}: use another profile folder")
        username = owner or username
        if username is None:
            raise InvalidAction("no account in this profile yet: name the username")
        if not 8 <= len(new_password) <= 128:
            raise InvalidAction("the new password must be 8..128 characters")
        # Signing in proves the current password (the sign-in throttle counts a wrong one)
        # and works without a live session; a one-time password gets a password token.
        credentials = {"username": username, "password": password}
        reply = await _post(http, "/v1/auth/token", credentials)
        if reply.status_code == 200:
            token = body_of(reply)["token"]
        elif reply.status_code == 403 and "password_token" in (body_of(reply).get("extra") or {}):
            token = body_of(reply)["extra"]["password_token"]
        else:
            raise _refusal(reply)
        change = {"password": password, "new_password": new_password}
        reply = await _post(http, "/v1/auth/password", change, token)
        if reply.status_code != 204:
            raise _refusal(reply)
        self._forget_session()

    async def log_out(self, http: httpx.AsyncClient) -> bool:
        """End this profile's session on the server when it can be reached, and forget its
        tokens here in any case. Unsynced changes stay in the outbox for the next sign-in.
        True when the server has ended the session (or it had ended already)."""
        refresh_token = self.store.setting(Setting.REFRESH_TOKEN)
        try:
            if refresh_token is None:
                return True  # no session to end
            # The access token may have expired: a refresh gives a live one, and the
            # session's newest refresh token.
            reply = await _post(http, "/v1/auth/refresh", {"refresh_token": refresh_token})
            if reply.status_code in (400, 401):
                return True  # the session has ended already
            if reply.status_code != 200:
                return False
            session = body_of(reply)
            body = {"refresh_token": session["refresh_token"]}
            reply = await _post(http, "/v1/auth/logout", body, session["token"])
            return reply.status_code == 204
        except ServerUnreachable:
            return False
        finally:
            self._forget_session()

    def _forget_session(self) -> None:
        with self.store.write() as conn:
            write_setting(conn, Setting.TOKEN, None)
            write_setting(conn, Setting.REFRESH_TOKEN, None)

    # actions: boards

    def create_board(self, name: str, wip_limit: int | None = None) -> str:
        board = new_id()
        self._record(("BoardCreated", board, board, {"name": name, "wip_limit": wip_limit}))
        return board

    def rename_board(self, board: str, name: str) -> None:
        self._record_on("board", board, ("BoardUpdated", board, {"fields": {"name": name}}))

    def set_wip_limit(self, board: str, limit: int | None) -> None:
        self._record_on("board", board, ("BoardUpdated", board, {"fields": {"wip_limit": limit}}))

    def archive_board(self, board: str, archived: bool = True) -> None:
        fields = {"archived": archived}
        self._record_on("board", board, ("BoardUpdated", board, {"fields": fields}))

    def require_board(self, board: str) -> None:
        """NotFound unless ``board`` is in this profile."""
        with self.store.read() as conn:
            self._board_in(conn, "board", board)

    def share_board(self, board: str, username: str) -> None:
        self._record_on("board", board, ("MemberAdded", board, {"username": username}))

    def unshare_board(self, board: str, username: str) -> None:
        self._record_on("board", board, ("MemberRemoved", board, {"username": username}))

    # actions: tasks

    def add_task(self, board: str, title: str, **fields: Any) -> str:
        """A new task at the end of its column. The check of the board, the column's last
        position (an index lookup: ``view_task_column``), the append and the fold are one
        transaction, so two adds never read the same last position."""
        status = fields.get("status", "todo")
        task = new_id()
        with self.store.write() as conn:
            self._board_in(conn, "board", board)
            (last,) = conn.execute(COLUMN_END, (board, status)).fetchone()
            payload = {"title": title, "position": position_after(last), **fields}
            self._append(conn, ("TaskCreated", board, task, payload))
        return task

    def set_task(self, task: str, **fields: Any) -> None:
        unknown = set(fields) - set(TASK_FIELDS)
        if unknown:
            raise InvalidAction(f"tasks have no field {', '.join(sorted(unknown))}")
        if not fields:
            raise InvalidAction("name at least one field to set")
        self._record_on("task", task, ("TaskUpdated", task, {"fields": fields}))

    def move_task(self, task: str, status: str | None = None, index: int | None = None) -> None:
        """Move a task to ``index`` in the ``status`` column (default: its own; the end)."""
        current = self._require("task", task)
        status = status or current["values"]["status"]
        column = [t for t in self.column(current["board"], status) if t["id"] != task]
        index = len(column) if index is None else max(0, min(index, len(column)))
        before = column[index - 1]["position"] if index > 0 else None
        after = column[index]["position"] if index < len(column) else None
        if before is not None and after is not None and before >= after:
            after = None  # equal positions (a tie by id): go just after the neighbour
        fields: dict[str, Any] = {"position": position_between(before, after)}
        if status != current["values"]["status"]:
            fields["status"] = status
        self._record(("TaskUpdated", current["board"], task, {"fields": fields}))

    def add_label(self, task: str, label: str) -> None:
        self._record_on("task", task, ("TaskLabelAdded", task, {"label": label}))

    def remove_label(self, task: str, label: str) -> None:
        """Remove a label: every add of it this device has seen (add-wins otherwise)."""
        current = self._require("task", task)
        observed = current["meta"]["labels"].get(label, [])
        payload = {"label": label, "observed": observed}
        self._record(("TaskLabelRemoved", current["board"], task, payload))

    def delete_task(self, task: str) -> None:
        self._record_on("task", task, ("TaskDeleted", task, {}))

    def restore_task(self, task: str) -> None:
        self._record_on("task", task, ("TaskRestored", task, {}))

    # actions: comments

    def add_comment(self, task: str, body: str) -> str:
        comment = new_id()
        self._record_on("task", task, ("CommentAdded", comment, {"task": task, "body": body}))
        return comment

    def delete_comment(self, comment: str) -> None:
        self._record_on("comment", comment, ("CommentDeleted", comment, {}))

    # queries

    def boards(self, include_archived: bool = True) -> list[dict[str, Any]]:
        with self.store.read() as conn:
            rows = conn.execute(
                "SELECT id, vals FROM view WHERE kind = 'board' AND vals IS NOT NULL"
            ).fetchall()
        boards = [{"id": i, **_decode(v)} for i, v in rows]
        boards = [b for b in boards if include_archived or not b["archived"]]
        return sorted(boards, key=lambda b: (b["name"].lower(), b["id"]))

    def entity(self, kind: str, entity_id: str) -> dict[str, Any] | None:
        """One entity of the view: its board, values and merge meta, or None."""
        with self.store.read() as conn:
            row = view_row(conn, EntityKey(kind, entity_id))  # type: ignore[arg-type]
        if row is None:
            return None
        board, values, state = row
        if values is None or state is None:
            return None
        return {"id": entity_id, "board": board, "values": _decode(values), "meta": meta(state)}

    def tasks(self, board: str, include_deleted: bool = False) -> list[dict[str, Any]]:
        """A board's tasks in ``position`` order, ties by task id."""
        with self.store.read() as conn:
            rows = conn.execute(
                "SELECT id, vals FROM view WHERE kind = 'task' AND board = ? AND vals IS NOT NULL",
                (board,),
            ).fetchall()
        tasks = [{"id": i, **_decode(v)} for i, v in rows]
        tasks = [t for t in tasks if include_deleted or not t["deleted"]]
        return sorted(tasks, key=lambda t: (t["position"], t["id"]))

    def column(self, board: str, status: str) -> list[dict[str, Any]]:
        return [t for t in self.tasks(board) if t["status"] == status]

    def members(self, board: str) -> list[dict[str, Any]]:
        with self.store.read() as conn:
            rows = conn.execute(
                "SELECT vals FROM view WHERE kind = 'member' AND board = ? AND vals IS NOT NULL",
                (board,),
            ).fetchall()
        members = [_decode(v) for (v,) in rows]
        return sorted(
            (m for m in members if not m["removed"]),
            key=lambda m: (m["role"] != "owner", m["username"]),
        )

    def comments(self, task: str, include_deleted: bool = False) -> list[dict[str, Any]]:
        board = self._require("task", task)["board"]
        with self.store.read() as conn:
            rows = conn.execute(
                "SELECT id, vals FROM view WHERE kind = 'comment' AND board = ? "
                "AND vals IS NOT NULL",
                (board,),
            ).fetchall()
        comments = [{"id": i, **_decode(v)} for i, v in rows]
        comments = [
            c for c in comments if c["task"] == task and (include_deleted or not c["deleted"])
        ]
        return sorted(comments, key=lambda c: (c["created_at"], c["id"]))

    def comment_counts(self, board: str) -> dict[str, int]:
        """How many comments (not deleted) each task of a board has; a task without any is
        not named."""
        with self.store.read() as conn:
            rows = conn.execute(
                "SELECT json_extract(CAST(vals AS TEXT), '$.task'), COUNT(*) FROM view "
                "WHERE kind = 'comment' AND board = ? AND vals IS NOT NULL "
                "AND NOT json_extract(CAST(vals AS TEXT), '$.deleted') "
                "GROUP BY json_extract(CAST(vals AS TEXT), '$.task')",
                (board,),
            ).fetchall()
        return {str(task): int(count) for task, count in rows}

    def notices(self, include_dismissed: bool = False) -> list[dict[str, Any]]:
        with self.store.read() as conn:
            rows = conn.execute(
                "SELECT id, kind, board, task, reason, message, created_at, dismissed FROM notices "
                "ORDER BY created_at, id"
            ).fetchall()
        notices = [
            dict(
                zip(
                    ("id", "kind", "board", "task", "reason", "message", "created_at", "dismissed"),
                    r,
                    strict=True,
                )
            )
            for r in rows
        ]
        for notice in notices:
            notice["dismissed"] = bool(notice["dismissed"])
        return [n for n in notices if include_dismissed or not n["dismissed"]]

    def dismiss_notice(self, notice: str) -> None:
        with self.store.write() as conn:
            conn.execute("UPDATE notices SET dismissed = 1 WHERE id = ?", (notice,))

    def pending_count(self) -> int:
        """Every change not yet confirmed by a pull: waiting to send, or sent."""
        with self.store.read() as conn:
            return Outbox(conn).count()

    def pending_counts(self) -> tuple[int, int]:
        """``(waiting to send, sent and awaiting confirmation)``: the backend has stored the
        second kind, and a pull that reflects them takes them out of the outbox."""
        with self.store.read() as conn:
            outbox = Outbox(conn)
            pending, sent = outbox.count(), outbox.sent_count()
        return pending - sent, sent

    def rejected(self) -> list[dict[str, Any]]:
        with self.store.read() as conn:
            rows = conn.execute(
                "SELECT id, board, reason, detail, at, body FROM rejected ORDER BY at, id"
            ).fetchall()
        return [
            {"id": i, "board": b, "reason": r, "detail": d, "at": a, "event": _kept(body)}
            for i, b, r, d, a, body in rows
        ]

    def snapshot(self) -> dict[str, Any]:
        """The whole local view in the stable form ``outpost client show --json`` prints:
        boards (sorted by name, then id) with their members and tasks (in position order,
        deleted ones included, flagged), tasks with all values and their comments, and
        this device's notices."""
        boards = []
        for board in self.boards():
            tasks = []
            for task in self.tasks(board["id"], include_deleted=True):
                tasks.append({**task, "comments": self.comments(task["id"], include_deleted=True)})
            boards.append({**board, "members": self.members(board["id"]), "tasks": tasks})
        return {"boards": boards, "notices": self.notices(include_dismissed=True)}

    # internals

    def _require(self, kind: str, entity_id: str) -> dict[str, Any]:
        found = self.entity(kind, entity_id)
        if found is None:
            raise NotFound(f"no {kind} {entity_id} in this profile")
        return found

    def _board_in(self, conn: sqlite3.Connection, kind: str, entity_id: str) -> str:
        """The board of an entity of the view (inside the caller's transaction); NotFound
        unless it is in this profile. Reads one column: no merge state decoded."""
        row = conn.execute(
            "SELECT board FROM view WHERE kind = ? AND id = ? AND vals IS NOT NULL",
            (kind, entity_id),
        ).fetchone()
        if row is None:
            raise NotFound(f"no {kind} {entity_id} in this profile")
        return str(row[0])

    def _record_on(self, kind: str, entity_id: str, spec: tuple[str, str, dict[str, Any]]) -> None:
        """One event ``(type, entity, payload)`` on the board of ``kind`` ``entity_id``,
        which must be in this profile: the check, the append and the fold in one
        transaction."""
        with self.store.write() as conn:
            board = self._board_in(conn, kind, entity_id)
            type_, entity, payload = spec
            self._append(conn, (type_, board, entity, payload))

    def _record(self, *specs: tuple[str, str, str, dict[str, Any]]) -> list[str]:
        """Append events to the outbox and fold them into the view, in one transaction."""
        with self.store.write() as conn:
            return self._append(conn, *specs)

    def _append(
        self, conn: sqlite3.Connection, *specs: tuple[str, str, str, dict[str, Any]]
    ) -> list[str]:
        """``_record`` inside the caller's write transaction."""
        username = read_setting(conn, Setting.USERNAME) or OWN_ACTOR
        outbox = Outbox(conn)
        events: list[Event] = []
        for type_, board, entity, payload in specs:
            raw = {
                "id": new_id(),
                "type": type_,
                "schema": 1,
                "board": board,
                "entity": entity,
                "hlc": self.clock.now(),
                "device": self.device_id,
                "payload": {k: v for k, v in payload.items() if v is not None}
                if type_ == "TaskCreated"
                else payload,
            }
            try:
                event = validate_event(raw, Writer.DEVICE)
            except EventRejected as exc:
                raise InvalidAction(exc.detail) from exc
            body = _encode(raw)
            outbox.append(event.id, board, body)
            events.append(msgspec.structs.replace(event, actor=username))
            remember(body, events[-1])
        fold_into_view(conn, events)
        write_setting(conn, Setting.CLOCK_LAST, self.clock.last)
        return [e.id for e in events]


async def _post(
    http: httpx.AsyncClient, path: str, body: dict[str, str], token: str | None = None
) -> httpx.Response:
    try:
        return await http.post(path, content=_encode(body), headers=bearer(token))
    except httpx.HTTPError as exc:
        raise ServerUnreachable(f"cannot reach the server: {type(exc).__name__}: {exc}") from exc


def _refusal(reply: httpx.Response) -> Exception:
    """What the user meets when the server refuses an account request."""
    detail = detail_of(reply) or f"HTTP {reply.status_code}"
    if reply.status_code == 401:
        return SignInRequired(detail)
    if reply.status_code in (400, 403, 422):
        return InvalidAction(detail)
    return ServerUnreachable(f"the server cannot do it now: {detail}")


def _kept(body: bytes) -> Any:
    """A rejected event as kept; a body that is not even JSON, as its text."""
    try:
        return _decode(body)
    except msgspec.DecodeError:
        return {"unreadable": bytes(body).decode(errors="replace")}


__all__ = ["STATUSES", "TASK_DEFAULTS", "TASK_FIELDS", "Device"]
