"""Scenario 6, drain: a device that worked offline comes back with a backlog of pending
events; how long until every one is accepted and reflected (its outbox empty after a pull
whose watermark covers them). Beside it, raw nats-py publishing the same bytes to the same
nats-server, 500 in flight like the push batches, every message acknowledged."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from outpost.bench import shared
from outpost.bench.harness import (
    BenchError,
    Timer,
    Workspace,
    cpu_spent,
    progress,
    unique_name,
)
from outpost.bench.jetstream import raw_jetstream
from outpost.bench.plan import Plan
from outpost.bench.report import Figure, ScenarioResult, Target
from outpost.bench.shared import RealDevice

NAME = "drain"
TITLE = "6. drain"
TARGET_SECONDS = 2.0


class PushClock(httpx.AsyncBaseTransport):
    """Real HTTP that notes when the last push answer came back (all accepted)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.last_push_at = 0.0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path == "/v1/sync/push":
            await response.aread()
            self.last_push_at = time.perf_counter()
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _check_every_event_landed(
    ws: Workspace, real: RealDevice, written: dict[str, dict[str, Any]]
) -> None:
    """An empty outbox is also what a device shows after every event was rejected: the
    figure counts only if none was, and another device of the user, bootstrapped fresh,
    shows on every task the last value the bench wrote to each field (what was written,
    not what the drained device shows: that one could agree with a server that lost it)."""
    rejected = real.device.rejected()
    if rejected:
        raise BenchError(f"drain: {len(rejected)} events rejected, e.g. {rejected[0]}")
    username = real.device.username
    assert username is not None
    other, engine = await ws.device(unique_name("drain-check"), username)
    await engine.sync()
    for task, fields in written.items():
        theirs = other.entity("task", task)
        shown = {name: (theirs or {}).get("values", {}).get(name) for name in fields}
        if shown != fields:
            raise BenchError(f"drain: task {task} shows {shown} on another device, not {fields}")


async def run(ws: Workspace, plan: Plan) -> ScenarioResult:
    count = plan.drain_events
    result = ScenarioResult(NAME, TITLE, params={"events": count, "tasks": shared.TASKS})
    real, _, tasks = await shared.one_device(ws, unique_name("drain"))
    device, engine = real.device, real.engine
    written: dict[str, dict[str, Any]] = {}
    for i in range(count):
        edits: tuple[dict[str, Any], ...] = (
            {"title": f"Offline {i}"},
            {"priority": i % 5},
            {"status": ("todo", "doing", "done")[i % 3]},
        )
        edit = edits[i % len(edits)]
        device.set_task(tasks[i % len(tasks)], **edit)
        written.setdefault(tasks[i % len(tasks)], {}).update(edit)
    bodies = shared.pending_bodies(device)
    progress(f"drain: {len(bodies):,} events pending; reconnecting")
    clock = PushClock()
    engine.http = ws.connect(clock)  # the same device and session, over the clock
    cpu_before = ws.cpu_seconds()
    timer = Timer()
    deadline = time.monotonic() + 300
    while True:
        await engine.sync()
        if device.pending_count() == 0:
            break
        if time.monotonic() > deadline:
            raise BenchError(f"{device.pending_count()} events still pending after 300 s")
        await asyncio.sleep(0.005)
    seconds = timer.seconds
    cpu_after = ws.cpu_seconds()
    result.params["cpu_seconds"] = {
        process: round(spent, 2) for process, spent in cpu_spent(cpu_before, cpu_after).items()
    }
    accepted = clock.last_push_at - timer.started
    await _check_every_event_landed(ws, real, written)
    progress(f"drain: {seconds:.2f} s; raw JetStream baseline")
    async with raw_jetstream(ws.nats.url) as raw:
        raw_seconds = await raw.publish_pipelined(bodies)
    result.add(
        Figure(
            f"seconds until {count:,} accepted and reflected",
            "s",
            seconds,
            baseline=raw_seconds,
            baseline_label="raw JetStream publish, 500 in flight, every ack awaited",
            target=Target("<=", TARGET_SECONDS),
        )
    )
    result.add(
        Figure(
            f"seconds until {count:,} accepted",
            "s",
            accepted,
            baseline=raw_seconds,
            baseline_label="raw JetStream publish, 500 in flight, every ack awaited",
        )
    )
    return result
