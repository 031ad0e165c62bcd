"""Deliberately broken merge rules: the self-test of the conflict tool's oracle.

``outpost conflicts --break-merge RULE`` runs the backend and every device process with
one merge rule of SPEC section 5 swapped for a wrong one; the tool must then fail, with the
seed and a shrunk list of steps. Never a real mode: it exists to show the oracle can see a
broken rule.

- ``lww-arrival-order``: a field register takes whatever write is applied last, ignoring
  ``(hlc, event id)``; the state then depends on the order events arrive in.
- ``lww-oldest-wins``: the write with the smallest ``(hlc, event id)`` wins (it still
  converges, but a later edit is lost).

``python -m outpost.conflicts.broken RULE ARGS...`` runs ``outpost ARGS...`` (the backend)
with the rule broken.
"""

from __future__ import annotations

import sys

from protocol.merge import state as merge_state
from protocol.merge.state import Register

RULES = ("lww-arrival-order", "lww-oldest-wins")


def _arrival_order(fields: dict[str, Register], name: str, register: Register) -> None:
    fields[name] = register


def _oldest_wins(fields: dict[str, Register], name: str, register: Register) -> None:
    current = fields.get(name)
    if current is None or register.stamp < current.stamp:
        fields[name] = register


def break_merge(rule: str) -> None:
    """Swap the last-writer-wins join of ``protocol.merge.state`` for a wrong one."""
    joins = {"lww-arrival-order": _arrival_order, "lww-oldest-wins": _oldest_wins}
    if rule not in joins:
        raise SystemExit(f"unknown broken merge rule {rule!r}: choose from {', '.join(RULES)}")
    merge_state._join = joins[rule]


def main(argv: list[str]) -> int:
    if not argv:
        raise SystemExit("usage: python -m outpost.conflicts.broken RULE OUTPOST-ARGS...")
    break_merge(argv[0])
    from outpost.cli import main as outpost_main

    return outpost_main(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
