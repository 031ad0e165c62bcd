"""Scenario 2, end-to-end ingest: device A pushes a backlog of edits; the clock stops when
device B, listening on its live stream (pull pages of changes, and a pull after a poke),
shows every one of them. Beside it, raw nats-py publishing the same bytes to the same
nats-server with a per-message acknowledgement, one at a time and pipelined."""

from __future__ import annotations

import asyncio
import contextlib

from client.sync.runner import LiveSync
from outpost.bench import shared
from outpost.bench.harness import (
    Timer,
    Workspace,
    cpu_spent,
    progress,
    unique_name,
    wait_for,
)
from outpost.bench.jetstream import raw_jetstream
from outpost.bench.plan import Plan
from outpost.bench.report import Figure, ScenarioResult, Target

NAME = "ingest"
TITLE = "2. end-to-end ingest"
TARGET_EVENTS_PER_S = 5000.0
"""With the peer (``--peer``): also at least twice its documents per second. The old second
target, 40% of the raw atomic-batch publish rate, is retired (issue 15: the peer is the
bar); that rate stays in the table as a baseline."""


async def run(ws: Workspace, plan: Plan) -> ScenarioResult:
    count = plan.ingest_events
    result = ScenarioResult(NAME, TITLE, params={"events": count, "tasks": shared.TASKS})
    pair = await shared.board_pair(ws, unique_name("ingest"))
    a, b = pair.a, pair.b
    expected: dict[str, str] = {}
    for i in range(count):
        task = pair.tasks[i % len(pair.tasks)]
        expected[task] = f"Ingest {i}"
        a.device.set_task(task, title=expected[task])
    bodies = shared.pending_bodies(a.device)
    progress(f"ingest: {len(bodies):,} events pending on device A; pushing")

    def visible_on_b() -> bool:
        titles = {t["id"]: t["title"] for t in b.device.tasks(pair.board)}
        return all(titles.get(task) == title for task, title in expected.items())

    async def b_shows_them() -> float:
        await wait_for(visible_on_b, timeout_s=300, what="device B to see A's events")
        return timer.seconds

    # B listens as a device does by default, and as the peer's B does (a live
    # replication): its live stream brings the pages of changes, and a poke sends it to
    # pull when a page would be too big. Its view is read locally until it shows them all.
    live_b = LiveSync(b.device, b.engine.http, periodic_s=30)
    listening = asyncio.create_task(live_b.run())
    try:
        await wait_for(
            lambda: live_b.cycles >= 1 and live_b.stream_brings_changes,
            timeout_s=30,
            what="B's first sync and its live stream",
        )
        cpu_before = ws.cpu_seconds()
        timer = Timer()
        # The clock stops when B shows every edit, as the peer's stops when B holds every
        # document; A's sync goes on to pull its own events back (settling its outbox) and
        # is awaited after, as the peer's push replication is.
        _, seconds = await asyncio.gather(a.engine.sync(), b_shows_them())
    finally:
        live_b.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await listening
    rate = count / seconds
    # Where the CPU goes, until every consumer has taken the events in too (the lake, the
    # saga's check, the orchestrator and the gateway each read all of them): per event.
    await ws.wait_quiet()
    cpu_us = {
        process: round(spent / count * 1e6)
        for process, spent in cpu_spent(cpu_before, ws.cpu_seconds()).items()
    }
    result.params["cpu_us_per_event"] = cpu_us
    said = ", ".join(f"{process} {us}" for process, us in cpu_us.items())
    progress(f"ingest: {rate:,.0f} events/s end to end (CPU per event, µs: {said})")
    progress("ingest: raw JetStream baselines")
    async with raw_jetstream(ws.nats.url) as raw:
        one_by_one = len(bodies) / await raw.publish_one_at_a_time(bodies)
        pipelined = len(bodies) / await raw.publish_pipelined(bodies)
        atomic_s = await raw.publish_atomic(bodies)
    target = Target(">=", TARGET_EVENTS_PER_S)
    result.add(
        Figure(
            "events/s, push to another device's pull",
            "ev/s",
            rate,
            baseline=one_by_one,
            baseline_label="raw JetStream publish, each ack awaited in turn",
            target=target,
        )
    )
    result.add(
        Figure(
            "same, against pipelined publish",
            "ev/s",
            rate,
            baseline=pipelined,
            baseline_label="raw JetStream publish, 500 in flight, every ack awaited",
            target=target,
        )
    )
    if atomic_s is not None:
        atomic = len(bodies) / atomic_s
        result.add(
            Figure(
                "same, against atomic batch publish",
                "ev/s",
                rate,
                baseline=atomic,
                baseline_label="raw JetStream atomic batches of 500, one ack each",
            )
        )
    result.params["seconds_end_to_end"] = seconds
    return result
