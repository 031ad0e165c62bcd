"""Scenario 3, propagation: device A makes an action; how long until device B's local view
shows it, both devices long-lived with live pokes (``LiveSync``), A acting at a steady
rate. Beside it, the bare stream hop: raw nats-py publishing to JetStream at the same rate
and a subscriber of the stream receiving each message."""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
import msgspec

from client.device import Device
from client.sync.engine import Progress
from client.sync.runner import LiveSync
from outpost.bench import budget, shared
from outpost.bench.budget import Action, ClientStamps
from outpost.bench.harness import Workspace, cpu_spent, percentile, progress, unique_name, wait_for
from outpost.bench.jetstream import raw_jetstream
from outpost.bench.plan import Plan
from outpost.bench.report import Figure, ScenarioResult, Target

NAME = "propagation"
TITLE = "3. propagation"
TARGETS_MS = {50: 20.0, 99: 50.0}
WARM_UP = 10
PREFIX = "Prop "


async def run(ws: Workspace, plan: Plan) -> ScenarioResult:
    count, rate = plan.propagation_actions, plan.propagation_rate
    result = ScenarioResult(NAME, TITLE, params={"actions": count, "per_second": rate})
    pair = await shared.board_pair(ws, unique_name("prop"))
    seen: dict[int, float] = {}
    shown_ns: dict[int, int] = {}
    stamps = ClientStamps()

    def look(_: Progress) -> None:
        # Called by B's engine at every step of a cycle: after each pulled page, B's view
        # already holds what the page brought.
        now, now_ns = time.perf_counter(), time.monotonic_ns()
        for task in pair.b.device.tasks(pair.board):
            title: str = task["title"]
            if title.startswith(PREFIX):
                i = int(title[len(PREFIX) :])
                seen.setdefault(i, now)
                shown_ns.setdefault(i, now_ns)

    _time_requests(pair.a.engine.http, pair.b.engine.http, stamps)
    live_a = LiveSync(pair.a.device, pair.a.engine.http, periodic_s=30)
    live_b = LiveSync(
        pair.b.device,
        pair.b.engine.http,
        on_progress=look,
        on_poke=lambda event: stamps.arrived(event, time.monotonic_ns()),
        periodic_s=30,
    )
    runners = [asyncio.create_task(live.run()) for live in (live_a, live_b)]
    made: dict[int, float] = {}
    written: dict[int, tuple[int, int, str]] = {}
    sample = b"{}"
    try:
        progress(f"propagation: {WARM_UP + count} actions at {rate:.0f}/s")
        cpu_before = ws.cpu_seconds()
        started = time.perf_counter()
        for i in range(WARM_UP + count):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            made[i] = time.perf_counter()
            began_ns = time.monotonic_ns()
            pair.a.device.set_task(pair.tasks[i % len(pair.tasks)], title=f"{PREFIX}{i}")
            written_ns = time.monotonic_ns()
            live_a.wake()  # what the app does after every action
            written[i] = (began_ns, written_ns, _last_event_id(pair.a.device))
            if i == 0:
                sample = shared.pending_bodies(pair.a.device)[-1]
        last = WARM_UP + count - 1
        await wait_for(lambda: last in seen, timeout_s=60, what="device B to show A's actions")
        cpu_after = ws.cpu_seconds()
    finally:
        for live in (live_a, live_b):
            live.stop()
        for runner in runners:
            with contextlib.suppress(asyncio.CancelledError):
                await runner
    latencies = _latencies(made, seen, len(pair.tasks))[WARM_UP:]
    actions = [
        Action(event_id, began, wrote, shown_ns[i])
        for i, (began, wrote, event_id) in written.items()
        if i >= WARM_UP and i in shown_ns
    ]
    result.budget = budget.measure(actions, stamps, ws.hop_trace)
    result.budget.cpu_ms = {
        process: [spent * 1000 / len(made)]
        for process, spent in cpu_spent(cpu_before, cpu_after).items()
    }
    progress("propagation: raw JetStream publish-to-delivery at the same rate")
    async with raw_jetstream(ws.nats.url) as raw:
        raw_latencies = await raw.delivery_latencies(sample, count, rate)
    for pct, target in TARGETS_MS.items():
        result.add(
            Figure(
                f"A's action to B's view, p{pct}",
                "ms",
                percentile(latencies, pct),
                baseline=percentile(raw_latencies, pct),
                baseline_label="raw JetStream publish to delivery",
                target=Target("<=", target),
            )
        )
    return result


def _latencies(made: dict[int, float], seen: dict[int, float], cycle: int) -> list[float]:
    """ms from each action to the first time B's view showed it, or showed a later edit of
    the same task (which can replace it before B looked)."""
    latencies = []
    for i in sorted(made):
        shown = [seen[j] for j in range(i, max(made) + 1, cycle) if j in seen]
        latencies.append((min(shown) - made[i]) * 1000)
    return latencies


def _last_event_id(device: Device) -> str:
    with device.store.read() as conn:
        row = conn.execute("SELECT id FROM outbox ORDER BY position DESC LIMIT 1").fetchone()
    return str(row[0]) if row else ""


def _time_requests(a: httpx.AsyncClient, b: httpx.AsyncClient, stamps: ClientStamps) -> None:
    """httpx hooks: when A's pushes leave (with the ids they carry), when B's pulls leave and
    when their answers arrive."""

    async def a_request(request: httpx.Request) -> None:
        if request.url.path == "/v1/sync/push":
            now = time.monotonic_ns()
            for event in msgspec.json.decode(request.content)["events"]:
                stamps.pushes_sent.setdefault(event["id"], now)

    async def b_request(request: httpx.Request) -> None:
        if request.url.path == "/v1/sync/pull":
            stamps.pulls_sent.append(time.monotonic_ns())

    async def b_response(response: httpx.Response) -> None:
        if response.request.url.path == "/v1/sync/pull":
            stamps.pulls_answered.append(time.monotonic_ns())

    a.event_hooks["request"].append(a_request)
    b.event_hooks["request"].append(b_request)
    b.event_hooks["response"].append(b_response)
