"""Scenario 5, fan-out: many live connections (``/v1/sync/live?since=``, as devices connect
by default) to a shared board, spread over users at no more than the default live cap of
20 each; a push to it; the time until the last connection has its page of changes (or a
poke). Beside it, the same push with a single live connection, measured in the same run."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import sys
import time
from urllib.parse import urlsplit

import httpx
import msgspec

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


LIVE_CAP = 20
"""The default live connections per user (``make run``): connections spread over users."""
PROCESSES_PER_1000 = 4
"""Client processes reading the streams (``fanout_child.py``), per thousand connections."""


async def run(ws: Workspace, plan: Plan) -> ScenarioResult:
    total = plan.fanout_connections
    more = max(plan.fanout_more_connections, total)
    users = max(plan.fanout_users, math.ceil(more / LIVE_CAP))
    result = ScenarioResult(
        NAME,
        TITLE,
        params={
            "connections": total,
            "more_connections": more,
            "users": users,
            "rounds": plan.fanout_rounds,
            "client_processes_per_1000": PROCESSES_PER_1000,
        },
    )
    limit = raise_open_files(more + 1024)
    if limit < more + 64:
        raise BenchError(f"open-files limit {limit} is too low for {more} connections")
    owner = unique_name("fan")
    members = [unique_name("fan") for _ in range(users - 1)]
    tokens = [await ws.session(owner)] + [await ws.session(member) for member in members]
    seeder = Seeder(ws.url, tokens[0])
    single: LiveConnection | None = None
    clients: list[_Client] = []
    many: dict[int, list[float]] = {}
    try:
        board = await seeder.board("Fan-out")
        if members:
            await seeder.share(board, members)
        (task,) = await seeder.tasks(board, 1)
        await ws.wait_projected()
        where = urlsplit(ws.url)
        host, port = where.hostname or "127.0.0.1", int(where.port or 80)
        # As devices connect by default: each with its user's cursor, so every push reaches
        # every connection as a page of changes (the BFF builds one per user and cursor).
        cursors = [await _cursor(ws.url, token) for token in tokens]
        single = LiveConnection(host, port, tokens[0], cursors[0])
        await single.open()
        await asyncio.sleep(0.5)  # the stream reads the user's boards once connected
        progress(f"fan-out: {plan.fanout_rounds} pushes with 1 live connection")
        baseline = await _rounds_here(seeder, board, task, single, plan.fanout_rounds)
        # The first ``total`` over the first users, LIVE_CAP each; the rest over the others.
        first_users = math.ceil(total / LIVE_CAP)
        shares = [
            [(tokens[i % first_users], cursors[i % first_users]) for i in range(total)],
            [
                (
                    tokens[first_users + i % (users - first_users)],
                    cursors[first_users + i % (users - first_users)],
                )
                for i in range(more - total)
            ]
            if more > total
            else [],
        ]
        opened = 0
        for share in shares:
            if not share:
                continue
            processes = max(1, math.ceil(len(share) * PROCESSES_PER_1000 / 1000))
            progress(f"fan-out: opening {len(share):,} live connections in {processes} processes")
            new = [_Client(share[k::processes]) for k in range(processes)]
            clients += new
            await asyncio.gather(*(c.start(ws, host, port) for c in new))
            opened += len(share)
            await asyncio.sleep(1.0)
            progress(f"fan-out: {plan.fanout_rounds} pushes with {opened:,} live connections")
            many[opened] = await _rounds(seeder, board, task, clients, plan.fanout_rounds)
    finally:
        await asyncio.gather(*(c.stop() for c in clients))
        if single is not None:
            await single.close()
        await seeder.close()
    for pct in (50, 99):
        result.add(
            Figure(
                f"push to poke at the last of {total:,}, p{pct}",
                "ms",
                percentile(many[total], pct),
                baseline=percentile(baseline, pct),
                baseline_label="the same with 1 connection",
                target=Target("<=", TARGET_P99_MS) if pct == 99 else None,
            )
        )
    if more > total:
        for pct in (50, 99):
            result.add(
                Figure(
                    f"push to poke at the last of {more:,}, p{pct}",
                    "ms",
                    percentile(many[more], pct),
                    baseline=percentile(baseline, pct),
                    baseline_label="the same with 1 connection",
                )
            )
    return result


class _Client:
    """A ``fanout_child`` process and its share of the connections."""

    def __init__(self, connections: list[tuple[str, str]]) -> None:
        self.connections = connections
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, ws: Workspace, host: str, port: int) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "outpost.bench.fanout_child",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        setup = {"host": host, "port": port, "connections": self.connections}
        await self._send(msgspec.json.encode(setup).decode())
        await self._expect("ready", timeout_s=120)

    async def arm(self) -> None:
        await self._send("arm")
        await self._expect("armed", timeout_s=30)

    async def last_poke(self) -> float:
        """When the last of its connections had its page (``perf_counter``, one clock for
        every process)."""
        answer = await self._line(timeout_s=60)
        if not answer.startswith("done "):
            raise BenchError(f"fan-out client: {answer or 'exited'}")
        return float(answer.split()[1])

    async def stop(self) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(Exception):
            await self._send("close")
            await asyncio.wait_for(process.wait(), timeout=30)
        if process.returncode is None:
            process.kill()
            await process.wait()

    async def _send(self, line: str) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()

    async def _line(self, timeout_s: float) -> str:
        assert self.process is not None and self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout_s)
        return line.decode().strip()

    async def _expect(self, word: str, timeout_s: float) -> None:
        answer = await self._line(timeout_s)
        if answer != word:
            raise BenchError(f"fan-out client: expected {word!r}, got {answer or 'its exit'!r}")


async def _rounds(
    seeder: Seeder, board: str, task: str, clients: list[_Client], rounds: int
) -> list[float]:
    """For each round: push one edit, return ms until every connection had its page."""
    latencies = []
    for round_ in range(rounds):
        await asyncio.sleep(random.uniform(*ROUND_GAP_S))
        await asyncio.gather(*(c.arm() for c in clients))
        started = time.perf_counter()
        await seeder.edit(board, task, title=f"Round {round_}")
        last = max(await asyncio.gather(*(c.last_poke() for c in clients)))
        latencies.append((last - started) * 1000)
    return latencies


async def _rounds_here(
    seeder: Seeder, board: str, task: str, connection: LiveConnection, rounds: int
) -> list[float]:
    """The same with one connection read in this process."""
    latencies = []
    for round_ in range(rounds):
        await asyncio.sleep(random.uniform(*ROUND_GAP_S))
        poked = asyncio.Event()
        connection.arm(poked.set)
        started = time.perf_counter()
        await seeder.edit(board, task, title=f"Round {round_}")
        try:
            await asyncio.wait_for(poked.wait(), timeout=30)
        except TimeoutError as exc:
            raise BenchError(f"round {round_}: the connection got no page") from exc
        latencies.append(((connection.poked_at or 0.0) - started) * 1000)
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
