"""Scenario 5, fan-out: many live connections (``/v1/sync/live?since=``, as devices connect
by default) to a shared board, spread over users at no more than the default live cap of
20 each; a push to it; the time until the last connection has its page of changes (or a
poke). Beside it, the same push with a single live connection, measured in the same run."""

from __future__ import annotations

import asyncio
import random
import time
from urllib.parse import urlsplit

import httpx

from outpost.bench.harness import (
    BenchError,
    Workspace,
    percentile,
    progress,
    raise_open_files,
    unique_name,
)
from outpost.bench.plan import Plan
from outpost.bench.report import Figure, ScenarioResult, Target
from outpost.bench.seed import Seeder
from outpost.bench.sse import LiveConnection

NAME = "fanout"
TITLE = "5. fan-out"
TARGET_P99_MS = 250.0
ROUND_GAP_S = (0.5, 1.0)
"""A random pause between rounds: longer than the hub's coalescing pause after a poke
(0.25 s), so every round is poked, and random, so that pushes do not fall in step with
the projector's fetch cycle (0.5 s) and always hit the same moment of it."""
OPEN_AT_ONCE = 100


async def run(ws: Workspace, plan: Plan) -> ScenarioResult:
    total = plan.fanout_connections
    result = ScenarioResult(
        NAME,
        TITLE,
        params={"connections": total, "users": plan.fanout_users, "rounds": plan.fanout_rounds},
    )
    limit = raise_open_files(total + 1024)
    if limit < total + 64:
        raise BenchError(f"open-files limit {limit} is too low for {total} connections")
    owner = unique_name("fan")
    members = [unique_name("fan") for _ in range(plan.fanout_users - 1)]
    tokens = [await ws.session(owner)] + [await ws.session(member) for member in members]
    seeder = Seeder(ws.url, tokens[0])
    connections: list[LiveConnection] = []
    try:
        board = await seeder.board("Fan-out")
        if members:
            await seeder.share(board, members)
        (task,) = await seeder.tasks(board, 1)
        await ws.wait_projected()
        where = urlsplit(ws.url)
        host, port = where.hostname or "127.0.0.1", int(where.port or 80)
        # As devices connect by default: each with its user's cursor, so every push reaches
        # every connection as a page of changes (the BFF builds one per connection).
        cursors = [await _cursor(ws.url, token) for token in tokens]
        connections = [
            LiveConnection(host, port, tokens[i % len(tokens)], cursors[i % len(tokens)])
            for i in range(total)
        ]
        await connections[0].open()
        await asyncio.sleep(0.5)  # the stream reads the user's boards once connected
        progress(f"fan-out: {plan.fanout_rounds} pushes with 1 live connection")
        single = await _rounds(seeder, board, task, connections[:1], plan.fanout_rounds)
        progress(f"fan-out: opening {total:,} live connections")
        for start in range(1, total, OPEN_AT_ONCE):
            await asyncio.gather(*(c.open() for c in connections[start : start + OPEN_AT_ONCE]))
        await asyncio.sleep(1.0)
        progress(f"fan-out: {plan.fanout_rounds} pushes with {total:,} live connections")
        many = await _rounds(seeder, board, task, connections, plan.fanout_rounds)
    finally:
        await asyncio.gather(*(c.close() for c in connections))
        await seeder.close()
    for pct in (50, 99):
        result.add(
            Figure(
                f"push to poke at the last of {total:,}, p{pct}",
                "ms",
                percentile(many, pct),
                baseline=percentile(single, pct),
                baseline_label="the same with 1 connection",
                target=Target("<=", TARGET_P99_MS) if pct == 99 else None,
            )
        )
    return result


class Countdown:
    """Set ``done`` once ``hit`` was called ``count`` times."""

    def __init__(self, count: int) -> None:
        self.remaining = count
        self.done = asyncio.Event()

    def hit(self) -> None:
        self.remaining -= 1
        if self.remaining <= 0:
            self.done.set()


async def _rounds(
    seeder: Seeder, board: str, task: str, connections: list[LiveConnection], rounds: int
) -> list[float]:
    """For each round: push one edit, return ms until every connection had its poke."""
    latencies = []
    for round_ in range(rounds):
        await asyncio.sleep(random.uniform(*ROUND_GAP_S))
        everyone = Countdown(len(connections))
        for connection in connections:
            connection.arm(everyone.hit)
        started = time.perf_counter()
        await seeder.edit(board, task, title=f"Round {round_}")
        try:
            await asyncio.wait_for(everyone.done.wait(), timeout=30)
        except TimeoutError as exc:
            raise BenchError(
                f"round {round_}: {everyone.remaining} of {len(connections)} connections "
                "got no poke"
            ) from exc
        last = max(c.poked_at or 0.0 for c in connections)
        latencies.append((last - started) * 1000)
    return latencies


async def _cursor(url: str, token: str) -> str:
    """The user's pull cursor after a whole pull, as a device has it when it goes live."""
    cursor: str | None = None
    async with httpx.AsyncClient(
        base_url=url, timeout=60, headers={"Authorization": f"Bearer {token}"}
    ) as http:
        while True:
            params = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
            reply = await http.get("/v1/sync/pull", params=params)
            if reply.status_code != 200:
                raise BenchError(f"fan-out pull: HTTP {reply.status_code} {reply.text[:200]}")
            page = reply.json()
            cursor = page["cursor"]
            if not page["has_more"]:
                return str(cursor)
