"""Shrinking a failing scenario: the fewest steps that still fail, within a time budget.

The setup steps (sign-ups, the three boards, their first tasks) always stay. First the
steps after the last one that made an event the oracle blamed are cut; then delta debugging
(ddmin) removes chunks of the remaining steps while the scenario still fails. Each try is a
full run on the same backend with new users and new device processes.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from outpost.conflicts.scenario import Scenario, Step

Fails = Callable[[Scenario], Awaitable[bool]]


async def shrink(
    scenario: Scenario, fails: Fails, *, last_culprit_step: int | None, budget_s: float
) -> tuple[list[Step], int]:
    """The smallest failing step list found, and how many runs it took."""
    deadline = time.monotonic() + budget_s
    setup = [s for s in scenario.steps if s.setup]
    body = [s for s in scenario.steps if not s.setup]
    runs = 0
    if last_culprit_step is not None:
        cut = [s for s in body if s.index <= last_culprit_step]
        if len(cut) < len(body):
            runs += 1
            if await fails(scenario.with_steps(setup + cut)):
                body = cut
    n = 2
    while len(body) >= 2 and time.monotonic() < deadline:
        size = -(-len(body) // n)
        chunks = [body[i : i + size] for i in range(0, len(body), size)]
        reduced = False
        for chunk in chunks:
            if time.monotonic() >= deadline:
                break
            ids = {s.index for s in chunk}
            rest = [s for s in body if s.index not in ids]
            runs += 1
            if await fails(scenario.with_steps(setup + rest)):
                body, n, reduced = rest, max(n - 1, 2), True
                break
        if not reduced:
            if n >= len(body):
                break
            n = min(len(body), n * 2)
    return setup + body, runs
