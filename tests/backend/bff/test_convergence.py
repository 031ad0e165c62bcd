"""The same events give the same views: pushed twice, in another order, to another backend,
with the views in SQLite or in a real PostgreSQL."""

from __future__ import annotations

import random
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.backend import BackendProcess, ControlledNats
from tests.support.device import Device

pytestmark = pytest.mark.integration

FIELDS: dict[str, Any] = {
    "title": lambda r: f"title {r.randrange(50)}",
    "notes": lambda r: r.choice(["", "short note", "longer " * 20]),
    "status": lambda r: r.choice(["todo", "doing", "done"]),
    "priority": lambda r: r.randrange(5),
    "due": lambda r: r.choice([None, "2026-12-24", "2027-01-31"]),
    "assignee": lambda r: r.choice([None, "alice", "bob"]),
    "position": lambda r: r.choice(["a0", "a1", "a0V", "Zz"]),
}


def scenario(seed: int, alice: Device, laptop: Device, count: int = 1000) -> list[dict[str, Any]]:
    """``count`` events on one board from two devices of one user, with conflicts."""
    rng = random.Random(seed)
    board, created = alice.new_board("Convergence")
    events = [created]
    tasks: list[str] = []
    adds: dict[tuple[str, str], list[str]] = {}
    while len(events) < count:
        device = rng.choice([alice, laptop])
        roll = rng.random()
        if roll < 0.15 or not tasks:
            task, event = device.new_task(
                board,
                title=f"task {len(tasks)}",
                labels=rng.sample(["ui", "bug", "p1"], rng.randrange(3)),
            )
            tasks.append(task)
            for label in event["payload"]["labels"]:
                adds.setdefault((task, label), []).append(event["id"])
            events.append(event)
            continue
        task = rng.choice(tasks[-20:])  # hot spots: recent tasks get most edits
        label = rng.choice(["ui", "bug", "p1"])
        if roll < 0.55:
            names = rng.sample(sorted(FIELDS), rng.randrange(1, 4))
            payload = {"fields": {n: FIELDS[n](rng) for n in names}}
            events.append(device.event("TaskUpdated", payload, board=board, entity=task))
        elif roll < 0.7:
            event = device.event("TaskLabelAdded", {"label": label}, board=board, entity=task)
            adds.setdefault((task, label), []).append(event["id"])
            events.append(event)
        elif roll < 0.8:
            seen = adds.get((task, label), [])
            observed = rng.sample(seen, rng.randrange(len(seen) + 1))
            payload = {"label": label, "observed": observed}
            events.append(device.event("TaskLabelRemoved", payload, board=board, entity=task))
        elif roll < 0.9:
            kind = rng.choice(["TaskDeleted", "TaskRestored"])
            events.append(device.event(kind, {}, board=board, entity=task))
        else:
            payload = {"task": task, "body": f"comment {len(events)}"}
            events.append(
                device.event("CommentAdded", payload, board=board, entity=str(uuid.uuid4()))
            )
    return events


def push_all(device: Device, events: list[dict[str, Any]], batch: int = 250) -> int:
    last = 0
    for start in range(0, len(events), batch):
        results = device.push(*events[start : start + batch])
        assert {r["status"] for r in results} <= {"accepted", "duplicate"}, results
        last = max([last] + [r["seq"] for r in results])
    return last


def views(device: Device) -> dict[tuple[str, str], tuple[Any, Any]]:
    return {key: (c["values"], c["meta"]) for key, c in device.state.items()}


def other_order(events: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """Any order the backend can authorize: the board first, comments after their tasks."""
    rng = random.Random(seed)
    middle = [e for e in events[1:] if e["type"] != "CommentAdded"]
    comments = [e for e in events if e["type"] == "CommentAdded"]
    rng.shuffle(middle)
    rng.shuffle(comments)
    return [events[0], *middle, *comments]


def test_a_thousand_events_twice_and_in_another_order_elsewhere_give_identical_pulls(
    tmp_path: Path, controlled_nats: ControlledNats, db_url: str | None
) -> None:
    first = BackendProcess(tmp_path / "first", nats_url=controlled_nats.url).start()
    other_nats = ControlledNats(tmp_path / "other-nats")
    second = BackendProcess(tmp_path / "second", nats_url=other_nats.url, db_url=db_url)
    try:
        second.start()
        alice = Device(first.url, "alice").signup()
        laptop = Device(first.url, "alice").login()
        events = scenario(7, alice, laptop)
        assert push_all(alice, events) == push_all(alice, events) == len(events)
        assert len(controlled_nats.events()) == len(events)
        alice.sync_until(len(events), timeout=60)

        elsewhere = Device(second.url, "alice").signup()
        elsewhere.device_id = alice.device_id  # the same devices push to the other backend
        by_device = {e["device"] for e in events}
        assert by_device == {alice.device_id, laptop.device_id}
        seq = push_all(elsewhere, other_order(events, seed=11))
        elsewhere.sync_until(seq, timeout=60)

        assert len(views(alice)) > 150
        assert views(elsewhere) == views(alice)
    finally:
        first.stop()
        second.stop()
        other_nats.stop()


def test_pages_of_any_size_give_the_same_views(
    tmp_path: Path, module_backend: BackendProcess
) -> None:
    alice = Device(module_backend.url, f"pager{uuid.uuid4().hex[:6]}").signup()
    laptop = Device(module_backend.url, alice.username).login()
    events = scenario(3, alice, laptop, count=300)
    alice.sync_until(push_all(alice, events))
    reference = views(alice)
    for limit in (1, 7, 1000):
        reader = Device(module_backend.url, alice.username).login()
        reader.pull(limit=limit)
        assert views(reader) == reference, f"limit {limit}"


def test_large_pulls_are_compressed_and_private(module_backend: BackendProcess) -> None:
    alice = Device(module_backend.url, f"gzip{uuid.uuid4().hex[:6]}").signup()
    events = scenario(5, alice, alice, count=200)
    alice.sync_until(push_all(alice, events))
    response = alice.http.get("/v1/sync/pull", headers={**alice.headers, "Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["cache-control"] == "no-store, private"
    assert len(response.content) > 4096  # httpx has inflated it: the JSON was large
