"""The child of the crash tests: a device that does random actions until it is killed.

``python -m tests.client.store.crash_child FOLDER SEED [--server URL]`` opens the Device in
FOLDER (the same folder run after run, so the store accumulates across kills) and loops for
ever. Each action is announced before it starts and reported after it returned, one JSON
object a line on stdout, flushed at once:

- ``{"ready": device id}`` once the store is open;
- ``{"begin": action, "kind", "entity", "touches"}``: what the action may change (the
  entity is null for a create);
- ``{"done": action, "kind", "entity", "values", "events"}``: the values it set (``label:X``
  is whether label X is on the task), and the ids of the events it appended to the outbox.

A ``done`` line is a promise: the parent holds the store to it after a SIGKILL. With
``--server`` the device also syncs, in the same event loop, while it acts (as the app's
sync thread does), and reports each cycle as it starts (``syncing``) and ends (``synced``,
``sync_error``, ``sync_crash``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from client.device import Device
from client.errors import ServerUnreachable, SignInRequired
from client.sync.engine import SyncEngine
from client.sync.transport import connect

LABELS = ("bug", "ui", "sync", "later", "p1")
STATUSES = ("todo", "doing", "done")
NOTES = ("", "short note", "longer notes " * 40, "n" * 3000)

Outcome = tuple[str, str, dict[str, Any]]
"""What an action did: the kind and id of its entity, and the values it set."""

FIELD_VALUES: dict[str, Callable[[random.Random], Any]] = {
    "title": lambda rng: f"title {rng.randrange(10_000)}",
    "notes": lambda rng: rng.choice(NOTES),
    "priority": lambda rng: rng.randrange(5),
    "due": lambda rng: rng.choice([None, "2026-12-24", "2027-02-28"]),
    "assignee": lambda rng: rng.choice([None, "alice", "bob"]),
}


def emit(line: dict[str, Any]) -> None:
    """One line, one write, flushed: on disk (in the page cache) before anything else runs."""
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


@dataclass
class Plan:
    action: str
    kind: str
    entity: str | None
    touches: list[str]
    run: Callable[[], Outcome]


class RandomActions:
    """Random actions on whatever boards and tasks the store holds already."""

    def __init__(self, device: Device, rng: random.Random) -> None:
        self.device = device
        self.rng = rng
        self.boards = [b["id"] for b in device.boards()]
        self.tasks = [
            t["id"] for board in self.boards for t in device.tasks(board, include_deleted=True)
        ]

    def step(self) -> None:
        plan = self._plan()
        emit(
            {
                "begin": plan.action,
                "kind": plan.kind,
                "entity": plan.entity,
                "touches": plan.touches,
            }
        )
        mark = self._outbox_mark()
        kind, entity, values = plan.run()
        events = self._events_after(mark)
        emit(
            {
                "done": plan.action,
                "kind": kind,
                "entity": entity,
                "values": values,
                "events": events,
            }
        )

    def _plan(self) -> Plan:
        if not self.boards or self.rng.random() < 0.02:
            return self._create_board()
        if not self.tasks:
            return self._add_task()
        planners: dict[Callable[[], Plan], int] = {
            self._rename_board: 2,
            self._add_task: 20,
            self._set_task: 25,
            self._move_task: 15,
            self._add_label: 8,
            self._remove_label: 6,
            self._delete_task: 5,
            self._restore_task: 4,
            self._add_comment: 8,
        }
        planner = self.rng.choices(list(planners), weights=list(planners.values()))[0]
        return planner()

    # the actions

    def _create_board(self) -> Plan:
        name = f"board {self.rng.randrange(10_000)}"

        def run() -> Outcome:
            board = self.device.create_board(name)
            self.boards.append(board)
            return "board", board, {"name": name, "archived": False}

        return Plan("create_board", "board", None, [], run)

    def _rename_board(self) -> Plan:
        board = self.rng.choice(self.boards)
        name = f"renamed {self.rng.randrange(10_000)}"

        def run() -> Outcome:
            self.device.rename_board(board, name)
            return "board", board, {"name": name}

        return Plan("rename_board", "board", board, ["name"], run)

    def _add_task(self) -> Plan:
        board = self.rng.choice(self.boards)
        title = f"task {self.rng.randrange(10_000)}"
        labels = self.rng.sample(LABELS, k=self.rng.randrange(3))
        fields = {
            "status": self.rng.choice(STATUSES),
            "priority": self.rng.randrange(5),
            "notes": self.rng.choice(NOTES),
        }

        def run() -> Outcome:
            task = self.device.add_task(board, title, labels=labels, **fields)
            self.tasks.append(task)
            values = {"title": title, **fields, "deleted": False, "position": self._position(task)}
            return "task", task, values | {f"label:{label}": True for label in labels}

        return Plan("add_task", "task", None, [], run)

    def _set_task(self) -> Plan:
        task = self.rng.choice(self.tasks)
        names = self.rng.sample(sorted(FIELD_VALUES), k=self.rng.randrange(1, 4))
        fields = {name: FIELD_VALUES[name](self.rng) for name in names}

        def run() -> Outcome:
            self.device.set_task(task, **fields)
            return "task", task, fields

        return Plan("set_task", "task", task, sorted(fields), run)

    def _move_task(self) -> Plan:
        task = self.rng.choice(self.tasks)
        status = self.rng.choice(STATUSES)
        index = self.rng.randrange(6)

        def run() -> Outcome:
            self.device.move_task(task, status, index)
            return "task", task, {"status": status, "position": self._position(task)}

        return Plan("move_task", "task", task, ["position", "status"], run)

    def _add_label(self) -> Plan:
        return self._label("add_label", self.device.add_label, True)

    def _remove_label(self) -> Plan:
        return self._label("remove_label", self.device.remove_label, False)

    def _label(self, action: str, change: Callable[[str, str], None], on: bool) -> Plan:
        task = self.rng.choice(self.tasks)
        label = self.rng.choice(LABELS)

        def run() -> Outcome:
            change(task, label)
            return "task", task, {f"label:{label}": on}

        return Plan(action, "task", task, [f"label:{label}"], run)

    def _delete_task(self) -> Plan:
        return self._deletion("delete_task", self.device.delete_task, True)

    def _restore_task(self) -> Plan:
        return self._deletion("restore_task", self.device.restore_task, False)

    def _deletion(self, action: str, change: Callable[[str], None], deleted: bool) -> Plan:
        task = self.rng.choice(self.tasks)

        def run() -> Outcome:
            change(task)
            return "task", task, {"deleted": deleted}

        return Plan(action, "task", task, ["deleted"], run)

    def _add_comment(self) -> Plan:
        task = self.rng.choice(self.tasks)
        body = f"comment {self.rng.randrange(10_000)}"

        def run() -> Outcome:
            comment = self.device.add_comment(task, body)
            return "comment", comment, {"task": task, "body": body, "deleted": False}

        return Plan("add_comment", "comment", None, [], run)

    # reading back

    def _position(self, task: str) -> str:
        found = self.device.entity("task", task)
        assert found is not None
        return str(found["values"]["position"])

    def _outbox_mark(self) -> int:
        with self.device.store.read() as conn:
            return int(conn.execute("SELECT COALESCE(MAX(position), 0) FROM outbox").fetchone()[0])

    def _events_after(self, mark: int) -> list[str]:
        """The ids of the events appended since ``mark`` (positions only grow: AUTOINCREMENT)."""
        with self.device.store.read() as conn:
            rows = conn.execute(
                "SELECT id FROM outbox WHERE position > ? ORDER BY position", (mark,)
            ).fetchall()
        return [str(row[0]) for row in rows]


async def act_while_syncing(actions: RandomActions, server: str, rng: random.Random) -> None:
    http = connect(server, timeout=10)  # the child is killed: no need to close it
    engine = SyncEngine(actions.device, http)
    syncing = asyncio.create_task(keep_syncing(engine, rng))
    while not syncing.done():
        actions.step()
        await asyncio.sleep(rng.uniform(0, 0.01))  # the sync cycle runs in these gaps
    await syncing


async def keep_syncing(engine: SyncEngine, rng: random.Random) -> None:
    while True:
        emit({"syncing": True})
        try:
            result = await engine.sync()
            emit({"synced": result.pushed, "pulled": result.pulled, "errors": result.errors})
        except (ServerUnreachable, SignInRequired) as exc:
            emit({"sync_error": str(exc)})
        except Exception:
            emit({"sync_crash": traceback.format_exc()})
            raise
        await asyncio.sleep(rng.uniform(0, 0.05))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", type=Path)
    parser.add_argument("seed", type=int)
    parser.add_argument("--server")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    device = Device(args.folder)
    actions = RandomActions(device, rng)
    emit({"ready": device.device_id})
    if args.server is None:
        while True:
            actions.step()
    asyncio.run(act_while_syncing(actions, args.server, rng))


if __name__ == "__main__":
    main()
