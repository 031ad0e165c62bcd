"""Deliberately broken builds: the self-test of the conflict tool's oracle.

``outpost conflicts --break RULE`` runs the backend and every device process with one part
of the system swapped for a wrong one; the run must then fail, and its problems must name
the check that caught it. One rule per check of the oracle, so none of them can pass
vacuously. Never a real mode: it exists to show what the oracle can see.

- ``lww-arrival-order`` (everywhere): a field takes whatever write arrives last. Loss.
- ``lww-oldest-wins`` (everywhere): the smallest ``(hlc, id)`` wins; it converges, but
  loses later edits. Loss.
- ``device-drops-labels`` (devices): pulled label sets are dropped. Divergence.
- ``projector-applies-twice`` (backend): every event is folded twice (the views do not
  change: merges are idempotent). Applied twice.
- ``saga-off`` (backend): the workload finds no WIP cause. Every cause compensated.
- ``clock-unchecked`` (backend): no clock-skew check. No stamp ahead of the limit; hostile
  events answered as SPEC says.
- ``open-boards`` (backend): push authorizes everything. Nobody outside a board writes to
  it; hostile events answered as SPEC says.
- ``recurrence-off`` (backend): the orchestrator never spawns a recurring task's next
  occurrence. Each finished recurring task spawned once.
- ``reminders-off`` (backend): the orchestrator never writes a ``ReminderDue`` (a fired
  schedule is dropped). Each reminder due by the end was pulled once by its assignee.
- ``device-misreads-results`` (devices): every 4th accepted event is taken for rejected.
  No rejected event appears anywhere.

``python -m outpost.conflicts.broken RULE ARGS...`` runs ``outpost ARGS...`` (the backend)
with the rule broken; device processes read it from ``BREAK_ENV``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import msgspec

from protocol.merge.state import Register

__all__ = ["BREAK_ENV", "CAUGHT_BY", "RULES", "break_backend", "break_device"]

BREAK_ENV = "OUTPOST_CONFLICTS_BREAK"
"""How device processes learn the broken rule (the backend gets it on its command line)."""

CAUGHT_BY: dict[str, tuple[str, ...]] = {
    "lww-arrival-order": ("loss:",),
    "lww-oldest-wins": ("loss:",),
    "device-drops-labels": ("divergence:",),
    "projector-applies-twice": ("applied twice:",),
    "saga-off": ("was never compensated",),
    "clock-unchecked": ("ahead of the server", "SPEC answers clock_skew"),
    "open-boards": ("without being a member", "SPEC answers forbidden"),
    "device-misreads-results": ("was stored or applied all the same",),
    "recurrence-off": ("its next occurrence was spawned 0 times",),
    "reminders-off": ("was never reminded of task",),
}
"""What a run with each rule broken must report: the named check's words."""

RULES = tuple(CAUGHT_BY)


def _arrival_order(fields: dict[str, Register], name: str, register: Register) -> None:
    fields[name] = register


def _oldest_wins(fields: dict[str, Register], name: str, register: Register) -> None:
    current = fields.get(name)
    if current is None or register.stamp < current.stamp:
        fields[name] = register


def _break_join(join: Callable[[dict[str, Register], str, Register], None]) -> None:
    from protocol.merge import state

    state._join = join


def _drop_labels() -> None:
    from protocol import merge

    original = merge.from_change

    def from_change(kind: str, id: str, board: str, values: Any, meta: Any) -> Any:
        if kind == "task" and values is not None:
            values = {**values, "labels": []}
            meta = msgspec.structs.replace(merge.as_change_meta(meta), labels={})
        return original(kind, id, board, values, meta)

    merge.from_change = from_change


def _apply_twice() -> None:
    from backend.projector import projector

    original = projector._not_yet_applied

    async def twice(conn: Any, events: list[Any]) -> list[Any]:
        fresh = await original(conn, events)
        return fresh + fresh

    projector._not_yet_applied = twice


def _saga_off() -> None:
    from backend.saga import workload

    original = workload._Batch.apply_task

    async def no_cause(self: Any, event: Any) -> None:
        await original(self, event)  # folds the task as ever, and forgets the cause

    workload._Batch.apply_task = no_cause  # type: ignore[assignment,method-assign]


def _clock_unchecked() -> None:
    from backend.bff.sync import push

    original = push.PushService.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self._max_skew_ms = 10**15

    push.PushService.__init__ = init  # type: ignore[method-assign]


def _open_boards() -> None:
    from backend.bff.sync import authority

    authority.Authority.decide = lambda self, event, username, **_: None  # type: ignore[method-assign]


def _recurrence_off() -> None:
    from backend.orchestrator import component

    async def no_spawn(self: Any, *args: Any) -> None:
        return None

    component.Orchestrator._spawn = no_spawn  # type: ignore[method-assign]


def _reminders_off() -> None:
    from backend.orchestrator import component

    async def dropped(self: Any, plan: Any) -> None:
        return None

    component.Orchestrator.fired = dropped  # type: ignore[method-assign]


_BACKEND_PATCHES: dict[str, Callable[[], None]] = {
    "lww-arrival-order": lambda: _break_join(_arrival_order),
    "lww-oldest-wins": lambda: _break_join(_oldest_wins),
    "projector-applies-twice": _apply_twice,
    "saga-off": _saga_off,
    "clock-unchecked": _clock_unchecked,
    "open-boards": _open_boards,
    "recurrence-off": _recurrence_off,
    "reminders-off": _reminders_off,
}
_DEVICE_PATCHES: dict[str, Callable[[], None]] = {
    "lww-arrival-order": lambda: _break_join(_arrival_order),
    "lww-oldest-wins": lambda: _break_join(_oldest_wins),
    "device-drops-labels": _drop_labels,
    # device-misreads-results: ``outpost.conflicts.device.ScenarioTransport`` reads it
}


def _check(rule: str) -> None:
    if rule not in CAUGHT_BY:
        raise SystemExit(f"unknown broken rule {rule!r}: choose from {', '.join(RULES)}")


def break_backend(rule: str) -> None:
    """Break the backend of this process by ``rule`` (nothing if the rule is a device's)."""
    _check(rule)
    _BACKEND_PATCHES.get(rule, lambda: None)()


def break_device(rule: str) -> None:
    """Break the device of this process by ``rule`` (nothing if the rule is the backend's)."""
    _check(rule)
    _DEVICE_PATCHES.get(rule, lambda: None)()


def main(argv: list[str]) -> int:
    if not argv:
        raise SystemExit("usage: python -m outpost.conflicts.broken RULE OUTPOST-ARGS...")
    break_backend(argv[0])
    from outpost.cli import main as outpost_main

    return outpost_main(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
