"""The orchestrator end to end (SPEC 6c), on a real backend and a real nats-server with
message schedules: a reminder fires at its time and exactly once, across a restart of the
backend and of nats-server between planning and firing, and a rebuild of the orchestrator;
it is re-planned when the due date or the assignee changes and dropped when the task is done
or deleted; a recurring task spawns its next occurrence once, however often that is seen.

Reminders fire at the due date's 00:00 UTC less the lead time; the tests set the lead so a
task due tomorrow fires a few seconds after the backend starts."""

from __future__ import annotations

import datetime
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from backend.nats.streams import SCHEDULES_STREAM, schedule_due_subject, schedule_plan_subject
from protocol.ids import derived_id
from tests.backend.saga.test_wip_limit import Consumers
from tests.support.backend import BackendProcess, ControlledNats, wait_passed
from tests.support.device import Device

pytestmark = pytest.mark.integration

FIRES_AFTER_S = 12.0
"""In the restart test: how long after the backend starts tomorrow's reminders fire."""


def tomorrow(days: int = 1) -> str:
    return (datetime.datetime.now(datetime.UTC).date() + datetime.timedelta(days=days)).isoformat()


def lead_firing_at(moment: float) -> str:
    """The lead time that makes a task due tomorrow fire at ``moment`` (epoch seconds)."""
    midnight = datetime.datetime.fromisoformat(tomorrow() + "T00:00:00+00:00").timestamp()
    return f"{midnight - moment:.3f}"


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


def reminders(device: Device) -> list[dict[str, Any]]:
    device.pull()
    return [
        change["values"]
        for (kind, _), change in device.state.items()
        if kind == "notice" and change["values"]["reason"] == "reminder"
    ]


def of_type(nats: ControlledNats, type_: str) -> list[dict[str, Any]]:
    return [e for e in nats.events() if e["type"] == type_]


def plan_of(nats: ControlledNats, task: str) -> dict[str, Any] | None:
    """The task's reminder schedule as stored on OUTPOST_SCHEDULES, or None."""
    found = nats.last_on(SCHEDULES_STREAM, schedule_plan_subject(task))
    if found is None:
        return None
    headers, body = found
    return {"headers": headers, **msgspec.json.decode(body)}


class Board:
    """alice's board, shared with bob and carol."""

    def __init__(self, url: str, nats: ControlledNats) -> None:
        stamp = time.monotonic_ns()
        self.nats = nats
        self.url = url
        self.alice = Device(url, f"alice{stamp}").signup()
        self.bob = Device(url, f"bob{stamp}").signup()
        self.carol = Device(url, f"carol{stamp}").signup()
        self.id, created = self.alice.new_board("Orchestrated")
        self.push(created)
        for user in (self.bob, self.carol):
            member = {"username": user.username}
            self.push(self.alice.event("MemberAdded", member, board=self.id))

    def push(self, *events: dict[str, Any], by: Device | None = None) -> int:
        results = (by or self.alice).push(*events)
        assert all(r["status"] == "accepted" for r in results), results
        return int(results[-1]["seq"])

    def task(self, **payload: Any) -> tuple[str, dict[str, Any]]:
        task, created = self.alice.new_task(self.id, "Water the plants", **payload)
        self.push(created)
        return task, created

    def update(self, task: str, by: Device | None = None, **fields: Any) -> dict[str, Any]:
        device = by or self.alice
        event = device.event("TaskUpdated", {"fields": fields}, board=self.id, entity=task)
        self.push(event, by=device)
        return event

    def consumed(self) -> None:
        """Until the orchestrator has committed every event on the stream."""
        wait_passed(self.url, "orchestrator", self.nats.last_seq())


# ---- a reminder across restarts and a rebuild ---------------------------------------------


def test_a_reminder_fires_at_its_time_once_across_restarts_and_a_rebuild(
    tmp_path: Path, controlled_nats: ControlledNats
) -> None:
    fire_at = time.time() + FIRES_AFTER_S
    env = {"OUTPOST_REMINDER_LEAD_S": lead_firing_at(fire_at)}
    backend = BackendProcess(tmp_path / "backend", nats_url=controlled_nats.url, env=env)
    backend.start()
    try:
        board = Board(backend.url, controlled_nats)
        task, created = board.task(due=tomorrow(), assignee=board.bob.username)
        board.consumed()
        plan = wait_for(lambda: plan_of(controlled_nats, task), "the reminder's schedule")
        assert plan["headers"]["Nats-Schedule"].startswith("@at ")
        assert plan["headers"]["Nats-Schedule-Target"] == schedule_due_subject(task)
        assert (plan["assignee"], plan["cause"]) == (board.bob.username, created["id"])
        if time.time() < fire_at - 2:  # still before its time: nothing yet
            assert reminders(board.bob) == []

        # Planned, not fired: the backend and nats-server both go down and come back.
        backend.stop()
        controlled_nats.kill()
        controlled_nats.start()
        backend.start()

        [notice] = wait_for(lambda: reminders(board.bob), "bob's reminder")
        assert time.time() >= fire_at - 1, "not before its time (whole seconds, rounded up)"
        assert notice["task"] == task
        assert notice["cause"] == created["id"], "the task's last due-date event"
        assert tomorrow() in notice["message"] and notice["message"].startswith("Reminder")
        [due] = of_type(controlled_nats, "ReminderDue")
        assert due["received_at"] >= int(fire_at * 1000) - 1000
        assert due["actor"] == board.alice.username, "on behalf of the board's owner"
        assert reminders(board.alice) == [], "only the assignee is reminded"
        assert plan_of(controlled_nats, task) is None, "a fired schedule is gone"

        # A recurring task, finished: its next occurrence, once.
        weekly, _ = board.task(
            due=tomorrow(3), assignee=board.carol.username, labels=["every:week", "garden"]
        )
        board.update(weekly, status="done")
        spawned_id = derived_id("recurrence-task", weekly)
        wait_for(
            lambda: board.carol.pull() is not None and board.carol.values("task", spawned_id),
            "the next occurrence",
        )

        # A rebuild of the orchestrator: its database goes, it replays the stream from the
        # start, plans the reminder again (its time has passed: it fires at once) and sees
        # the task finished again. Nothing new is written.
        backend.stop()
        (tmp_path / "backend" / "orchestrator.db").unlink()
        backend.start()
        board.consumed()
        wait_for(
            lambda: fired(controlled_nats, task) >= 2 and timers_done(controlled_nats),
            "the re-planned reminder to fire and be handled",
        )
        assert len(of_type(controlled_nats, "ReminderDue")) == 1
        assert [e["id"] for e in of_type(controlled_nats, "TaskCreated")].count(
            derived_id("recurrence", weekly)
        ) == 1
        assert len(reminders(board.bob)) == 1
    finally:
        backend.stop()


def fired(nats: ControlledNats, task: str) -> int:
    """How many times the task's schedules fired (messages on its due subject)."""
    return nats.count_on(SCHEDULES_STREAM, schedule_due_subject(task))


def timers_done(nats: ControlledNats) -> bool:
    """The orchestrator's timer consumer has handled and acknowledged all that fired."""
    return nats.consumer_idle("orchestrator_timers", SCHEDULES_STREAM)


# ---- re-planning and dropping, on one backend -----------------------------------------------


@pytest.fixture(scope="module")
def orchestrated(
    tmp_path_factory: pytest.TempPathFactory, module_nats: ControlledNats
) -> Iterator[BackendProcess]:
    """A backend whose reminders for tasks due tomorrow are due at once (lead: since the
    start of tomorrow until now); later dates are far off."""
    env = {"OUTPOST_REMINDER_LEAD_S": lead_firing_at(time.time())}
    data = tmp_path_factory.mktemp("backend")
    process = BackendProcess(data, nats_url=module_nats.url, env=env).start()
    try:
        yield process
    finally:
        process.stop()


def test_a_new_due_date_plans_again_and_the_reminder_names_it(
    orchestrated: BackendProcess, module_nats: ControlledNats
) -> None:
    board = Board(orchestrated.url, module_nats)
    task, created = board.task(due=tomorrow(10), assignee=board.bob.username)
    board.consumed()
    first = wait_for(lambda: plan_of(module_nats, task), "the first plan")
    assert (first["due"], first["cause"]) == (tomorrow(10), created["id"])
    moved = board.update(task, due=tomorrow())
    board.consumed()
    [notice] = wait_for(lambda: reminders(board.bob), "the reminder of the new date")
    assert (notice["task"], notice["cause"]) == (task, moved["id"])
    assert tomorrow() in notice["message"]


def test_a_new_assignee_is_planned_for_instead(
    orchestrated: BackendProcess, module_nats: ControlledNats
) -> None:
    board = Board(orchestrated.url, module_nats)
    task, _ = board.task(due=tomorrow(10), assignee=board.bob.username)
    board.update(task, assignee=board.carol.username)
    board.consumed()
    plan = wait_for(lambda: plan_of(module_nats, task), "the plan")
    assert plan["assignee"] == board.carol.username
    board.update(task, due=tomorrow())  # now due: carol is reminded, bob is not
    board.consumed()
    [notice] = wait_for(lambda: reminders(board.carol), "carol's reminder")
    assert notice["task"] == task
    assert reminders(board.bob) == []


@pytest.mark.parametrize("drop", ["done", "deleted", "unassigned", "no due date"])
def test_a_reminder_is_dropped(
    orchestrated: BackendProcess, module_nats: ControlledNats, drop: str
) -> None:
    board = Board(orchestrated.url, module_nats)
    task, _ = board.task(due=tomorrow(10), assignee=board.bob.username)
    board.consumed()
    wait_for(lambda: plan_of(module_nats, task), "the plan")
    if drop == "done":
        board.update(task, status="done")
    elif drop == "deleted":
        board.push(board.alice.event("TaskDeleted", {}, board=board.id, entity=task))
    elif drop == "unassigned":
        board.update(task, assignee=None)
    else:
        board.update(task, due=None)
    board.consumed()
    assert plan_of(module_nats, task) is None, "the schedule is purged"
    assert fired(module_nats, task) == 0


def test_a_done_that_loses_the_merge_spawns_nothing_and_a_recurrence_spawns_once(
    orchestrated: BackendProcess, module_nats: ControlledNats
) -> None:
    board = Board(orchestrated.url, module_nats)
    task, _ = board.task(due="2026-01-31", assignee=board.bob.username, labels=["every:month"])
    # An offline edit that says done, stamped before a later edit to todo: it loses.
    late_done = board.bob.event(
        "TaskUpdated", {"fields": {"status": "done"}}, board=board.id, entity=task
    )
    time.sleep(0.005)  # a later wall clock: the update to todo wins the merge
    board.update(task, status="todo")
    board.push(late_done, by=board.bob)
    board.consumed()
    spawned = derived_id("recurrence-task", task)
    assert derived_id("recurrence", task) not in [e["id"] for e in module_nats.events()]
    board.update(task, status="done")
    values = wait_for(
        lambda: board.bob.pull() is not None and board.bob.values("task", spawned),
        "the next occurrence",
    )
    assert values["title"] == "Water the plants"
    assert values["labels"] == ["every:month"]
    assert (values["assignee"], values["status"]) == (board.bob.username, "todo")
    assert values["due"] == "2026-02-28", "a month on, the month's last day"
    # Reopened and finished again, and the same done seen from another device: once.
    board.update(task, status="doing")
    board.update(task, status="done", by=board.bob)
    board.consumed()
    ids = [e["id"] for e in module_nats.events()]
    assert ids.count(derived_id("recurrence", task)) == 1


def test_health_and_metrics_list_the_orchestrator(orchestrated: BackendProcess) -> None:
    # The orchestrator runs in the consumers' child, which the backend starts beside its
    # HTTP server: until the child answers, health says `starting` (a fresh module backend).
    def settled() -> dict[str, Any] | None:
        health: dict[str, Any] = httpx.get(f"{orchestrated.url}/v1/health", timeout=10).json()
        return health if health["consumers"]["orchestrator"]["breaker"] != "starting" else None

    health = wait_for(settled, "the consumers' child to answer")
    assert health["consumers"]["orchestrator"]["breaker"] == "closed"
    assert health["consumers"]["orchestrator"]["standby"] is False
    metrics = httpx.get(f"{orchestrated.url}/metrics", timeout=10).text
    assert 'component="orchestrator"' in metrics


def test_the_orchestrator_in_its_own_process_writes_through_the_bffs_database(
    tmp_path: Path, controlled_nats: ControlledNats
) -> None:
    """``outpost backend consume --components orchestrator``: its writer opens the BFF's
    database from the settings (the same data folder), so its writes are decided with the
    same id records and authority as pushes."""
    data = tmp_path / "backend"
    env = {"OUTPOST_COMPONENTS": "projector,workload,lake"}
    backend = BackendProcess(data, nats_url=controlled_nats.url, env=env).start()
    orchestrator = Consumers(data, controlled_nats.url, "orchestrator")
    orchestrator.start()
    try:
        board = Board(backend.url, controlled_nats)
        task, _ = board.task(due="2026-03-02", labels=["every:2w"])
        board.update(task, status="done")
        spawned = derived_id("recurrence-task", task)
        values = wait_for(
            lambda: board.alice.pull() is not None and board.alice.values("task", spawned),
            "the next occurrence, written by the orchestrator's own process",
        )
        assert values["due"] == "2026-03-16"
        [created] = [e for e in of_type(controlled_nats, "TaskCreated") if e["entity"] == spawned]
        assert created["actor"] == board.alice.username
        assert created["device"] == "outpost-orchestrator"
    finally:
        orchestrator.stop()
        backend.stop()


# ---- a board's own lead time, set by its owner ---------------------------------------------


MONTH_S = 30 * 24 * 3600


def midnight(day: str) -> float:
    return datetime.datetime.fromisoformat(day + "T00:00:00+00:00").timestamp()


def lead_at(day: str, moment: float) -> int:
    """The whole-second lead that makes a task due on ``day`` fire at ``moment`` (or within
    the second before it)."""
    return int(midnight(day) - moment)


def reminders_route(board: Board) -> str:
    return f"/v1/boards/{board.id}/reminders"


def set_lead(board: Board, lead_s: int | None, by: Device | None = None) -> httpx.Response:
    device = by or board.alice
    return device.http.put(reminders_route(board), json={"lead_s": lead_s}, headers=device.headers)


def reminders_due(nats: ControlledNats, task: str) -> list[dict[str, Any]]:
    return [e for e in of_type(nats, "ReminderDue") if e["entity"] == task]


def test_unset_the_default_lead_applies_and_a_boards_own_lead_fires_at_due_less_it(
    orchestrated: BackendProcess, module_nats: ControlledNats
) -> None:
    board = Board(orchestrated.url, module_nats)
    shown = board.alice.http.get(reminders_route(board), headers=board.alice.headers)
    assert shown.status_code == 200, shown.text
    default = shown.json()
    assert default["default"] is True and default["board"] == board.id
    # The module's default makes tomorrow's reminders due now: a day, give or take.
    assert 0 < default["lead_s"] <= 2 * 86400

    far = tomorrow(10)
    task, created = board.task(due=far, assignee=board.bob.username)
    board.consumed()
    first = wait_for(lambda: plan_of(module_nats, task), "the plan with the default lead")
    assert first["fire_ms"] > (time.time() + 8 * 86400) * 1000, "the default: far off"

    lead = lead_at(far, time.time() + 3)
    reply = set_lead(board, lead)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"board": board.id, "lead_s": lead, "default": False, "replanned": 1}
    fire_ms = int(midnight(far) * 1000) - lead * 1000
    assert plan_of(module_nats, task)["fire_ms"] == fire_ms, "planned again, due less the lead"
    shown = board.alice.http.get(reminders_route(board), headers=board.alice.headers).json()
    assert (shown["lead_s"], shown["default"]) == (lead, False)

    [notice] = wait_for(lambda: reminders(board.bob), "bob's reminder at due less the lead")
    assert (notice["task"], notice["cause"]) == (task, created["id"])
    assert far in notice["message"]
    [due] = reminders_due(module_nats, task)
    assert due["received_at"] >= fire_ms - 1000, "not before due less the lead"

    # A task planned after the change gets the board's lead too (its time has passed: now).
    later, _ = board.task(due=far, assignee=board.carol.username)
    board.consumed()
    [notice] = wait_for(lambda: reminders(board.carol), "carol's reminder with the board's lead")
    assert notice["task"] == later


def test_a_lead_change_plans_again_and_the_reminder_fires_once(
    orchestrated: BackendProcess, module_nats: ControlledNats
) -> None:
    board = Board(orchestrated.url, module_nats)
    far = tomorrow(10)
    task, _ = board.task(due=far, assignee=board.bob.username)
    board.consumed()
    wait_for(lambda: plan_of(module_nats, task), "the first plan")

    nine_days = 9 * 86400
    assert set_lead(board, nine_days).json()["replanned"] == 1
    plan = plan_of(module_nats, task)
    assert plan is not None and plan["fire_ms"] == int(midnight(far) * 1000) - nine_days * 1000
    assert module_nats.count_on(SCHEDULES_STREAM, schedule_plan_subject(task)) == 1, "replaced"

    assert set_lead(board, lead_at(far, time.time() + 2)).json()["replanned"] == 1
    wait_for(lambda: reminders(board.bob), "the reminder at the new time")
    wait_for(lambda: timers_done(module_nats), "the timers handled")
    assert fired(module_nats, task) == 1, "the earlier plans never fired"

    # Sent: another lead, or an edit planned with it, sends it no second time.
    again = set_lead(board, lead_at(far, time.time() - 60))
    assert again.json()["replanned"] == 0, "a sent reminder stays sent"
    board.update(task, title="Water the plants, really")
    board.consumed()
    assert plan_of(module_nats, task) is None
    assert set_lead(board, None).json()["default"] is True
    board.consumed()
    wait_for(lambda: timers_done(module_nats), "the timers handled")
    assert len(reminders_due(module_nats, task)) == 1
    assert len(reminders(board.bob)) == 1


def test_only_the_owner_sets_the_lead_and_bad_values_are_refused(
    orchestrated: BackendProcess, module_nats: ControlledNats
) -> None:
    board = Board(orchestrated.url, module_nats)
    route = reminders_route(board)
    http, alice, bob = board.alice.http, board.alice, board.bob

    assert http.get(route).status_code == 401
    assert http.put(route, json={"lead_s": 60}).status_code == 401
    for reply in (
        bob.http.get(route, headers=bob.headers),
        set_lead(board, 60, by=bob),
        bob.http.delete(route, headers=bob.headers),
    ):
        assert reply.status_code == 403, reply.text
        assert "only the board's owner" in reply.json()["detail"]
    for unknown in (str(uuid.uuid4()), "not-a-board"):
        reply = http.get(f"/v1/boards/{unknown}/reminders", headers=alice.headers)
        assert reply.status_code == 404, reply.text
        assert f"no board {unknown}" in reply.json()["detail"]
    for bad in (-1, MONTH_S + 1):
        reply = set_lead(board, bad)
        assert reply.status_code == 422, reply.text
        assert f"lead_s {bad}: whole seconds from 0 to {MONTH_S}" in reply.json()["detail"]
    for body in ({"lead_s": "1d"}, {"lead_s": 1.5}, {}):
        reply = http.put(route, json=body, headers=alice.headers)
        assert reply.status_code == 400, (body, reply.text)
    # The bounds themselves are fine; null and DELETE go back to the default.
    assert set_lead(board, MONTH_S).json()["lead_s"] == MONTH_S
    assert set_lead(board, 0).json()["lead_s"] == 0
    assert set_lead(board, None).json()["default"] is True
    set_lead(board, 3600)
    cleared = http.delete(route, headers=alice.headers)
    assert cleared.status_code == 200 and cleared.json()["default"] is True
    assert http.get(route, headers=alice.headers).json()["default"] is True


def test_the_owner_sets_the_lead_with_outpost_reminders(
    orchestrated: BackendProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from outpost.cli import main

    profile = str(tmp_path / "profile")

    def outpost(*args: str, status: int = 0) -> str:
        capsys.readouterr()
        assert main(list(args)) == status, capsys.readouterr().err
        captured = capsys.readouterr()
        return (captured.out if status == 0 else captured.err).strip()

    def reminders_cli(*args: str) -> Any:
        return json.loads(outpost("reminders", "--data-dir", profile, "--json", *args))

    client = ("client", "--data-dir", profile)
    username = f"cli{uuid.uuid4().hex[:8]}"
    outpost(*client, "--server", orchestrated.url, "signup", username, "--password", "pw-1234567")
    board = outpost(*client, "board", "create", "CLI")
    outpost(*client, "sync")
    assert reminders_cli("show", board)["default"] is True
    assert reminders_cli("lead", board, "2h")["lead_s"] == 7200
    text = outpost("reminders", "--data-dir", profile, "show", board)
    assert text == f"board {board}: reminders 2h (7200s) before the due date, its own"
    assert reminders_cli("lead", board, "1d12h")["lead_s"] == 129600
    assert reminders_cli("lead", board)["lead_s"] == 129600, "no DURATION: shows it"
    assert reminders_cli("lead", board, "--default")["default"] is True
    refused = outpost("reminders", "--data-dir", profile, "lead", board, "31d", status=1)
    assert "HTTP 422" in refused and "30 days" in refused
    usage = outpost("reminders", "--data-dir", profile, "lead", board, "soon", status=2)
    assert "duration 'soon'" in usage
    both = outpost("reminders", "--data-dir", profile, "lead", board, "1h", "--default", status=2)
    assert "not both" in both
