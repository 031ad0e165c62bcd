"""Scenario 4b, bootstrap of a large board: scenario 4's steps with a million tasks in the
full run (``Plan.bootstrap_large_tasks``; a small board with ``--quick``). The device must
not hold the whole set in memory: it applies a page and lets it go."""

from __future__ import annotations

from outpost.bench.bootstrap import measure
from outpost.bench.harness import Workspace
from outpost.bench.plan import Plan
from outpost.bench.report import ScenarioResult

NAME = "bootstrap_large"
TITLE = "4b. bootstrap, large"
TARGET_SECONDS = 60.0
TARGET_MB = 500.0


async def run(ws: Workspace, plan: Plan) -> ScenarioResult:
    count = plan.bootstrap_large_tasks
    return await measure(ws, NAME, TITLE, count, TARGET_SECONDS, TARGET_MB)
