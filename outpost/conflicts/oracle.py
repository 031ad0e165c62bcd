"""The oracle: after healing, is everything where the contract says it must be?

Inputs: what the devices returned (event ids), their journals (every push result: the id,
its stream sequence and the exact event the backend accepted), their final views, each
user's bootstrap pull from the backend and the projector's ledger. It folds events with
the reference merge rules of ``protocol.merge`` in this process (never the backend's or a
device's), and checks:

- divergence: every device of a user shows what the backend's pull shows that user, and an
  entity two users see is the same for both;
- loss: every returned event is accepted or listed as rejected with a reason, and every
  accepted write is in the final state: each field register it wrote is still it or was
  beaten by a greater ``(hlc, id)`` (a later write, or the saga's compensation), each label
  tag it added is there unless a remove observed it, each remove took what it observed;
- applied twice: the ledger lists every applied event once;
- the WIP saga: following the accepted events in stream order (as the workload does), every
  cause has its compensation applied and a notice for its actor; no outsider wrote to a board;
- the adversary (``outpost.conflicts.adversary``): each hostile event got the answer SPEC
  gives its kind, no rejected event appears anywhere (stream, ledger, pulled metadata), and
  no accepted stamp is further ahead of the server's clock than the skew limit.

It also classifies the conflicts that actually occurred: two events on one task from
different devices are concurrent when neither device had pulled the other's (each event's
stream sequence is above the watermark the other device had when it made its own).
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import msgspec

from outpost.conflicts.adversary import EXPECTED, LOCAL_KINDS, SKEW_LIMIT_MS
from outpost.conflicts.orchestrator import Execution
from outpost.conflicts.reminders import expected, final_states, pulled
from protocol import Event, MergeError, Writer, decode_event, merge, parse_hlc
from protocol.catalog import TaskCreated
from protocol.ids import derived_id
from protocol.merge import EntityKey, EntityState
from protocol.recurrence import completes
from protocol.saga import (
    compensation,
    could_cause,
    notice_id,
    possible_cause,
    prior_values,
    wip_assignee,
    wip_limit,
    wip_limit_exceeded,
)

CONFLICT_KINDS = ("same_field", "different_field", "delete_vs_edit", "label", "wip")
PROBLEM_LIMIT = 50


@dataclass
class Verdict:
    divergences: list[str] = field(default_factory=list)
    losses: list[str] = field(default_factory=list)
    applied_twice: list[str] = field(default_factory=list)
    invariants: list[str] = field(default_factory=list)
    conflicts: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    compensated: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    hostile: Counter[str] = field(default_factory=Counter)
    """Hostile events by kind that got the answer SPEC gives them."""
    hostile_causes: int = 0
    """WIP causes the adversary wrote (stamped minutes ahead), each checked compensated."""
    recurrences: int = 0
    """Recurring tasks finished, each checked to have spawned its next occurrence once."""
    reminders: int = 0
    """Reminders pulled, each checked to be the only one of its task's due date."""
    reminders_expected: int = 0
    """Reminders that must exist at the end (armed tasks due by the time the run healed)."""
    reminders_fired_once: int = 0
    """Of those, the ones their assignee pulled exactly once."""
    culprits: set[str] = field(default_factory=set)
    """Event ids involved in a loss or divergence, for the shrinker."""

    @property
    def ok(self) -> bool:
        return not (self.divergences or self.losses or self.applied_twice or self.invariants)

    def problems(self) -> list[str]:
        return [
            *(f"divergence: {p}" for p in self.divergences),
            *(f"loss: {p}" for p in self.losses),
            *(f"applied twice: {p}" for p in self.applied_twice),
            *(f"invariant: {p}" for p in self.invariants),
        ]


# --- normal forms ---------------------------------------------------------------------

BOARD_KEYS = ("name", "wip_limit", "archived", "owner")
TASK_KEYS = (
    "title",
    "notes",
    "status",
    "priority",
    "due",
    "assignee",
    "position",
    "labels",
    "deleted",
)
COMMENT_KEYS = ("task", "body", "author", "created_at", "deleted")


def normal_pull(changes: list[dict[str, Any]]) -> dict[str, Any]:
    boards: dict[str, Any] = {}
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for change in changes:
        latest[(change["kind"], change["id"])] = change
    for (kind, _), change in sorted(latest.items()):
        if kind == "board" and not change.get("removed") and change["values"] is not None:
            values = change["values"]
            boards[change["id"]] = {
                "values": {k: values.get(k) for k in BOARD_KEYS},
                "members": [],
                "tasks": {},
                "comments": {},
            }
    for (kind, _), change in sorted(latest.items()):
        board = boards.get(change["board"])
        if board is None or change.get("removed") or change["values"] is None:
            continue
        values = change["values"]
        if kind == "member" and not values["removed"]:
            board["members"].append((values["username"], values["role"]))
        elif kind == "task":
            board["tasks"][change["id"]] = {k: values.get(k) for k in TASK_KEYS}
        elif kind == "comment":
            board["comments"][change["id"]] = {k: values.get(k) for k in COMMENT_KEYS}
    for board in boards.values():
        board["members"].sort()
        board["comments"] = {
            i: c for i, c in board["comments"].items() if c["task"] in board["tasks"]
        }
    return boards


def normal_snapshot(snapshot: dict[str, Any]) -> dict[str, Any]:
    boards: dict[str, Any] = {}
    for board in snapshot["boards"]:
        tasks: dict[str, Any] = {}
        comments: dict[str, Any] = {}
        for task in board["tasks"]:
            tasks[task["id"]] = {k: task.get(k) for k in TASK_KEYS}
            for comment in task["comments"]:
                comments[comment["id"]] = {k: comment.get(k) for k in COMMENT_KEYS}
        boards[board["id"]] = {
            "values": {k: board.get(k) for k in BOARD_KEYS},
            "members": sorted((m["username"], m["role"]) for m in board["members"]),
            "tasks": tasks,
            "comments": comments,
        }
    return boards


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if key not in a:
                return f"{path}/{key}: only on the backend"
            if key not in b:
                return f"{path}/{key}: only on the device"
            found = first_difference(a[key], b[key], f"{path}/{key}")
            if found:
                return found
        return None
    if a != b:
        return f"{path}: device {a!r} != backend {b!r}"
    return None


# --- the oracle -------------------------------------------------------------------------


class Oracle:
    def __init__(self, execution: Execution, collected: dict[str, Any], users_of: list[int]):
        self.run = execution
        self.data = collected
        self.users_of = users_of  # device index -> user index
        self.verdict = Verdict()
        self.accepted: dict[str, tuple[Event, int, int]] = {}  # id -> (event, seq, device)
        self.decided: dict[str, tuple[int | None, int | None]] = {}
        """id -> (first sent, answered) in ms: the window in which the BFF decided it."""
        self.device_of_id: dict[str, int] = collected["device_ids"]
        self.rejected: dict[str, str] = {}
        self.hostile_rejected: dict[str, str] = {}  # id -> kind
        self.hostile_accepted: set[str] = set()
        self.hostile_local: dict[str, str] = {}  # outbox row -> kind, judged by the device
        self.watermark: dict[str, int] = {}
        for returned in execution.returned:
            for event_id in returned.ids:
                self.watermark[event_id] = returned.watermark

    def check(self) -> Verdict:
        self.read_journals()
        self.check_divergence()
        self.check_returned()
        self.check_effects()
        self.check_ledger()
        self.check_rejected_nowhere()
        self.follow_stream()
        self.classify()
        return self.verdict

    def problem(self, kind: list[str], text: str, *culprits: str) -> None:
        self.verdict.culprits.update(culprits)
        if len(kind) < PROBLEM_LIMIT:
            kind.append(text)
        elif len(kind) == PROBLEM_LIMIT:
            kind.append("... (more)")

    def read_journals(self) -> None:
        verdict = self.verdict
        for device, journal in enumerate(self.data["journals"]):
            username = self.run.usernames[self.users_of[device]]
            for record in journal:
                if "fault" in record:
                    verdict.faults[record["fault"]] += 1
                    continue
                if "hostile" in record and not self.read_hostile(record):
                    continue
                status = record["status"]
                if status in ("accepted", "duplicate"):
                    self.check_stamp(record)
                    raw = record["event"]
                    event = decode_event(msgspec.json.encode(raw), Writer.DEVICE)
                    event = msgspec.structs.replace(event, actor=username)
                    self.accepted.setdefault(record["id"], (event, int(record["seq"]), device))
                    self.decided.setdefault(
                        record["id"], (record.get("sent_at"), record.get("answered_at"))
                    )
                    if record.get("behind") and "hostile" not in record:
                        verdict.faults["clock_behind"] += 1
                elif record.get("reason") == "clock_skew":
                    verdict.faults["clock_ahead"] += 1
        for state in self.data["states"]:
            for rejected in state["rejected"] or []:
                self.rejected[rejected["id"]] = rejected["reason"]
                verdict.rejected[rejected["reason"]] += 1
        for row, kind in self.hostile_local.items():
            self.read_hostile({"hostile": kind, "id": row, "outcome": self.rejected.get(row)})
        for kind, count in self.run.faults.items():
            verdict.faults[kind] += count

    def read_hostile(self, record: dict[str, Any]) -> bool:
        """Judge one hostile event's answer; True if it was stored (read on as accepted)."""
        kind, got = record["hostile"], record["outcome"]
        if got == "local":  # the device's own: judged once its rejected list is read
            self.hostile_local[str(record["id"])] = kind
            return False
        if kind in LOCAL_KINDS and got is None:
            got = "still in the outbox, or gone without a trace"
        if got == EXPECTED[kind]:
            self.verdict.hostile[kind] += 1
        else:
            self.problem(
                self.verdict.invariants,
                f"hostile {kind} event {record['id']!r}: SPEC answers {EXPECTED[kind]}, "
                f"the backend answered {got}",
                str(record["id"]),
            )
        if kind in LOCAL_KINDS:
            return False
        if got != "accepted":
            if kind != "replay":  # a replay's id is the other user's stored event
                self.hostile_rejected[str(record["id"])] = kind
            return False
        self.hostile_accepted.add(str(record["id"]))
        return True

    def check_stamp(self, record: dict[str, Any]) -> None:
        """No accepted stamp is further ahead of the server's clock than the skew limit
        (``answered_at`` is the server's time at the answer, after the decision)."""
        ahead = parse_hlc(record["event"]["hlc"]).wall - int(record["answered_at"])
        if ahead > SKEW_LIMIT_MS:
            self.problem(
                self.verdict.invariants,
                f"event {record['id']} was accepted with a stamp {ahead} ms ahead of the server",
                str(record["id"]),
            )

    def check_rejected_nowhere(self) -> None:
        """A rejected event leaves no trace: not applied, not stored, not in any pulled
        entity's metadata."""
        rejected = set(self.rejected) | set(self.hostile_rejected)
        ledger = {event_id for event_id, _, _ in self.data["ledger"] or []}
        written: set[str] = set()
        for changes in self.data["pulls"]:
            for change in changes:
                meta = change.get("meta") or {}
                written.update(r["id"] for r in (meta.get("fields") or {}).values())
                for tags in (meta.get("labels") or {}).values():
                    written.update(tags)
        for event_id in sorted(rejected & (ledger | written | set(self.accepted))):
            self.problem(
                self.verdict.invariants,
                f"rejected event {event_id!r} was stored or applied all the same",
                event_id,
            )

    def check_divergence(self) -> None:
        backend = [normal_pull(changes) for changes in self.data["pulls"]]
        for device, state in enumerate(self.data["states"]):
            user = self.users_of[device]
            if state.get("integrity") != "ok":
                self.problem(
                    self.verdict.divergences, f"device {device}: store {state['integrity']}"
                )
            mine = normal_snapshot(state["snapshot"])
            difference = first_difference(mine, backend[user])
            if difference:
                self.problem(
                    self.verdict.divergences,
                    f"device {device} ({self.run.usernames[user]}) differs from the backend's "
                    f"pull at {difference}",
                )
        seen: dict[str, tuple[int, Any]] = {}
        for user, boards in enumerate(backend):
            for board_id, board in boards.items():
                if board_id in seen and seen[board_id][1] != board:
                    other = seen[board_id][0]
                    difference = first_difference(board, seen[board_id][1])
                    self.problem(
                        self.verdict.divergences,
                        f"board {board_id} differs between users {other} and {user}: {difference}",
                    )
                seen.setdefault(board_id, (user, board))
        for user, boards in enumerate(backend):
            name = self.run.usernames[user]
            for board_id, board in boards.items():
                if name not in {m for m, _ in board["members"]}:
                    self.problem(
                        self.verdict.invariants,
                        f"{name} sees board {board_id} without being a member",
                    )

    def check_returned(self) -> None:
        for returned in self.run.returned:
            for event_id in returned.ids:
                if event_id not in self.accepted and event_id not in self.rejected:
                    self.problem(
                        self.verdict.losses,
                        f"step {returned.step} ({returned.name} on device {returned.device}): "
                        f"event {event_id} returned but was neither stored nor rejected",
                        event_id,
                    )

    def final_states(self) -> dict[EntityKey, EntityState]:
        return final_states(self.data["pulls"])

    def check_effects(self) -> None:
        final = self.final_states()
        compensations = {derived_id("compensation", i): i for i in self.accepted}
        created = {
            key
            for event, _, _ in self.accepted.values()
            for key in merge.keys_of(event)
            if merge.apply(merge.new_state(key, event.board), event).created
        }
        removes: dict[tuple[str, str], set[str]] = defaultdict(set)  # (task, label) -> observed
        for event, _, _ in self.accepted.values():
            if event.type == "TaskLabelRemoved":
                payload: Any = event.payload
                removes[(event.entity, payload.label)].update(payload.observed)
        for event_id, (event, _, device) in sorted(self.accepted.items(), key=lambda i: i[1][1]):
            where = f"{event.type} {event_id} (device {device})"
            for key in merge.keys_of(event):
                if key not in created:
                    continue
                mine = merge.apply(merge.new_state(key, event.board), event)
                state = final.get(key)
                if state is None:
                    self.problem(
                        self.verdict.losses, f"{where}: {key.kind} {key.id} is gone", event_id
                    )
                    continue
                for name, register in mine.fields.items():
                    now = state.fields.get(name)
                    if now is None:
                        self.problem(
                            self.verdict.losses,
                            f"{where}: {key.kind} {key.id} has no {name}",
                            event_id,
                        )
                    elif now.stamp < register.stamp:
                        self.problem(
                            self.verdict.losses,
                            f"{where}: {key.kind} {key.id} {name}={register.value!r} at "
                            f"{register.hlc} lost to {now.value!r} at {now.hlc} ({now.id})",
                            event_id,
                            now.id,
                        )
                    elif now.id == event_id and now.value != register.value:
                        self.problem(
                            self.verdict.losses,
                            f"{where}: {key.kind} {key.id} {name} shows {now.value!r}, the event "
                            f"wrote {register.value!r}",
                            event_id,
                        )
                    elif now.id not in self.accepted and now.id not in compensations:
                        self.problem(
                            self.verdict.invariants,
                            f"{key.kind} {key.id} {name} was written by unknown event {now.id}",
                        )
                live = state.labels()
                for label, tags in mine.tags.items():
                    for tag in tags:
                        if tag not in live.get(label, ()) and tag not in removes[(key.id, label)]:
                            self.problem(
                                self.verdict.losses,
                                f"{where}: label {label!r} on task {key.id} vanished with no "
                                "remove that observed it",
                                event_id,
                            )
                for label, observed in mine.tombstones.items():
                    kept = set(observed) & set(live.get(label, ()))
                    if kept:
                        self.problem(
                            self.verdict.losses,
                            f"{where}: remove of {label!r} on task {key.id} did not take "
                            f"{sorted(kept)}",
                            event_id,
                        )

    def check_ledger(self) -> None:
        ledger = self.data["ledger"]
        if ledger is None:
            return
        applied = {event_id for event_id, _, _ in ledger}
        for event_id, seq, times in ledger:
            if times != 1:
                self.problem(
                    self.verdict.applied_twice,
                    f"event {event_id} (seq {seq}) applied {times} times",
                )
        for event_id in self.accepted:
            if event_id not in applied:
                self.problem(
                    self.verdict.losses,
                    f"event {event_id} was accepted but the projector never applied it",
                    event_id,
                )

    # --- the saga and access, in stream order ---------------------------------------------

    def follow_stream(self) -> None:
        """Follow the accepted events in stream order as the workload does: find the WIP
        causes, and check each was compensated (applied) with a notice to its actor."""
        ledger = self.data["ledger"]
        order: list[tuple[int, str]] = sorted((seq, i) for i, (_, seq, _) in self.accepted.items())
        compensation_of: dict[str, str] = {derived_id("compensation", i): i for i in self.accepted}
        applied_compensations: dict[str, int] = {}
        if ledger is not None:
            for event_id, seq, _ in ledger:
                if event_id in compensation_of:
                    applied_compensations[compensation_of[event_id]] = seq
        stream = [(seq, 0, event_id) for seq, event_id in order]
        stream += [(seq, 1, cause) for cause, seq in applied_compensations.items()]
        stream.sort()
        notices = {
            change["id"]
            for changes in self.data["pulls"]
            for change in changes
            if change["kind"] == "notice"
        }
        self.verdict.compensated = len(applied_compensations)
        boards: dict[str, EntityState] = {}
        tasks: dict[str, EntityState] = {}
        members: dict[str, EntityState] = {}
        counting: dict[str, tuple[str, str, str]] = {}  # task -> (board, assignee, event id)
        priors: dict[str, tuple[Event, dict[str, Any]]] = {}
        self.causes: list[tuple[Event, list[str]]] = []
        finished: dict[str, str] = {}  # recurring task -> the event that made it done
        for _, is_comp, event_id in stream:
            if is_comp:
                cause, restored = priors[event_id]
                exceeded = wip_limit_exceeded(cause, "-", 1, 0)
                event = compensation(exceeded, cause.hlc, restored, 0)
            else:
                event = self.accepted[event_id][0]
                self.check_member(event, boards, members)
            for key in merge.keys_of(event):
                table = {"board": boards, "task": tasks, "member": members}.get(key.kind)
                if table is None:
                    continue
                before = table.get(key.id)
                try:
                    after = merge.apply(before or merge.new_state(key, event.board), event)
                except MergeError as exc:  # stored, yet no fold can take it
                    self.problem(
                        self.verdict.invariants,
                        f"accepted {event.type} {event.id} cannot be folded: {exc}",
                        event.id,
                    )
                    continue
                table[key.id] = after
                if key.kind != "task":
                    continue
                if completes(before, after) is not None:
                    finished.setdefault(key.id, event.id)
                if could_cause(event):
                    priors[event.id] = (event, prior_values(before, event))
                was, now = wip_assignee(before), wip_assignee(after)
                if was == now:
                    continue
                counting.pop(key.id, None)
                if now is None:
                    continue
                counting[key.id] = (event.board, now, event.id)
                possible = possible_cause(event, before, after, wip_limit(boards.get(event.board)))
                if possible is None:
                    continue
                load = [e for b, a, e in counting.values() if b == event.board and a == now]
                if not possible.is_cause(len(load)):
                    continue
                self.causes.append((event, load))
                if event.id in self.hostile_accepted:
                    self.verdict.hostile_causes += 1
                if event.id not in applied_compensations and ledger is not None:
                    self.problem(
                        self.verdict.invariants,
                        f"WIP cause {event.id} ({now} over {possible.limit} on board "
                        f"{event.board}) "
                        "was never compensated",
                    )
                elif notice_id(event.id) not in notices:
                    self.problem(
                        self.verdict.invariants,
                        f"WIP cause {event.id} was compensated but {event.actor} got no notice",
                    )

        self.check_recurrences(finished)
        self.check_reminders()

    def check_reminders(self) -> None:
        """A reminder fires once: no user was reminded twice of one due date of one task
        (one ``cause``), whatever restarts, redeliveries and re-plans happened; and at
        least once: every reminder that must exist at the end (``reminders.expected``: an
        armed task due by the time the run healed, its last due-date event as the cause,
        its assignee a member) was pulled by its assignee exactly once."""
        for user, changes in enumerate(self.data["pulls"]):
            seen: Counter[tuple[str, str]] = Counter(
                (change["values"]["task"], change["values"]["cause"])
                for change in changes
                if change["kind"] == "notice"
                and change["values"] is not None
                and change["values"]["reason"] == "reminder"
            )
            self.verdict.reminders += len(seen)
            for (task, cause), times in sorted(seen.items()):
                if times > 1:
                    self.problem(
                        self.verdict.invariants,
                        f"{self.run.usernames[user]} was reminded {times} times of task {task}"
                        f" due by {cause}",
                        cause,
                    )
        cutoff, lead_s = self.run.reminder_cutoff_ms, self.run.reminder_lead_s
        if cutoff is None or lead_s is None:
            return  # not the tool's own backend: its lead (or orchestrator) is unknown
        got = pulled(self.data["pulls"], self.run.usernames)
        must = expected(self.final_states(), cutoff, lead_s)
        self.verdict.reminders_expected = len(must)
        for (assignee, task, cause), fire_ms in sorted(must.items()):
            times = got[(assignee, task, cause)]
            if times == 1:
                self.verdict.reminders_fired_once += 1
            elif times == 0:
                self.problem(
                    self.verdict.invariants,
                    f"{assignee} was never reminded of task {task} due by {cause} (its "
                    f"reminder was due {(cutoff - fire_ms) / 1000:.0f} s before the run healed)",
                    cause,
                )

    def check_recurrences(self, finished: dict[str, str]) -> None:
        """Each recurring task whose merged status became done (in stream order, with the
        compensations) spawned its next occurrence exactly once, and no other task did:
        the orchestrator's TaskCreated (id derived from the task's) applied once, and the
        occurrence in the final pulls."""
        ledger = self.data["ledger"]
        if ledger is None:
            return
        spawned_by = {derived_id("recurrence", task): task for task in self.tasks_seen()}
        applied = Counter(spawned_by[i] for i, _, _ in ledger if i in spawned_by)
        final = self.final_states()
        for task, cause in sorted(finished.items()):
            times = applied.get(task, 0)
            if times != 1:
                self.problem(
                    self.verdict.invariants,
                    f"recurring task {task} was finished by {cause} but its next occurrence "
                    f"was spawned {times} times",
                    cause,
                )
            elif EntityKey("task", derived_id("recurrence-task", task)) not in final:
                self.problem(
                    self.verdict.losses,
                    f"recurring task {task}: its next occurrence is missing from the pulls",
                    cause,
                )
        for task in sorted(set(applied) - set(finished)):
            self.problem(
                self.verdict.invariants,
                f"task {task} spawned a next occurrence but its merged status never became "
                "done with a recurrence label",
            )
        self.verdict.recurrences = sum(1 for task in finished if applied.get(task) == 1)

    def tasks_seen(self) -> set[str]:
        return {
            event.entity
            for event, _, _ in self.accepted.values()
            if isinstance(event.payload, TaskCreated)
        }

    def check_member(
        self, event: Event, boards: dict[str, EntityState], members: dict[str, EntityState]
    ) -> None:
        if event.type == "BoardCreated":
            return
        board = boards.get(event.board)
        if board is None:
            return
        if not merge.is_active_member(members.get(merge.member_id(event.board, event.actor or ""))):
            if self.member_when_decided(event):
                return
            self.problem(
                self.verdict.invariants,
                f"{event.actor} wrote {event.type} {event.id} on board {event.board} "
                "without being a member",
            )

    def member_when_decided(self, event: Event) -> bool:
        """Whether the author may have been a member when the BFF decided ``event``.

        The BFF decides pushes on a board one at a time, against every event decided
        before, but publishes after deciding: two pushes in flight together can reach the
        stream in the other order. So membership is judged by decision windows, not stream
        order: a membership event answered before this event was first sent was surely
        decided before it; one sent before this event was answered may have been. If some
        choice of the latter makes the author a member, the BFF was right to accept.
        """
        sent, answered = self.decided.get(event.id, (None, None))
        if sent is None or answered is None:
            return False
        key = EntityKey("member", merge.member_id(event.board, event.actor or ""))
        sure: list[Event] = []
        maybe: list[Event] = []
        for other_id, (other, _, _) in self.accepted.items():
            if other.board != event.board or key not in merge.keys_of(other):
                continue
            other_sent, other_answered = self.decided.get(other_id, (None, None))
            if other_answered is not None and other_answered < sent:
                sure.append(other)
            elif other_sent is not None and other_sent <= answered:
                maybe.append(other)
        if len(maybe) > 10:
            return True  # too many in flight together to tell: not a finding
        for size in range(len(maybe) + 1):
            for chosen in itertools.combinations(maybe, size):
                state = merge.new_state(key, event.board)
                for member_event in (*sure, *chosen):
                    state = merge.apply(state, member_event)
                if merge.is_active_member(state):
                    return True
        return False

    # --- conflicts that actually occurred ---------------------------------------------

    def concurrent(self, a: str, b: str) -> bool:
        if a not in self.accepted or b not in self.accepted:
            return False  # a compensation (the backend's own event) races no device
        _, seq_a, dev_a = self.accepted[a]
        _, seq_b, dev_b = self.accepted[b]
        if dev_a == dev_b or a not in self.watermark or b not in self.watermark:
            return False
        return seq_b > self.watermark[a] and seq_a > self.watermark[b]

    def classify(self) -> None:
        by_task: dict[str, list[str]] = defaultdict(list)
        for event_id, (event, _, _) in self.accepted.items():
            if event.type != "TaskCreated" and event.type.startswith("Task"):
                by_task[event.entity].append(event_id)
        conflicts = self.verdict.conflicts
        for ids in by_task.values():
            for i, a in enumerate(ids):
                for b in ids[i + 1 :]:
                    if self.concurrent(a, b):
                        kind = _pair_kind(self.accepted[a][0], self.accepted[b][0])
                        if kind:
                            conflicts[kind] += 1
        for cause, load in getattr(self, "causes", []):
            if any(other != cause.id and self.concurrent(cause.id, other) for other in load):
                conflicts["wip"] += 1
        for kind in CONFLICT_KINDS:
            conflicts[kind] += 0


def _pair_kind(a: Event, b: Event) -> str | None:
    types = {a.type, b.type}
    if a.type == b.type == "TaskUpdated":
        fa = set(_fields(a))
        fb = set(_fields(b))
        return "same_field" if fa & fb else "different_field"
    if "TaskDeleted" in types and types & {"TaskUpdated", "TaskLabelAdded", "TaskLabelRemoved"}:
        return "delete_vs_edit"
    if types == {"TaskLabelAdded", "TaskLabelRemoved"}:
        pa: Any = a.payload
        pb: Any = b.payload
        return "label" if pa.label == pb.label else None
    return None


def _fields(event: Event) -> list[str]:
    payload: Any = event.payload
    return list(payload.fields.items())
