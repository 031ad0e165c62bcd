"""The adversary: a board member's device that sends hostile events among its honest ones.

With ``--faults`` (or ``--adversary``), one device of a member who does not own the hot
board also crafts events no honest app would write, and pushes them straight to the BFF
around its outbox: stamps in Unicode digits, ids with a trailing newline or a fullwidth
letter, a compensation's node, forged backend-only fields and types, a clock a day ahead
and one just inside the skew limit, a reserved (version 5) id, another user's device, a
task named under the wrong board, a byte-for-byte replay of another user's accepted event,
a task planted on a board it is no member of, and a WIP cause stamped minutes ahead. Each
kind has the answer SPEC gives it (``EXPECTED``); the oracle checks that every kind got
exactly that answer, that no rejected event appears anywhere, that no accepted stamp is
further ahead than the skew limit, and that the accepted ones converge and are compensated
like anyone's.
"""

from __future__ import annotations

import time
from typing import Any

from protocol import format_hlc, new_id, patterns
from protocol.ids import derived_id

__all__ = ["EXPECTED", "HOSTILE_KINDS", "LOCAL_KINDS", "SKEW_LIMIT_MS", "craft", "outcome"]

SKEW_LIMIT_MS = 5 * 60 * 1000
"""The backend's clock-skew limit (SPEC 6): no accepted stamp is further ahead."""

EXPECTED: dict[str, str] = {
    "unicode_hlc": "invalid",
    "newline_id": "invalid",
    "fullwidth_id": "invalid",
    "saga_node": "invalid",
    "reserved_id": "invalid",
    "forged_delete": "forbidden",
    "forged_compensation": "forbidden",
    "forged_saga_event": "forbidden",
    "far_clock": "clock_skew",
    "edge_clock": "accepted",
    "stolen_device": "forbidden",
    "cross_board": "forbidden",
    "replay": "id_conflict",
    "outsider_write": "forbidden",
    "wip_cause_ahead": "accepted",
    "poison_outbox": "unreadable",
}
"""Each hostile kind and the one answer SPEC gives it (``accepted``, or the reason).
``poison_outbox`` is the device's own: an event no server can read, put into its outbox by
SQL; the batch holding it is refused whole (422), and the device must split it out, reject
it with the reason ``unreadable`` and sync the rest (FAULTS 21): no device is ever stuck."""

LOCAL_KINDS = frozenset({"poison_outbox"})
"""Kinds judged by the device's own rejected list, not by a push answer."""

HOSTILE_KINDS = tuple(EXPECTED)

_ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
_EDGE_AHEAD_MS = SKEW_LIMIT_MS - 20_000
"""Just inside the limit, with room for the time between crafting and deciding."""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000  # the backend runs on this machine's clock


def craft(kind: str, device_id: str, args: dict[str, Any], counter: int) -> list[dict[str, Any]]:
    """The hostile events of ``kind``: ``args`` has ``board`` and ``task`` (on it),
    ``other_board``, ``wip_board`` and ``wip_tasks`` (on it), ``other_device`` (another
    user's), ``replay`` (an event another user had accepted) and ``outsider_board`` (a
    board of another user's that this one is no member of)."""
    now = _now_ms()
    board, task = args["board"], args["task"]

    def event(type_: str, payload: dict[str, Any], **envelope: Any) -> dict[str, Any]:
        return {
            "id": new_id(),
            "type": type_,
            "schema": 1,
            "board": board,
            "entity": task,
            "hlc": format_hlc(now, counter, device_id),
            "device": device_id,
            "payload": payload,
            **envelope,
        }

    def title(text: str, **envelope: Any) -> dict[str, Any]:
        return event("TaskUpdated", {"fields": {"title": f"{kind} {text}"}}, **envelope)

    if kind == "unicode_hlc":  # read as now by int(), sorts above every ASCII stamp
        wall = f"{now:013d}".translate(_ARABIC_INDIC)
        return [title("wins for ever", hlc=f"{wall}:{counter:05d}:{device_id}")]
    if kind == "newline_id":
        return [title("sticks a device", board=board + "\n")]
    if kind == "fullwidth_id":
        return [title("looks alike", entity=chr(0xFF41) + task[1:])]
    if kind == "saga_node":
        stamp = format_hlc(now, counter, device_id) + patterns.SAGA_SUFFIX
        return [title("beats the saga", hlc=stamp)]
    if kind == "reserved_id":
        return [title("backend id", id=derived_id("compensation", new_id()))]
    if kind == "forged_delete":
        return [event("TaskUpdated", {"fields": {"deleted": True}})]
    if kind == "forged_compensation":
        payload = {"fields": {"status": "todo"}, "compensates": new_id(), "reason": "forged"}
        return [event("TaskUpdated", payload)]
    if kind == "forged_saga_event":
        payload = {"assignee": "someone", "limit": 1, "cause": new_id()}
        return [event("WipLimitExceeded", payload)]
    if kind == "far_clock":
        return [title("from tomorrow", hlc=format_hlc(now + 86_400_000, counter, device_id))]
    if kind == "edge_clock":
        return [title("minutes ahead", hlc=format_hlc(now + _EDGE_AHEAD_MS, counter, device_id))]
    if kind == "stolen_device":
        other = args["other_device"]
        return [title("as another user", device=other, hlc=format_hlc(now, counter, other))]
    if kind == "cross_board":
        return [title("on the wrong board", board=args["other_board"])]
    if kind == "replay":
        return [dict(args["replay"])]
    if kind == "outsider_write":  # a task on a board of another user's it is no member of
        task_id = new_id()
        payload = {"title": "planted", "position": "a0"}
        return [event("TaskCreated", payload, board=args["outsider_board"], entity=task_id)]
    if kind == "poison_outbox":  # an id that is no string: the whole batch is unreadable
        return [title("in the outbox", id=counter)]
    if kind == "wip_cause_ahead":
        # Two of the WIP board's tasks to Doing for one assignee, minutes ahead: the
        # second takes the assignee over the limit of 1, a cause the saga must undo.
        ahead = now + _EDGE_AHEAD_MS
        fields = {"status": "doing", "assignee": f"adversary{counter % 1000}"}
        return [
            event(
                "TaskUpdated",
                {"fields": fields},
                board=args["wip_board"],
                entity=entity,
                hlc=format_hlc(ahead, counter + n, device_id),
            )
            for n, entity in enumerate(args["wip_tasks"][:2])
        ]
    raise ValueError(f"unknown hostile kind {kind!r}")


def outcome(result: dict[str, Any]) -> str:
    """What the backend answered one event: ``accepted`` (or duplicate), or its reason."""
    if result["status"] in ("accepted", "duplicate"):
        return "accepted"
    return str(result.get("reason", "rejected"))
