"""``outpost bench --cluster``: ingest and propagation through ``outpost cluster``'s topology,
beside the single-process figures of the same run, and how ingest grows with the BFFs.

``ClusterWorkspace`` is the bench's workspace on a local cluster: three JetStream nodes
(streams at three replicas), PostgreSQL, the consumers apart, N BFFs behind the round-robin
front that every device connects to. The ingest and propagation scenarios run on it as they
run on one process. Then ``scaling``: for 1, 2 and 4 BFFs, a cluster of its own, and several
users' devices pushing their backlogs at once through the front (each device's connection
lands on a BFF in turn): events per second from the first push until the last is stored.
Whether more BFFs give more comes down to the cores: on a machine with fewer cores than
BFF processes, nodes and consumers together, they share them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from dataclasses import dataclass
from typing import Self

from client.errors import ServerUnreachable
from outpost.bench import shared
from outpost.bench.harness import BENCH_ENV, BenchError, Timer, Workspace, progress, unique_name
from outpost.bench.plan import Plan
from outpost.bench.report import Figure, ScenarioResult
from outpost.cluster import ClusterError, Spec, State, down, up

SCALING_NAME = "ingest_scaling"
SCALING_TITLE = "2c. ingest through 1, 2 and 4 BFFs"
BFF_COUNTS = (1, 2, 4)


@dataclass
class _NatsUrl:
    url: str
    pid: int | None = None
    """The cluster's three nats-servers are the supervisor's: the CPU per action is not
    split among them (``Workspace.cpu_seconds`` reads the devices' own)."""


CLUSTER_LIMITS = {"OUTPOST_SIGNUP_LIMIT": "1000000"}
"""The cluster's front is a TCP balancer: every BFF sees each client come from the front's
address, so the bench's users, who sign up from addresses of their own, would all count as
one; the sign-up limit is raised there, and the report says so."""


class ClusterWorkspace(Workspace):
    """The bench's workspace on a local cluster of ``bffs`` BFF processes."""

    def __init__(self, bffs: int) -> None:
        super().__init__()
        self.bffs = bffs
        self.state: State | None = None

    async def __aenter__(self) -> Self:
        progress(f"starting a cluster: 3 NATS nodes, PostgreSQL, {self.bffs} BFF(s)")
        try:
            spec = Spec(bffs=self.bffs, standbys=0, env={**BENCH_ENV, **CLUSTER_LIMITS})
            # From the main thread and tied to it: a bench killed outright takes it along.
            self.state = up(self.root / "cluster", spec, tied=True)
        except ClusterError as exc:
            await self.close()
            raise BenchError(str(exc)) from exc
        self.nats = _NatsUrl(self.state.nats_urls[0])  # type: ignore[assignment]
        return self

    @property
    def url(self) -> str:
        if self.state is None or self.state.front_url is None:
            raise BenchError("the cluster is not running")
        return self.state.front_url

    async def close(self) -> None:
        for client in self._clients:
            await client.aclose()
        self._clients.clear()
        for device in self._devices:
            device.close()
        self._devices.clear()
        if self.state is not None:
            await asyncio.to_thread(down, self.root / "cluster")
            marker = self.root / "cluster" / "postgres-data-dir"
            if marker.exists():  # as root, PostgreSQL's data lies in a folder of its own
                shutil.rmtree(os.path.dirname(marker.read_text().strip()), ignore_errors=True)
        shutil.rmtree(self.root, ignore_errors=True)


async def scaling(plan: Plan) -> ScenarioResult:
    """Several users' devices push their backlogs at once through 1, 2 and 4 BFFs."""
    devices, each = (4, 500) if plan.quick else (8, 2500)
    result = ScenarioResult(
        SCALING_NAME,
        SCALING_TITLE,
        params={"devices": devices, "events_per_device": each, "cores": os.cpu_count()},
    )
    rates: dict[int, float] = {}
    for bffs in BFF_COUNTS:
        async with ClusterWorkspace(bffs) as ws:
            pushers = []
            for k in range(devices):
                pusher, _, tasks = await shared.one_device(ws, unique_name(f"scale{bffs}x"), str(k))
                for i in range(each):
                    pusher.device.set_task(tasks[i % len(tasks)], title=f"Scale {i}")
                pushers.append(pusher)
            progress(f"scaling: {devices} devices push {each:,} events each through {bffs} BFF(s)")
            timer = Timer()
            await asyncio.gather(*(_push_all(p) for p in pushers))
            seconds = timer.seconds
            rates[bffs] = devices * each / seconds
            progress(f"scaling: {rates[bffs]:,.0f} events/s stored through {bffs} BFF(s)")
        result.add(
            Figure(
                f"events/s stored (R3), {devices} devices at once, {bffs} BFF(s)",
                "ev/s",
                rates[bffs],
                baseline=rates[1],
                baseline_label="the same through one BFF",
            )
        )
    return result


async def _push_all(pusher: shared.RealDevice, timeout_s: float = 300) -> None:
    """Sync until the device has nothing pending: a push refused for a moment (503 while
    the stream is busy, a kept-alive connection that the BFF closed as it was reused through
    the front) is sent again, as a device does."""
    deadline = time.monotonic() + timeout_s
    while pusher.device.pending_count():
        if time.monotonic() > deadline:
            left = pusher.device.pending_count()
            raise BenchError(f"{left} events were still pending after {timeout_s:.0f} s")
        try:
            await pusher.engine.sync()
        except ServerUnreachable:
            await asyncio.sleep(0.05)
