"""The lake on real parts: a lake process killed again and again under load archives every
event exactly once; with the stream deleted, a replay from the lake alone rebuilds the views,
old cursors get ``reset`` and converge; export and its errors through the command line."""

from __future__ import annotations

import contextlib
import gzip
import json
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from backend.lake import files as lakefiles
from tests.support.backend import BackendProcess, ControlledNats
from tests.support.device import Device

pytestmark = pytest.mark.integration


def outpost(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "outpost", *args]
    return subprocess.run(command, capture_output=True, text=True, check=check, timeout=120)


class LakeProcess:
    """``outpost backend consume --components lake``: the lake alone, to kill at will."""

    def __init__(self, data: Path, nats_url: str) -> None:
        self.data = data
        self.command = [
            sys.executable,
            "-m",
            "outpost",
            "backend",
            "consume",
            "--components",
            "lake",
            "--data-dir",
            str(data),
            "--nats-url",
            nats_url,
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        with (self.data / "lake.log").open("ab") as log:
            self.process = subprocess.Popen(
                self.command, stdout=log, stderr=log, stdin=subprocess.DEVNULL
            )

    def runs(self) -> int:
        """How many times a lake process of this data folder got as far as consuming."""
        log = self.data / "lake.log"
        return log.read_text(errors="replace").count("consumers running") if log.exists() else 0

    def start_and_wait(self, timeout: float = 30) -> None:
        before = self.runs()
        self.start()
        deadline = time.monotonic() + timeout
        while self.runs() == before:
            assert self.process is not None and self.process.poll() is None, self.tail()
            assert time.monotonic() < deadline, f"the lake did not start:\n{self.tail()}"
            time.sleep(0.05)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                assert self.process.wait(20) == 0, self.tail()
            except subprocess.TimeoutExpired:
                self.kill()
                raise

    def tail(self) -> str:
        return "\n".join((self.data / "lake.log").read_text(errors="replace").splitlines()[-30:])

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        path = self.data / "lake.db"
        if not path.exists():
            return []
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        with contextlib.closing(connection) as db:
            try:
                return db.execute(sql).fetchall()
            except sqlite3.OperationalError:  # the tables are not made yet
                return []

    def position(self) -> int:
        rows = self.query("SELECT seq FROM positions WHERE component = 'lake'")
        return int(rows[0][0]) if rows else 0

    def wait_for(self, seq: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.position() < seq:
            assert self.process is not None and self.process.poll() is None, self.tail()
            assert time.monotonic() < deadline, f"lake at {self.position()}, not {seq}"
            time.sleep(0.1)


def ids_in_files(lake: Path) -> Counter[str]:
    """Every event id in every lake file on disk, read whole with plain gzip."""
    found: Counter[str] = Counter()
    for relative in lakefiles.lake_files(lake):
        date, hour = relative.split("/")[:2]
        with gzip.open(lake / relative, "rb") as file:
            for raw in file:
                line = lakefiles.decode_line(raw)
                stored = datetime.fromtimestamp(line.time_ms / 1000, UTC)
                assert (date, hour) == (f"date={stored:%Y-%m-%d}", f"hour={stored:%H}")
                found[msgspec.json.decode(line.data)["id"]] += 1
    return found


def board_with_tasks(device: Device, count: int, name: str = "Lake") -> tuple[str, list[Any]]:
    board, created = device.new_board(name)
    return board, [created] + [device.new_task(board, title=f"t{i}")[1] for i in range(count)]


def test_a_lake_killed_20_times_under_load_archives_every_event_exactly_once(
    tmp_path: Path, controlled_nats: ControlledNats
) -> None:
    data = tmp_path / "b"
    backend = BackendProcess(
        data, nats_url=controlled_nats.url, env={"OUTPOST_COMPONENTS": "projector"}
    ).start()
    lake = LakeProcess(data, controlled_nats.url)
    rng = random.Random(20)
    try:
        devices = [Device(backend.url, f"user{i}").signup() for i in range(5)]
        batches = []
        for device in devices:  # 5 boards of 1 + 999 tasks: 5,000 events
            _, events = board_with_tasks(device, 999)
            batches += [(device, events[i : i + 100]) for i in range(0, len(events), 100)]
        rng.shuffle(batches)
        batches.sort(key=lambda b: b[1][0]["type"] != "BoardCreated")  # boards first
        last_seq = [0]
        pushed = threading.Event()
        started = time.monotonic()

        def pusher() -> None:
            for index, (device, batch) in enumerate(batches):
                time.sleep(max(0.0, started + index * 0.8 - time.monotonic()))
                results = device.push(*batch)
                assert {r["status"] for r in results} == {"accepted"}
                last_seq[0] = max(last_seq[0], *(r["seq"] for r in results))
                pushed.set()

        thread = threading.Thread(target=pusher)
        thread.start()
        killed_at = []
        for round_ in range(20):
            if round_ % 4 == 3:  # while it starts up
                lake.start()
                time.sleep(rng.uniform(0.1, 1.0))
            else:  # most likely mid-batch: just after a push was stored
                lake.start_and_wait()
                pushed.clear()
                pushed.wait(3)
                time.sleep(rng.uniform(0, 0.04))
            lake.kill()
            killed_at.append(lake.position())
        thread.join(120)
        assert not thread.is_alive()
        # the lake never holds back the watermark: the views are current with it down
        devices[0].sync_until(last_seq[0], timeout=30)
        lake.start_and_wait()
        lake.wait_for(last_seq[0])
        lake.stop()
        stream_ids = [e["id"] for e in controlled_nats.events()]
        assert len(stream_ids) == len(set(stream_ids)) == 5000
        indexed = lake.query("SELECT event_id, seq FROM archive ORDER BY seq")
        assert [row[0] for row in indexed] == stream_ids, "indexed once each, in stream order"
        in_files = ids_in_files(data / "lake")
        assert set(in_files) == set(stream_ids) and set(in_files.values()) == {1}
        assert len(set(killed_at)) > 5, f"the kills should land mid-flow: {killed_at}"
        assert 0 < min(p for p in killed_at if p) < 5000, killed_at
        log = (data / "lake.log").read_text()
        print(f"kills at positions {killed_at}; tails cut {log.count('cutting')}, "
              f"stray files removed {log.count('removing')}")  # fmt: skip
    finally:
        with contextlib.suppress(Exception):
            lake.kill()
        backend.stop()


def views(device: Device) -> dict[tuple[str, str], Any]:
    return {key: (c["values"], c["meta"]) for key, c in device.state.items()}


def test_a_replay_from_the_lake_alone_rebuilds_the_views_after_the_stream_is_lost(
    tmp_path: Path, controlled_nats: ControlledNats
) -> None:
    data = tmp_path / "b"
    env = {"OUTPOST_COMPONENTS": "projector,lake"}
    backend = BackendProcess(data, nats_url=controlled_nats.url, env=env).start()
    lake = LakeProcess(data, controlled_nats.url)  # to read its database
    try:
        alice = Device(backend.url, "alice").signup()
        bob = Device(backend.url, "bob").signup()
        board_a, events_a = board_with_tasks(alice, 120, "Alice's")
        events_a.append(alice.event("MemberAdded", {"username": "bob"}, board=board_a))
        _, events_b = board_with_tasks(bob, 60, "Bob's")
        alice.push(*events_a)
        bob.push(*events_b)
        edits = [
            alice.event("TaskUpdated", {"fields": {"priority": i % 5}}, board=board_a, entity=e)
            for i, e in enumerate(e["entity"] for e in events_a[1:100])
        ]
        comments = [
            bob.event(
                "CommentAdded",
                {"task": events_a[1 + i]["entity"], "body": f"c{i}"},
                board=board_a,
                entity=str(uuid.uuid4()),
            )
            for i in range(30)
        ]
        alice.push(*edits)
        last = bob.push(*comments)[-1]["seq"]
        alice.sync_until(last)
        bob.sync_until(last)
        deadline = time.monotonic() + 30
        while lake.position() < last:
            assert time.monotonic() < deadline, "the lake did not catch up"
            time.sleep(0.1)
        recorded = {name: views(d) for name, d in (("alice", alice), ("bob", bob))}
        assert len(recorded["alice"]) == 1 + 120 + 2 + 30
        backend.stop()

        controlled_nats.delete_stream()
        result = outpost(
            "lake", "replay", "--component", "projector", "--data-dir", str(data),
            "--nats-url", controlled_nats.url,
        )  # fmt: skip
        assert f"{last} events replayed" in result.stdout, result
        assert "continues from stream seq 1 " in result.stdout

        backend.start()
        for name, old in (("alice", alice), ("bob", bob)):
            fresh = Device(backend.url, name).login()
            fresh.pull()
            assert views(fresh) == recorded[name]
            body = old.pull_page(old.cursor).json()
            assert body["reset"] is True
            old.pull()  # rebuilds from a fresh bootstrap
            assert views(old) == recorded[name]

        task, created = alice.new_task(board_a, title="after the replay")
        [accepted] = alice.push(created)
        assert accepted["status"] == "accepted" and accepted["seq"] == 1  # a new stream
        alice.sync_until(1)
        assert alice.values("task", task) is not None
        bob.sync_until(1)
        assert bob.values("task", task) is not None

        deadline = time.monotonic() + 30
        while lake.query("SELECT count(*) FROM archive")[0][0] < last + 1:
            assert time.monotonic() < deadline, "the lake did not archive the new epoch"
            time.sleep(0.1)
        status = json.loads(outpost("lake", "status", "--json", "--data-dir", str(data)).stdout)
        assert [(e["epoch"], e["messages"]) for e in status["epochs"]] == [(1, last), (2, 1)]
    finally:
        backend.stop()


def test_export_and_the_command_lines_errors(
    tmp_path: Path, controlled_nats: ControlledNats
) -> None:
    data = tmp_path / "b"
    env = {"OUTPOST_COMPONENTS": "projector,lake"}
    backend = BackendProcess(data, nats_url=controlled_nats.url, env=env).start()
    lake = LakeProcess(data, controlled_nats.url)
    try:
        alice = Device(backend.url, "alice").signup()
        board_a, events_a = board_with_tasks(alice, 5)
        _, events_b = board_with_tasks(alice, 3)
        last = alice.push(*events_a, *events_b)[-1]["seq"]
        deadline = time.monotonic() + 30
        while lake.position() < last:
            assert time.monotonic() < deadline, "the lake did not catch up"
            time.sleep(0.1)
    finally:
        backend.stop()
    today = datetime.now(UTC).date()
    rows = [
        json.loads(line)
        for line in outpost("lake", "export", "--data-dir", str(data)).stdout.splitlines()
    ]
    assert [r["event"]["id"] for r in rows] == [e["id"] for e in events_a + events_b]
    assert [r["seq"] for r in rows] == list(range(1, last + 1))
    assert all(r["event"]["actor"] == "alice" and r["epoch"] == 1 for r in rows)
    out = tmp_path / "a.jsonl"
    result = outpost(
        "lake", "export", "--board", board_a, "--since", today.isoformat(), "--out", str(out),
        "--data-dir", str(data),
    )  # fmt: skip
    assert "6 messages exported" in result.stderr
    assert [json.loads(line)["event"]["board"] for line in out.read_text().splitlines()] == [
        board_a
    ] * 6
    tomorrow = (today + timedelta(days=1)).isoformat()
    assert outpost("lake", "export", "--since", tomorrow, "--data-dir", str(data)).stdout == ""

    bad = outpost("lake", "export", "--since", "31/01/2026", "--data-dir", str(data), check=False)
    assert bad.returncode == 2 and "bad date '31/01/2026': use YYYY-MM-DD" in bad.stderr
    unknown = outpost(
        "lake", "replay", "--component", "views", "--data-dir", str(data), check=False
    )
    assert unknown.returncode == 1 and "unknown component 'views'" in unknown.stderr
    assert "replay one of projector" in unknown.stderr
    empty = outpost("lake", "replay", "--data-dir", str(tmp_path / "none"), check=False)
    assert empty.returncode == 1 and "does not exist" in empty.stderr
    later = outpost("lake", "replay", "--from", tomorrow, "--data-dir", str(data), check=False)
    assert later.returncode == 1 and f"holds no events from {tomorrow} on" in later.stderr
    status = outpost("lake", "status", "--data-dir", str(data)).stdout
    assert f"{last} messages (0 unreadable)" in status and "epoch 1:" in status
