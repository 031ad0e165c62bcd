"""The WIP-limit saga end to end: offline devices break the limit together, the backend
moves exactly one task back, every device converges on that, and the user whose move was
undone is told why (SPEC section 5)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from protocol.ids import derived_id
from tests.support.backend import BackendProcess, ControlledNats
from tests.support.device import Device as BackendView
from tests.support.phone import Phone

pytestmark = pytest.mark.integration


class Consumers:
    """``outpost backend consume --components ...``: stream consumers in their own process."""

    def __init__(self, data_dir: Path, nats_url: str, components: str) -> None:
        self.command = [
            sys.executable, "-m", "outpost", "backend", "consume",
            "--components", components, "--data-dir", str(data_dir), "--nats-url", nats_url,
        ]  # fmt: skip
        self.log = data_dir / "consumers.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=log)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(20)


@pytest.fixture
def saga_backend(
    tmp_path: Path, controlled_nats: ControlledNats
) -> Iterator[tuple[BackendProcess, Consumers]]:
    """The BFF and projector in one process, the workload component in another."""
    backend = BackendProcess(
        tmp_path / "backend",
        nats_url=controlled_nats.url,
        env={"OUTPOST_COMPONENTS": "projector"},
    ).start()
    workload = Consumers(tmp_path / "workload", controlled_nats.url, "workload")
    try:
        yield backend, workload
    finally:
        workload.stop()
        backend.stop()


def settle(phones: list[Phone], until: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        for phone in phones:
            phone.sync()
        if until():
            return
        assert time.monotonic() < deadline, "the devices did not converge in time"
        time.sleep(0.2)


def statuses(phone: Phone, board: str) -> dict[str, str]:
    return {t["title"]: t["status"] for t in phone.device.tasks(board)}


def notices_pulled(backend: BackendProcess, username: str) -> list[dict[str, Any]]:
    changes = BackendView(backend.url, username).login().pull()
    return [change for change in changes if change["kind"] == "notice"]


def stream_types(nats: ControlledNats) -> list[str]:
    return [event["type"] for event in nats.events()]


def test_two_offline_moves_over_the_limit_move_exactly_one_back_with_a_notice(
    saga_backend: tuple[BackendProcess, Consumers],
    controlled_nats: ControlledNats,
    phones: Callable[[str], Phone],
) -> None:
    backend, workload = saga_backend
    alice = phones(backend.url).signup("alice")
    bob = phones(backend.url).signup("bob")
    board = alice.device.create_board("Sprint", wip_limit=1)
    alice.device.share_board(board, "bob")
    first = alice.device.add_task(board, "first", assignee="carol")
    second = alice.device.add_task(board, "second", assignee="carol")
    alice.settle()
    settle([bob], lambda: len(bob.device.tasks(board)) == 2)

    # Offline, each moves a different task of carol's to Doing: together over the limit.
    alice.device.move_task(first, "doing")
    bob.device.move_task(second, "doing")
    assert statuses(alice, board)["first"] == "doing"
    assert statuses(bob, board)["second"] == "doing"
    alice.settle()  # alice's move reaches the stream first: within the limit
    bob.settle()  # bob's is the cause

    # The workload component starts late, is killed once it has received the events (its
    # consumer shows them delivered), and restarted.
    cause_seq = _move_of(controlled_nats, second)["seq"]
    workload.start()
    deadline = time.monotonic() + 30
    while controlled_nats.consumer_progress("workload")[0] < cause_seq:
        assert time.monotonic() < deadline, "the workload never received the cause"
        time.sleep(0.005)
    workload.kill()
    workload.start()

    wanted = {"first": "doing", "second": "todo"}
    settle([alice, bob], lambda: statuses(alice, board) == statuses(bob, board) == wanted)

    bob_move = _move_of(controlled_nats, second)
    [notice] = bob.device.notices()
    assert notice["task"] == second
    assert notice["reason"] == "wip_limit"
    assert notice["message"] == (
        "Moved back to To do: carol already has 1 task in Doing, the board's limit"
    )
    assert alice.device.notices() == [], "the notice goes to the cause's actor only"
    assert notices_pulled(backend, "alice") == []
    [pulled] = notices_pulled(backend, "bob")
    assert pulled["id"] == derived_id("notice", bob_move["id"])
    assert pulled["values"]["cause"] == bob_move["id"]

    # Once each, whatever the restarts: one violation, one compensation, exactly as SPEC 5.
    # A sentinel after a last restart proves the restarted workload has passed every event.
    workload.stop()
    workload.start()
    alice.device.add_task(board, "sentinel", assignee="carol")
    alice.settle()
    controlled_nats.wait_consumed("workload", controlled_nats.last_seq())
    types = stream_types(controlled_nats)
    assert types.count("WipLimitExceeded") == 1
    [compensation] = [e for e in controlled_nats.events() if e["payload"].get("compensates")]
    assert compensation["id"] == derived_id("compensation", bob_move["id"])
    assert compensation["hlc"] == bob_move["hlc"] + "~saga"
    assert compensation["payload"]["fields"] == {"status": "todo"}
    assert compensation["board"] == board and compensation["entity"] == second
    wanted["sentinel"] = "todo"
    settle([alice, bob], lambda: statuses(alice, board) == statuses(bob, board) == wanted)


def test_a_later_edit_wins_over_the_compensation_and_nothing_loops(
    backend: BackendProcess, controlled_nats: ControlledNats, phones: Callable[[str], Phone]
) -> None:
    """The whole backend in one process: a cause is undone; a later move of the same task
    (after the user saw the notice) is a new decision, checked against the limit again."""
    alice = phones(backend.url).signup("alice")
    board = alice.device.create_board("Solo", wip_limit=1)
    first = alice.device.add_task(board, "first", assignee="alice", status="doing")
    second = alice.device.add_task(board, "second", assignee="alice")
    alice.device.add_task(board, "third", assignee="bob", status="doing")
    alice.settle()
    alice.device.move_task(second, "doing")  # over alice's limit: undone
    alice.settle()
    settle([alice], lambda: statuses(alice, board)["second"] == "todo")
    assert [n["task"] for n in alice.device.notices()] == [second]

    alice.device.move_task(first, "done")  # room again: the same move now stands
    alice.device.move_task(second, "doing")
    alice.settle()
    settle([alice], lambda: statuses(alice, board) == {"first": "done", "second": "doing",
                                                       "third": "doing"})  # fmt: skip
    backend.wait_passed("workload", controlled_nats.last_seq())  # it saw them all
    types = stream_types(controlled_nats)
    assert types.count("WipLimitExceeded") == 1, "a compensation never causes another"
    assert len(alice.device.notices()) == 1
    assert statuses(alice, board)["third"] == "doing", "bob's task never counts for alice"


def test_a_created_task_over_the_limit_gets_the_defaults_back(
    backend: BackendProcess, controlled_nats: ControlledNats, phones: Callable[[str], Phone]
) -> None:
    alice = phones(backend.url).signup("alice")
    board = alice.device.create_board("Created", wip_limit=1)
    alice.device.add_task(board, "busy", assignee="alice", status="doing")
    late = alice.device.add_task(board, "late", assignee="alice", status="doing")
    alice.settle()
    settle([alice], lambda: statuses(alice, board)["late"] == "todo")
    task = alice.device.entity("task", late)
    assert task is not None and task["values"]["assignee"] is None, "TaskCreated: defaults"
    [compensation] = [e for e in controlled_nats.events() if e["payload"].get("compensates")]
    assert compensation["payload"]["fields"] == {
        "status": "todo",
        "assignee": None,
        "deleted": False,
    }


def _move_of(nats: ControlledNats, task: str) -> dict[str, Any]:
    [move] = [
        e
        for e in nats.events()
        if e["type"] == "TaskUpdated"
        and e["entity"] == task
        and e["payload"]["fields"].get("status") == "doing"
        and not e["payload"].get("compensates")
    ]
    return move


def test_a_rebuild_replays_the_saga_without_publishing_it_again(
    tmp_path: Path, controlled_nats: ControlledNats, phones: Callable[[str], Phone]
) -> None:
    """Views rebuilt from the stream meet the WipLimitExceeded and the compensation again,
    after the stream's duplicate window (one second here) has passed: the stream keeps one
    of each (not one more per rebuild), and the views end the same."""
    backend = BackendProcess(
        tmp_path / "backend",
        nats_url=controlled_nats.url,
        env={"OUTPOST_DUPLICATE_WINDOW_S": "1"},
    ).start()
    try:
        alice = phones(backend.url).signup("alice")
        board = alice.device.create_board("Rebuilt", wip_limit=1)
        alice.device.add_task(board, "busy", assignee="alice", status="doing")
        alice.device.add_task(board, "late", assignee="alice", status="doing")
        alice.settle()
        settle([alice], lambda: statuses(alice, board)["late"] == "todo")
        before = BackendView(backend.url, "alice").login().pull()
        backend.stop()
        rebuilt = subprocess.run(
            [sys.executable, "-m", "outpost", "backend", "rebuild", "--data-dir",
             str(backend.data_dir), "--nats-url", controlled_nats.url],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert rebuilt.returncode == 0, rebuilt.stderr
        time.sleep(1.5)  # past the duplicate window: only the component's memory stops a copy
        backend.start()
        view = BackendView(backend.url, "alice").login()
        view.sync_until(len(controlled_nats.events()))
        assert {key: change["values"] for key, change in view.state.items()} == {
            (c["kind"], c["id"]): c["values"] for c in before
        }
        types = stream_types(controlled_nats)
    finally:
        backend.stop()
    assert types.count("WipLimitExceeded") == 1
    assert sum(1 for e in controlled_nats.events() if e["payload"].get("compensates")) == 1
