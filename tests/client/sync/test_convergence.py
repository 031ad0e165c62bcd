"""Devices that edit offline converge: real stores, the real sync engine, a real backend.

Every device ends with the same boards as every other and as the backend's pull, whatever
the conflicts (same field, delete against edit, label add against remove, moves, comments),
however many devices a user has, and however long a device stayed offline.
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
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from client.device import Device
from client.sync.engine import MAX_BATCH_EVENTS, CycleResult, SyncEngine
from client.sync.transport import connect
from tests.support.backend import BackendProcess, ControlledNats
from tests.support.device import PASSWORD
from tests.support.device import Device as BackendView
from tests.support.transport import RecordingTransport

pytestmark = pytest.mark.integration

Boards = list[dict[str, Any]]


def unique(name: str) -> str:
    return f"{name}{uuid.uuid4().hex[:8]}"


class Profile:
    """One device of one user: its own store folder, synced over real HTTP when told to."""

    def __init__(self, folder: Path, url: str, username: str) -> None:
        self.device = Device(folder)
        self.url = url
        self.username = username
        self.transport_factory: Callable[[], httpx.AsyncBaseTransport | None] = lambda: None
        """httpx's seam under this device's client (None: real HTTP)."""

    def signup(self) -> Profile:
        asyncio.run(self._online(lambda engine: engine.signup(self.username, PASSWORD)))
        return self

    def login(self) -> Profile:
        asyncio.run(self._online(lambda engine: engine.login(self.username, PASSWORD)))
        return self

    def sync(self) -> CycleResult:
        result: CycleResult = asyncio.run(self._online(lambda engine: engine.sync()))
        return result

    async def _online(self, work: Callable[[SyncEngine], Any]) -> Any:
        async with connect(self.url, transport=self.transport_factory()) as http:
            return await work(SyncEngine(self.device, http))

    def boards(self) -> Boards:
        return list(self.device.snapshot()["boards"])

    def outbox_ids(self) -> list[str]:
        with self.device.store.read() as conn:
            return [r[0] for r in conn.execute("SELECT id FROM outbox ORDER BY position")]

    def rejected_entities(self) -> set[str]:
        return {r["event"]["entity"] for r in self.device.rejected()}


def settle(profiles: list[Profile], timeout: float = 60) -> Boards:
    """Sync every device, round after round, until nothing is pending anywhere and a whole
    further round changes no device's boards; return the boards they all agree on."""
    deadline = time.monotonic() + timeout
    previous: list[Boards] | None = None
    while True:
        for profile in profiles:
            profile.sync()
        current = [profile.boards() for profile in profiles]
        drained = all(profile.device.pending_count() == 0 for profile in profiles)
        if drained and current == previous:
            break
        previous = current if drained else None
        if time.monotonic() > deadline:
            pending = {p.device.device_id: p.device.pending_count() for p in profiles}
            pytest.fail(f"no quiescence in {timeout}s; pending: {pending}")
        time.sleep(0.05)
    for profile, boards in zip(profiles[1:], current[1:], strict=True):
        assert boards == current[0], f"{profile.username} on {profile.device.device_id} diverged"
    return current[0]


def backend_boards(url: str, username: str) -> Boards:
    """What the backend's pull gives a fresh device of ``username``, in ``snapshot()`` form."""
    view = BackendView(url, username).login()
    view.pull()
    changes = list(view.state.values())

    def of(kind: str, board: str) -> list[dict[str, Any]]:
        return [
            {"id": c["id"], **c["values"]}
            for c in changes
            if c["kind"] == kind and c["board"] == board
        ]

    boards = []
    for board in (c for c in changes if c["kind"] == "board"):
        members = [
            {k: v for k, v in m.items() if k != "id"}
            for m in of("member", board["id"])
            if not m["removed"]
        ]
        comments = of("comment", board["id"])
        tasks = sorted(of("task", board["id"]), key=lambda t: (t["position"], t["id"]))
        for task in tasks:
            mine = [c for c in comments if c["task"] == task["id"]]
            task["comments"] = sorted(mine, key=lambda c: (c["created_at"], c["id"]))
        boards.append(
            {
                "id": board["id"],
                **board["values"],
                "members": sorted(members, key=lambda m: (m["role"] != "owner", m["username"])),
                "tasks": tasks,
            }
        )
    return sorted(boards, key=lambda b: (b["name"].lower(), b["id"]))


def task_of(boards: Boards, task: str) -> dict[str, Any]:
    return next(t for b in boards for t in b["tasks"] if t["id"] == task)


def later() -> None:
    """Let the wall clock move on, so the next device's edits have clearly later hlcs."""
    time.sleep(0.05)


# 1. two users, one shared board, every kind of conflict


def test_two_users_editing_offline_converge_to_the_backends_view(
    tmp_path: Path, module_backend: BackendProcess
) -> None:
    url = module_backend.url
    alice = Profile(tmp_path / "alice", url, unique("alice")).signup()
    bob = Profile(tmp_path / "bob", url, unique("bob")).signup()
    a = alice.device
    board = a.create_board("Launch")
    same_field = a.add_task(board, "title both edit")
    two_fields = a.add_task(board, "priority and due")
    doomed = a.add_task(board, "alice deletes, bob edits")
    labelled = a.add_task(board, "labels", labels=["urgent", "old"])
    moved = a.add_task(board, "moved both ways")
    reordered = a.add_task(board, "reordered")
    a.add_task(board, "a neighbour")
    talked = a.add_task(board, "comments")
    a.share_board(board, bob.username)
    settle([alice, bob])
    b = bob.device

    # Offline from here on: each edits without syncing, bob clearly after alice, except
    # for the notes, where bob writes first so that alice's later edit wins.
    b.set_task(same_field, notes="bob's notes")
    later()
    a.set_task(same_field, title="alice's title", notes="alice's notes")
    a.set_task(two_fields, priority=3)
    a.delete_task(doomed)
    a.remove_label(labelled, "urgent")
    a.remove_label(labelled, "old")
    a.remove_label(labelled, "fresh")  # never seen here: observes no add
    a.move_task(moved, status="doing", index=0)
    a.move_task(reordered, index=0)
    alice_comment = a.add_comment(talked, "alice says")
    later()
    b.set_task(same_field, title="bob's title")
    b.set_task(two_fields, due="2026-12-24")
    b.set_task(doomed, title="edited while deleted")
    b.add_label(labelled, "urgent")
    b.add_label(labelled, "fresh")
    b.move_task(moved, status="done", index=0)
    b.move_task(reordered)
    bob_comment = b.add_comment(talked, "bob says")

    agreed = settle([alice, bob])

    assert agreed == backend_boards(url, alice.username) == backend_boards(url, bob.username)
    assert len(agreed) == 1 and [m["username"] for m in agreed[0]["members"]] == [
        alice.username,
        bob.username,
    ]
    title = task_of(agreed, same_field)
    assert (title["title"], title["notes"]) == ("bob's title", "alice's notes")
    stamps = a.entity("task", same_field)["meta"]["fields"]  # type: ignore[index]
    assert stamps["title"]["hlc"].endswith(f":{b.device_id}")  # the later hlc: bob's
    assert stamps["notes"]["hlc"].endswith(f":{a.device_id}")
    both = task_of(agreed, two_fields)
    assert (both["priority"], both["due"]) == (3, "2026-12-24")
    deleted = task_of(agreed, doomed)
    assert deleted["deleted"] is True and deleted["title"] == "edited while deleted"
    assert task_of(agreed, labelled)["labels"] == ["fresh", "urgent"]
    assert task_of(agreed, moved)["status"] == "done"
    comments = task_of(agreed, talked)["comments"]
    assert {(c["id"], c["body"], c["author"]) for c in comments} == {
        (alice_comment, "alice says", alice.username),
        (bob_comment, "bob says", bob.username),
    }
    assert a.rejected() == b.rejected() == []


# 2. three devices, two of them one user's


def three_devices(tmp_path: Path, url: str) -> tuple[Profile, Profile, Profile, str]:
    """Alice's laptop and phone, and bob, all synced on a board alice shared with bob."""
    alice = unique("alice")
    laptop = Profile(tmp_path / "laptop", url, alice).signup()
    phone = Profile(tmp_path / "phone", url, alice).login()
    bob = Profile(tmp_path / "bob", url, unique("bob")).signup()
    board = laptop.device.create_board("Household")
    laptop.device.share_board(board, bob.username)
    return laptop, phone, bob, board


def test_two_devices_of_one_user_and_another_user_converge_after_conflicts(
    tmp_path: Path, module_backend: BackendProcess
) -> None:
    url = module_backend.url
    laptop, phone, bob, board = three_devices(tmp_path, url)
    task = laptop.device.add_task(board, "groceries", labels=["home"])
    other = laptop.device.add_task(board, "taxes")
    settle([laptop, phone, bob])

    laptop.device.set_task(task, title="laptop", priority=1)
    phone.device.delete_task(other)
    phone.device.remove_label(task, "home")
    bob.device.add_comment(task, "from bob")
    later()
    phone.device.set_task(task, title="phone")
    bob.device.set_task(other, due="2027-01-31")
    bob.device.add_label(task, "home")
    laptop.device.move_task(task, status="doing")
    later()
    bob.device.move_task(task, status="done", index=0)
    laptop.device.add_comment(task, "from the laptop")

    agreed = settle([laptop, phone, bob])
    assert agreed == backend_boards(url, laptop.username) == backend_boards(url, bob.username)
    merged = task_of(agreed, task)
    assert (merged["title"], merged["priority"], merged["status"]) == ("phone", 1, "done")
    assert merged["labels"] == ["home"] and len(merged["comments"]) == 2
    assert task_of(agreed, other)["deleted"] and task_of(agreed, other)["due"] == "2027-01-31"


class RandomScenario:
    """Random actions on random devices, random devices syncing in between; it remembers
    every event each action made and every task and comment it created."""

    def __init__(self, seed: int, profiles: list[Profile], board: str) -> None:
        self.rng = random.Random(seed)
        self.profiles = profiles
        self.board = board
        self.made: set[str] = set()  # the id of every event an action made
        self.created: list[tuple[str, str, Profile]] = []  # (kind, id, device)

    def run(self, actions: int) -> None:
        for step in range(actions):
            profile = self.rng.choice(self.profiles)
            before = set(profile.outbox_ids())
            self.act(profile, step)
            self.made |= set(profile.outbox_ids()) - before
            if self.rng.random() < 0.2:
                for syncing in self.rng.sample(self.profiles, self.rng.randint(1, 3)):
                    syncing.sync()

    def act(self, profile: Profile, step: int) -> None:
        rng, device = self.rng, profile.device
        tasks = device.tasks(self.board, include_deleted=True)
        if not tasks or rng.random() < 0.15:
            labels = rng.sample(["ui", "bug", "p1"], rng.randrange(3))
            task = device.add_task(self.board, f"task {step}", labels=labels)
            self.created.append(("task", task, profile))
            return
        task = rng.choice(tasks)["id"]
        label = rng.choice(["ui", "bug", "p1"])
        roll = rng.random()
        if roll < 0.3:
            fields = {
                "title": f"title {step}",
                "priority": rng.randrange(5),
                "due": rng.choice([None, "2026-12-24", "2027-01-31"]),
                "notes": rng.choice(["", f"note {step}"]),
            }
            picked = rng.sample(sorted(fields), rng.randint(1, 2))
            device.set_task(task, **{name: fields[name] for name in picked})
        elif roll < 0.5:
            device.move_task(task, rng.choice(["todo", "doing", "done"]), rng.randrange(4))
        elif roll < 0.6:
            device.add_label(task, label)
        elif roll < 0.7:
            device.remove_label(task, label)
        elif roll < 0.8:
            (device.delete_task if rng.random() < 0.6 else device.restore_task)(task)
        elif roll < 0.9:
            comment = device.add_comment(task, f"comment {step}")
            self.created.append(("comment", comment, profile))
        elif roll < 0.95:
            comments = device.comments(task)
            if comments:  # bob may not delete alice's: that one is rejected, forbidden
                device.delete_comment(rng.choice(comments)["id"])
        else:
            device.rename_board(self.board, f"Household {step}")  # bob's are forbidden


def entity_ids(boards: Boards) -> set[str]:
    ids = set()
    for board in boards:
        for task in board["tasks"]:
            ids.add(task["id"])
            ids.update(c["id"] for c in task["comments"])
    return ids


@pytest.mark.parametrize("seed", range(5))
def test_random_offline_edits_on_three_devices_converge_and_lose_nothing(
    seed: int, tmp_path: Path, module_backend: BackendProcess, module_nats: ControlledNats
) -> None:
    url = module_backend.url
    laptop, phone, bob, board = three_devices(tmp_path, url)
    profiles = [laptop, phone, bob]
    settle(profiles)
    scenario = RandomScenario(seed, profiles, board)
    scenario.run(60)

    agreed = settle(profiles)

    assert agreed == backend_boards(url, laptop.username) == backend_boards(url, bob.username)
    present = entity_ids(agreed)
    for kind, entity, profile in scenario.created:
        assert entity in present or entity in profile.rejected_entities(), (kind, entity)
    stored = {e["id"] for e in module_nats.events() if e.get("board") == board}
    rejected = {r["id"]: (p, r) for p in profiles for r in p.device.rejected()}
    for event_id in scenario.made:
        assert (event_id in stored) != (event_id in rejected), event_id
    for profile, rejection in rejected.values():
        # The only refusals this scenario can earn: bob renaming the board or deleting
        # a comment of alice's.
        assert profile is bob and rejection["reason"] == "forbidden", rejection
        assert rejection["event"]["type"] in ("BoardUpdated", "CommentDeleted"), rejection


# 3. a long time offline


def test_five_thousand_events_made_offline_drain_in_batches_once_each(
    tmp_path: Path, backend: BackendProcess, controlled_nats: ControlledNats
) -> None:
    laptop = Profile(tmp_path / "laptop", backend.url, unique("alice")).signup()
    board = laptop.device.create_board("Long trip")
    settle([laptop])
    before = {e["id"] for e in controlled_nats.events()}
    for i in range(1000):
        task = laptop.device.add_task(board, f"task {i}")
        for priority in range(1, 5):
            laptop.device.set_task(task, priority=priority)
    pending = laptop.outbox_ids()
    assert len(pending) == laptop.device.pending_count() == 5000

    recorders: list[RecordingTransport] = []

    def recording() -> RecordingTransport:
        recorders.append(RecordingTransport())
        return recorders[-1]

    laptop.transport_factory = recording
    agreed = settle([laptop], timeout=90)

    assert laptop.device.pending_count() == 0
    pushes = [size for recorder in recorders for size in recorder.push_sizes()]
    assert sum(count for count, _ in pushes) == 5000, pushes  # nothing sent twice
    assert len(pushes) >= 5000 // MAX_BATCH_EVENTS
    assert all(count <= MAX_BATCH_EVENTS and size <= 1024 * 1024 for count, size in pushes)
    stream = [e["id"] for e in controlled_nats.events()]
    assert len(stream) == len(set(stream)) == len(before) + 5000
    assert set(stream) == before | set(pending)
    ledger = json.loads(
        outpost("backend", "ledger", "--json", "--data-dir", str(backend.data_dir)).stdout
    )
    assert sorted(row["id"] for row in ledger) == sorted(stream)
    assert all(row["times"] == 1 for row in ledger)
    phone = Profile(tmp_path / "phone", backend.url, laptop.username).login()
    assert settle([phone]) == agreed
    assert [t["priority"] for t in agreed[0]["tasks"]] == [4] * 1000


# 4. the command line, one process per command


def outpost(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "outpost", *args]
    return subprocess.run(
        command, capture_output=True, text=True, check=True, env={**os.environ, **(env or {})}
    )


def pending(status: str) -> int:
    lines = dict(line.strip().split(": ", 1) for line in status.splitlines())
    return int(lines["waiting to send"]) + int(lines["awaiting confirmation"])


def test_two_profiles_driven_by_the_command_line_show_the_same_boards(
    tmp_path: Path, module_backend: BackendProcess
) -> None:
    def client(folder: str, *args: str) -> str:
        base = ("client", "--data-dir", str(tmp_path / folder), "--server", module_backend.url)
        return outpost(*base, *args, env={"OUTPOST_PASSWORD": PASSWORD}).stdout.strip()

    alice, bob = unique("alice"), unique("bob")
    client("alice", "signup", alice)
    client("bob", "signup", bob)
    board = client("alice", "board", "create", "Shared")
    task = client("alice", "task", "add", board, "write the tests", "--label", "cli")
    client("alice", "board", "share", board, bob)
    client("alice", "sync")
    client("bob", "sync")
    client("bob", "comment", "add", task, "on it")
    client("bob", "task", "set", task, "priority=2")
    client("alice", "task", "move", task, "--status", "doing")

    deadline = time.monotonic() + 60
    previous = None
    while True:  # as settle(): nothing pending, and a further round changes nothing
        for folder in ("alice", "bob"):
            client(folder, "sync")
        shown = [json.loads(client(f, "show", "--json"))["boards"] for f in ("alice", "bob")]
        drained = all(pending(client(f, "status")) == 0 for f in ("alice", "bob"))
        if drained and shown == previous:
            break
        previous = shown if drained else None
        assert time.monotonic() < deadline, "the two profiles did not settle"
        time.sleep(0.1)
    assert shown[0] == shown[1]
    [merged] = shown[0][0]["tasks"]
    assert (merged["id"], merged["status"], merged["priority"]) == (task, "doing", 2)
    assert [c["body"] for c in merged["comments"]] == ["on it"]
    assert shown[0] == backend_boards(module_backend.url, bob)
