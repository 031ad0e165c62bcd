"""A device killed (SIGKILL, as by a power cut) in the middle of its writes keeps every action
that returned, and nothing half-written (FAULTS row 14).

A child process (``crash_child.py``) does random actions on one profile folder and prints each
one after it returned; the parent kills it at a random moment, reopens the store and holds it
to what was printed, then starts the child again on the same folder, so the store grows
across kills. 50 kills by default (about 30 s); ``OUTPOST_CRASH_KILLS=1000`` raises the count
(a soak of about eleven minutes on two cores: every 100 kills it starts a new profile, so that
checking the whole store after each kill stays quick), ``OUTPOST_CRASH_SYNC_KILLS`` does the
same for the syncing variant (20 kills), and ``OUTPOST_CRASH_SEED`` replays a seed (the kill
moments stay random).

After every kill:
- SQLite's integrity check passes;
- every printed action is in the view: each printed value of an entity, unless a later
  printed action changed it, and its event is in the outbox (or, when syncing, in the stream);
- nothing is half-written: every outbox row decodes as a valid event, at most the one action
  in flight at the kill was committed without being printed, and the view is exactly the fold
  of the confirmed state and the outbox: no row that no event made, no event left out.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest

from client.device import Device
from client.store.settings import Setting
from client.store.view import event_of
from client.sync.engine import SyncEngine
from client.sync.transport import connect
from protocol import Event, merge
from protocol.merge import EntityKey, EntityState
from tests.support.backend import BackendProcess, ControlledNats
from tests.support.device import PASSWORD
from tests.support.device import Device as ScriptedDevice

KILLS = int(os.environ.get("OUTPOST_CRASH_KILLS", "50"))
SYNC_KILLS = int(os.environ.get("OUTPOST_CRASH_SYNC_KILLS", "20"))
KILLS_PER_PROFILE = 100
ROOT = Path(__file__).resolve().parents[3]

EVENT_OF_ACTION = {
    "create_board": "BoardCreated",
    "rename_board": "BoardUpdated",
    "add_task": "TaskCreated",
    "set_task": "TaskUpdated",
    "move_task": "TaskUpdated",
    "add_label": "TaskLabelAdded",
    "remove_label": "TaskLabelRemoved",
    "delete_task": "TaskDeleted",
    "restore_task": "TaskRestored",
    "add_comment": "CommentAdded",
}

Key = tuple[str, str]
Line = dict[str, Any]


@dataclass
class Promises:
    """What the child's printed lines promise the store holds, across all its runs."""

    values: dict[Key, dict[str, Any]] = field(default_factory=dict)
    """(kind, id) -> the last printed value of each field it set (``label:X``: X is on)."""
    events: dict[str, Key] = field(default_factory=dict)
    """Printed event id -> (event type, entity)."""
    unprinted: dict[str, Key] = field(default_factory=dict)
    """Events of an action killed after its commit but before its ``done`` line."""
    actions: int = 0
    synced: int = 0
    killed_in_action: int = 0
    killed_in_sync: int = 0

    def take(self, lines: list[Line]) -> Line | None:
        """Take in one run's lines; return the action it was killed in, if any."""
        in_flight: Line | None = None
        syncing = False
        for line in lines:
            if "sync_crash" in line:
                pytest.fail(f"the sync engine crashed in the child:\n{line['sync_crash']}")
            if "syncing" in line:
                syncing = True
            if "synced" in line or "sync_error" in line:
                self.synced += "synced" in line
                syncing = False
            if "begin" in line:
                in_flight = line
            if "done" in line:
                assert in_flight is not None and in_flight["begin"] == line["done"], line
                assert len(line["events"]) == 1, f"one action, one event: {line}"
                key = (line["kind"], line["entity"])
                self.values.setdefault(key, {}).update(line["values"])
                self.events[line["events"][0]] = (EVENT_OF_ACTION[line["done"]], line["entity"])
                self.actions += 1
                in_flight = None
        self.killed_in_sync += syncing
        return in_flight

    def account_for(self, outbox: list[Event], in_flight: Line | None) -> None:
        """Events in the outbox that no line promised: at most the action in flight."""
        self.killed_in_action += in_flight is not None
        known = self.events.keys() | self.unprinted.keys()
        new = [event for event in outbox if event.id not in known]
        assert len(new) <= 1, f"committed but never returned: {[e.id for e in new]}"
        if not new:
            return
        event = new[0]
        assert in_flight is not None, f"{event.type} {event.id} belongs to no action"
        assert event.id == outbox[-1].id, "the unprinted event is not the last one made"
        assert event.type == EVENT_OF_ACTION[in_flight["begin"]], (event.type, in_flight)
        assert in_flight["entity"] in (None, event.entity), (event.entity, in_flight)
        self.unprinted[event.id] = (event.type, event.entity)
        # It was committed: the fields it touched may now hold its values, not the printed ones.
        expected = self.values.setdefault((in_flight["kind"], event.entity), {})
        for name in in_flight["touches"]:
            expected.pop(name, None)

    def broken(self, view: dict[Key, dict[str, Any]]) -> list[str]:
        """Every printed value the view does not hold."""
        problems = []
        for (kind, entity), expected in self.values.items():
            actual = view.get((kind, entity))
            if actual is None:
                problems.append(f"{kind} {entity} is missing")
                continue
            for name, value in expected.items():
                label = name.removeprefix("label:")
                held = label in actual["labels"] if label != name else actual[name]
                if held != value:
                    problems.append(f"{kind} {entity} {name}: {held!r}, printed {value!r}")
        return problems


@dataclass
class StoreContents:
    outbox: list[Event]
    confirmed: dict[EntityKey, EntityState]
    view: dict[Key, dict[str, Any]]
    watermark: int


def read_store(device: Device) -> StoreContents:
    """The store, read in one snapshot; every outbox row must decode as a valid event."""
    with device.store.read() as conn:
        outbox_rows = conn.execute("SELECT id, body FROM outbox ORDER BY position").fetchall()
        confirmed_rows = conn.execute("SELECT kind, id, state FROM confirmed").fetchall()
        view_rows = conn.execute("SELECT kind, id, vals FROM view WHERE vals IS NOT NULL")
        view = {(kind, entity): msgspec.json.decode(vals) for kind, entity, vals in view_rows}
    outbox = []
    for event_id, body in outbox_rows:
        event = event_of(body, device.username)  # raises on a torn or invalid event
        assert event.id == event_id
        outbox.append(event)
    confirmed = {
        EntityKey(kind, entity): msgspec.json.decode(state, type=EntityState)
        for kind, entity, state in confirmed_rows
    }
    watermark = int(device.store.setting(Setting.WATERMARK, "0") or 0)
    return StoreContents(outbox, confirmed, view, watermark)


def folded(contents: StoreContents) -> dict[Key, dict[str, Any]]:
    """What the view must be: the confirmed state with every pending event folded on top."""
    states = merge.fold(contents.outbox, contents.confirmed)
    values = {(key.kind, key.id): merge.values(state) for key, state in states.items()}
    return {key: value for key, value in values.items() if value is not None}


def differences(actual: dict[Key, Any], expected: dict[Key, Any]) -> list[str]:
    """Where two views differ, entity by entity (the first 20)."""
    found = [
        f"{key}: {actual.get(key)!r} but expected {expected.get(key)!r}"
        for key in sorted(actual.keys() | expected.keys())
        if actual.get(key) != expected.get(key)
    ]
    return found[:20]


def check_store(folder: Path, promises: Promises, in_flight: Line | None, *, synced: bool) -> None:
    """Reopen the store after a kill and hold it to every promise (the module docstring)."""
    device = Device(folder)
    try:
        assert device.store.integrity_check() == "ok"
        contents = read_store(device)
    finally:
        device.close()
    promises.account_for(contents.outbox, in_flight)
    pending = {event.id: (event.type, event.entity) for event in contents.outbox}
    for event_id, made in promises.events.items():
        if event_id in pending:
            assert pending[event_id] == made, f"event {event_id} is not what was printed"
        else:  # only the backend's watermark takes an event out of the outbox
            assert synced, f"printed event {event_id} ({made}) is not in the outbox"
    assert differences(contents.view, folded(contents)) == [], "the view is not its events' fold"
    assert promises.broken(contents.view) == []


# running the child


def read_lines(out: Path) -> list[Line]:
    """The complete lines of a run: a line the kill cut short was never printed."""
    *complete, _partial = out.read_text().split("\n")
    return [json.loads(line) for line in complete]


def wait_until_ready(child: subprocess.Popen[bytes], out: Path, err: Path) -> None:
    deadline = time.monotonic() + 30
    while '"ready"' not in out.read_text():
        assert child.poll() is None, f"the child exited early:\n{err.read_text()}"
        assert time.monotonic() < deadline, "the child did not open its store in 30 s"
        time.sleep(0.005)


def run_and_kill(
    folder: Path, seed: int, run: int, delay: float, *, wait: bool, server: str | None = None
) -> list[Line]:
    """Start the child on ``folder``, SIGKILL it ``delay`` s later (after it opened the store
    if ``wait``), and return what it printed."""
    out, err = folder.parent / f"run-{run}.out", folder.parent / f"run-{run}.err"
    command = [sys.executable, "-m", "tests.client.store.crash_child", str(folder), str(seed)]
    if server is not None:
        command += ["--server", server]
    with out.open("wb") as stdout, err.open("wb") as stderr:
        child = subprocess.Popen(command, cwd=ROOT, stdout=stdout, stderr=stderr)
    try:
        if wait:
            wait_until_ready(child, out, err)
        time.sleep(delay)
        assert child.poll() is None, f"the child exited on its own:\n{err.read_text()}"
        child.kill()
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    return read_lines(out)


def crash_seed() -> int:
    seed = int(os.environ.get("OUTPOST_CRASH_SEED") or random.randrange(2**32))
    print(f"crash test seed: OUTPOST_CRASH_SEED={seed}")  # shown when the test fails
    return seed


@pytest.mark.integration
def test_a_device_killed_during_its_writes_keeps_every_action_that_returned(
    tmp_path: Path,
) -> None:
    seed = crash_seed()
    rng = random.Random(seed)
    totals = Promises()
    for first in range(0, KILLS, KILLS_PER_PROFILE):
        folder = tmp_path / f"profile-{first}"
        promises = Promises()
        for run in range(first, min(KILLS, first + KILLS_PER_PROFILE)):
            wait = rng.random() > 0.1  # one kill in ten lands while the store opens
            delay = rng.uniform(0, 0.2) if wait else rng.uniform(0, 0.4)
            lines = run_and_kill(folder, seed + run, run, delay, wait=wait)
            check_store(folder, promises, promises.take(lines), synced=False)
        totals.actions += promises.actions
        totals.killed_in_action += promises.killed_in_action
        totals.unprinted |= promises.unprinted
    print(
        f"{KILLS} kills, {totals.actions} actions; {totals.killed_in_action} kills inside an "
        f"action, {len(totals.unprinted)} of them after its commit"
    )
    assert totals.actions > KILLS, "the child should have done a few actions per run"


# the same while syncing


def settle(folder: Path, backend: BackendProcess, nats: ControlledNats) -> StoreContents:
    """Sync until nothing is pending and the watermark covers the whole stream."""
    device = Device(folder)

    async def cycles() -> StoreContents:
        async with connect(backend.url) as http:
            engine = SyncEngine(device, http)
            for _ in range(100):
                await engine.sync()
                contents = read_store(device)
                if not contents.outbox:
                    last = max((e["seq"] for e in nats.events()), default=0)
                    if contents.watermark >= last:
                        return contents
                await asyncio.sleep(0.2)
        pytest.fail(f"no quiescence: {device.pending_count()} pending\n{backend.tail()}")

    try:
        return asyncio.run(cycles())
    finally:
        device.close()


def sign_up(folder: Path, url: str, username: str) -> None:
    device = Device(folder)

    async def signup() -> None:
        async with connect(url) as http:
            await SyncEngine(device, http).signup(username, PASSWORD)

    try:
        asyncio.run(signup())
    finally:
        device.close()


def ledger(backend: BackendProcess) -> list[dict[str, Any]]:
    command = [sys.executable, "-m", "outpost", "backend", "ledger", "--json"]
    command += ["--data-dir", str(backend.data_dir)]
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


@pytest.mark.integration
def test_a_device_killed_while_syncing_loses_nothing_and_applies_nothing_twice(
    tmp_path: Path, backend: BackendProcess, controlled_nats: ControlledNats
) -> None:
    seed = crash_seed()
    rng = random.Random(seed)
    folder = tmp_path / "profile"
    username = f"crash{uuid.uuid4().hex[:10]}"
    sign_up(folder, backend.url, username)
    promises = Promises()
    for run in range(SYNC_KILLS):
        delay = rng.uniform(0, 1.5)
        lines = run_and_kill(folder, seed + run, run, delay, wait=True, server=backend.url)
        check_store(folder, promises, promises.take(lines), synced=True)
    print(
        f"{SYNC_KILLS} kills, {promises.actions} actions, {promises.synced} sync cycles; "
        f"{promises.killed_in_sync} kills inside a sync cycle, {promises.killed_in_action} inside "
        f"an action, {len(promises.unprinted)} of them after its commit"
    )
    assert promises.synced > 0, "the child should have finished a few sync cycles"

    contents = settle(folder, backend, controlled_nats)
    assert promises.broken(contents.view) == []

    events = controlled_nats.events()
    stream = [e["id"] for e in events]
    assert len(stream) == len(set(stream)), "an event is twice in the stream"
    assert set(stream) == promises.events.keys() | promises.unprinted.keys()
    applied = ledger(backend)
    assert [row for row in applied if row["times"] != 1] == []
    assert sorted(row["id"] for row in applied) == sorted(stream)

    pulled = ScriptedDevice(backend.url, username).login()
    pulled.pull()
    assert pulled.watermark >= events[-1]["seq"] and contents.watermark >= events[-1]["seq"]
    backend_view = {key: c["values"] for key, c in pulled.state.items() if key[0] != "notice"}
    assert differences(contents.view, backend_view) == []
