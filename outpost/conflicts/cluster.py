"""``outpost conflicts --cluster``: the scenarios on ``outpost cluster``'s topology.

``ClusterBackend`` brings a cluster up in the run's folder (three JetStream nodes, PostgreSQL,
``--bffs`` BFF processes behind the round-robin front that the devices use, each consumer in
its own process with a standby), and injects the faults only a cluster has. The cluster's
supervisor restarts whatever is killed, on the same ports and store; each fault waits until
its part is back and proves that it did what it aimed at:

- ``stream_leader_kill``: the node that stream info names as ``OUTPOST_EVENTS``' leader is
  SIGKILLed; proof: it comes back and the stream has a leader again.
- ``bff_kill``: a BFF process is SIGKILLed (the front sends its devices' next connections to
  another); proof: it comes back and answers.
- ``consumer_kill``: the process holding the projector's lease (or another component's, in
  turn) is SIGKILLed while its standby waits; proof: another process holds the lease (the
  standby, or the killed one restarted, whichever asked first).
- ``postgres_restart``: PostgreSQL's process group is SIGKILLed; proof: it is back.

A proof that does not come within its time is an invariant break of the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import nats
from nats.js.client import JetStreamContext

from backend.components import NAMES
from backend.nats.streams import EVENTS_STREAM
from outpost.cluster import Spec, State, down, read_state, up
from outpost.cluster.state import alive
from outpost.cluster.status import lease_holders, stream_leader
from outpost.conflicts.orchestrator import EVENT_WRITERS
from outpost.conflicts.reminders import REMINDER_LEAD_S

PROOF_TIMEOUT_S = 60.0
CONSUMER_ORDER = NAMES
"""The lease holders the consumer fault kills, in turn: every component."""


class ClusterBackend:
    """The conflict tool's backend on a local cluster (see the module's docstring)."""

    own = True
    reminder_lead_s: float | None = REMINDER_LEAD_S
    """The orchestrator runs apart like every consumer, on the tool's lead (``BACKEND_ENV``)."""

    def __init__(
        self, root: Path, env: dict[str, str], *, bffs: int = 2, standbys: int = 1
    ) -> None:
        self.folder = root / "cluster"
        self.spec = Spec(bffs=bffs, standbys=standbys, env=dict(env))
        self.state: State | None = None
        self._bff_turn = itertools.count()
        self._consumer_turn = itertools.count()

    @property
    def url(self) -> str:
        state = self._state()
        assert state.front_url is not None
        return state.front_url

    def _state(self) -> State:
        if self.state is None:
            self.state = read_state(self.folder)
        return self.state

    async def start(self) -> None:
        # From this (the main) thread, tied to it: a tool killed outright takes its cluster
        # along. Nothing else runs while the cluster starts.
        self.state = up(self.folder, self.spec, tied=True)

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(down, self.folder)

    def remove_outside_data(self) -> None:
        """As root, PostgreSQL's data lies outside the run's folder (the server's user could
        not enter it): remove that folder too, once the cluster is down."""
        marker = self.folder / "postgres-data-dir"
        if marker.exists():
            shutil.rmtree(Path(marker.read_text().strip()).parent, ignore_errors=True)

    # -- faults --------------------------------------------------------------------------------

    async def inject(self, kind: str) -> tuple[str | None, str]:
        """Inject one cluster fault; (a broken invariant or None, what happened)."""
        if kind == "stream_leader_kill":
            return await self._kill_leader()
        if kind == "bff_kill":
            bffs = self._state().of_kind("bff")
            part = bffs[next(self._bff_turn) % len(bffs)]
            return await self._kill_and_wait(part.name)
        if kind == "consumer_kill":
            return await self._kill_lease_holder()
        if kind == "postgres_restart":
            return await self._kill_and_wait("postgres", group=True)
        raise ValueError(f"not a cluster fault: {kind}")

    async def _kill_and_wait(self, name: str, *, group: bool = False) -> tuple[str | None, str]:
        state = read_state(self.folder)
        old = state.part(name).pid
        if old is None or not alive(old):
            return f"{name} was not running when its fault came", ""
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(old, signal.SIGKILL)  # the postmaster leads its server processes
            else:
                os.kill(old, signal.SIGKILL)
        back = await self._wait(lambda s: _back(s, name, old))
        if back is None:
            return f"{name} (pid {old}) did not come back within {PROOF_TIMEOUT_S:.0f}s", ""
        return None, f"{name} pid {old} killed, back as pid {back.part(name).pid}"

    async def _kill_leader(self) -> tuple[str | None, str]:
        state = read_state(self.folder)
        leader = await stream_leader(state)
        nodes = [p for p in state.of_kind("nats") if p.extra.get("server_name") == leader]
        if not nodes:
            return "the event stream had no leader when its fault came", ""
        problem, done = await self._kill_and_wait(nodes[0].name)
        if problem:
            return problem, done
        deadline = time.monotonic() + PROOF_TIMEOUT_S
        while (now := await stream_leader(read_state(self.folder))) is None:
            if time.monotonic() > deadline:
                return f"the event stream had no leader {PROOF_TIMEOUT_S:.0f}s after {leader}", ""
            await asyncio.sleep(0.2)
        return None, f"stream leader {leader} ({done}); leader now {now}"

    async def _kill_lease_holder(self) -> tuple[str | None, str]:
        component = CONSUMER_ORDER[next(self._consumer_turn) % len(CONSUMER_ORDER)]
        state = read_state(self.folder)
        holder = (await lease_holders(state, [component])).get(component)
        if holder is None:
            return f"no process held the {component} lease when its fault came", ""
        standbys = [
            p.pid
            for p in state.of_kind("consumer")
            if p.extra.get("component") == component and p.pid != holder and alive(p.pid)
        ]
        if not standbys:
            return f"no {component} standby was waiting when its fault came", ""
        with contextlib.suppress(ProcessLookupError):
            os.kill(holder, signal.SIGKILL)
        deadline = time.monotonic() + PROOF_TIMEOUT_S
        while True:
            now = (await lease_holders(read_state(self.folder), [component])).get(component)
            if now is not None and now in standbys:
                return (
                    None,
                    f"{component} lease holder pid {holder} killed; standby {now} took over",
                )
            if time.monotonic() > deadline:
                return (
                    f"the {component} standby did not take the lease within "
                    f"{PROOF_TIMEOUT_S:.0f}s of its holder's kill (holder now {now})"
                ), ""
            await asyncio.sleep(0.2)

    async def _wait(self, ready: Any) -> State | None:
        deadline = time.monotonic() + PROOF_TIMEOUT_S
        while time.monotonic() < deadline:
            state = read_state(self.folder)
            if ready(state):
                return state
            await asyncio.sleep(0.1)
        return None

    # -- what the oracle reads -----------------------------------------------------------------

    async def ledger(self) -> list[tuple[str, int, int]] | None:
        """(event id, seq, times applied) from the projector's database."""
        from outpost.conflicts.orchestrator import ConflictToolError

        state = self._state()
        assert state.db_url is not None
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "outpost", "backend", "ledger", "--json"),
            *("--data-dir", str(self.folder / "ledger"), "--db-url", state.db_url),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise ConflictToolError(f"outpost backend ledger failed: {err.decode()[-2000:]}")
        return [(r["id"], int(r["seq"]), int(r["times"])) for r in json.loads(out)]

    async def backlog(self) -> int | None:
        """The projector's lag (``/v1/health``) plus the events not yet acknowledged by each
        consumer that writes events after it consumes (``EVENT_WRITERS``: the saga's
        workload, the orchestrator, the gateway). Here each runs in a process of its own and
        may be behind after a fault, and a compensation or a recurring task it has yet to
        write would land after the heal."""
        try:
            async with httpx.AsyncClient(base_url=self.url, timeout=10) as http:
                reply = await http.get("/v1/health")
            lag = int(reply.json()["projector_lag"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return None
        # Not known to be caught up (NATS unreachable, a durable being made again): not 0.
        try:
            nc = await nats.connect(self._state().nats_urls, connect_timeout=5)
        except Exception:
            return lag + 1
        try:
            return lag + await writers_behind(nc.jetstream())
        except Exception:
            return lag + 1
        finally:
            with contextlib.suppress(Exception):
                await nc.close()


async def writers_behind(js: JetStreamContext) -> int:
    """The events that the consumers writing events (``EVENT_WRITERS``) have yet to
    acknowledge: waiting for them, or delivered and not acknowledged. Raises while one has
    no durable (its process is starting, or making it again after a fault)."""
    behind = 0
    for name in sorted(EVENT_WRITERS):
        info = await js.consumer_info(EVENTS_STREAM, name)
        behind += int(info.num_pending or 0) + int(info.num_ack_pending or 0)
    return behind


def _back(state: State, name: str, old: int) -> bool:
    part = state.part(name)
    return part.pid is not None and part.pid != old and part.ready and alive(part.pid)
