"""The parts every scenario runs on, started and stopped by the bench itself.

``Workspace`` owns one run: a temporary folder, a nats-server (the same supervised
``EmbeddedNats`` the backend embeds, so the raw baselines can reach the very server the
backend uses), ``outpost backend`` as a child process on SQLite files, and any other child a
scenario starts. Leaving it, by success, failure or Ctrl-C, stops every process and
removes the folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
import msgspec

from backend.config import Settings
from backend.hops import TRACE_ENV
from backend.launcher import BackendLauncher, LaunchError
from backend.nats import EmbeddedNats
from backend.processes import child_pids
from client.device import Device
from client.sync.engine import SyncEngine
from client.sync.transport import connect

PASSWORD = "bench-password"
_started = time.monotonic()
_names = itertools.count(1)


class BenchError(RuntimeError):
    """A scenario could not run: a part did not start, or a result never showed up."""


def progress(message: str) -> None:
    """A progress line on stderr: long steps say what they are doing."""
    print(f"[bench {time.monotonic() - _started:6.1f}s] {message}", file=sys.stderr, flush=True)


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile, interpolated between the closest ranks."""
    if not values:
        raise BenchError("no samples to take a percentile of")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def raise_open_files(wanted: int) -> int:
    """Raise this process's soft limit on open files (children inherit it); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def unique_name(prefix: str) -> str:
    """A username no other scenario of this run uses."""
    return f"{prefix}{next(_names)}"


async def wait_for(
    condition: Callable[[], bool | Awaitable[bool]],
    *,
    timeout_s: float,
    what: str,
    interval_s: float = 0.01,
) -> None:
    """Until ``condition()`` (sync or async) is true; raise BenchError after the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        await asyncio.sleep(interval_s)


UNKNOWN_LAG_WAIT_S = 30.0
"""How long ``Workspace.wait_quiet`` waits on consumers that cannot say how far behind they
are (their process does not answer), before it goes on."""

BENCH_ENV = {
    "OUTPOST_PASSWORD_TIME_COST": "1",  # sign-ups are not what is measured
}
"""The bench's backend runs with ``make run``'s abuse limits: each user's devices keep under
its request rate (pages and batches of hundreds of events; a 429's ``Retry-After`` is
waited out as on any device), and the users sign up from loopback addresses of their own,
``Settings.signup_limit`` to an address (``Workspace.signup_address``), as many people
would from their own machines."""
SETTINGS_DIFFER = {
    **BENCH_ENV,
    "OUTPOST_HOP_TRACE": "a file (the latency budget's marks: one write per batch and stage)",
}
"""Every setting of the bench's backend that differs from ``make run``'s defaults: the
report lists them (issue 15: a difference voids a target it bears on)."""


class Workspace:
    """One bench run's folder and processes; ``async with`` guarantees they are cleaned up."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="outpost-bench-"))
        self.nats = EmbeddedNats(self.root / "nats", stop_timeout_s=10)
        self.hop_trace = self.root / "hops.tsv"
        """The backend's hop marks (``backend/hops.py``), for the latency budget."""
        self.backend: BackendLauncher | None = None
        self._children: list[subprocess.Popen[bytes]] = []
        self._clients: list[httpx.AsyncClient] = []
        self._devices: list[Device] = []
        self._signups = itertools.count()

    async def __aenter__(self) -> Self:
        try:
            progress("starting nats-server and the backend")
            await self.nats.start(supervise=False)
            self.backend = BackendLauncher(
                self.root / "backend",
                nats_url=self.nats.url,
                env={**BENCH_ENV, TRACE_ENV: str(self.hop_trace)},
            )
            try:
                await asyncio.to_thread(self.backend.start)
            except LaunchError as exc:
                raise BenchError(str(exc)) from exc
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def url(self) -> str:
        if self.backend is None:
            raise BenchError("the backend is not running")
        return self.backend.url

    @property
    def views_file(self) -> Path:
        """The projector's views: the SQLite file the pull reads."""
        if self.backend is None or self.backend.db_url is not None:
            raise BenchError("the views are not a SQLite file of this workspace's backend")
        return self.backend.data_dir / "projector.db"

    def folder(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def spawn(self, command: list[str], **options: Any) -> subprocess.Popen[bytes]:
        """A child process this workspace kills if it is still running at the end."""
        child = subprocess.Popen(command, **options)
        self._children.append(child)
        return child

    async def device(
        self, name: str, username: str, *, signup: bool = False
    ) -> tuple[Device, SyncEngine]:
        """A real device (store, engine, HTTP transport) signed in as ``username``."""
        device = Device(self.folder(f"devices/{name}"))
        self._devices.append(device)
        address = self.signup_address() if signup else None
        engine = SyncEngine(device, self.connect(from_address=address))
        if signup:
            await engine.signup(username, PASSWORD)
        else:
            await engine.login(username, PASSWORD)
        return device, engine

    def connect(
        self,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        from_address: str | None = None,
    ) -> httpx.AsyncClient:
        """A device's HTTP client for the backend (over ``transport``: httpx's seam; or from
        the loopback address ``from_address``), closed with the workspace."""
        if from_address is not None:
            transport = httpx.AsyncHTTPTransport(local_address=from_address)
        client = connect(self.url, transport=transport)
        self._clients.append(client)
        return client

    async def session(self, username: str, *, signup: bool = True) -> str:
        """A bearer token for ``username``, through the HTTP contract."""
        path = "/v1/auth/signup" if signup else "/v1/auth/token"
        address = self.signup_address() if signup else None
        transport = None if address is None else httpx.AsyncHTTPTransport(local_address=address)
        async with httpx.AsyncClient(base_url=self.url, timeout=30, transport=transport) as http:
            reply = await http.post(path, json={"username": username, "password": PASSWORD})
        if reply.status_code not in (200, 201):
            raise BenchError(f"{path} for {username}: HTTP {reply.status_code} {reply.text}")
        token: str = reply.json()["token"]
        return token

    def signup_address(self) -> str:
        """The loopback address the next sign-up comes from: ``Settings.signup_limit``
        sign-ups to each (127.0.0.2, 127.0.0.3, ...), so the backend's default limit on
        sign-ups per client address holds for the bench as for everyone."""
        n = next(self._signups) // Settings.signup_limit
        if n > 250:
            raise BenchError("more sign-ups than the loopback addresses 127.0.0.2-252 allow")
        return f"127.0.0.{2 + n}"

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds (user + system) spent so far by the backend, its consumers' process,
        nats-server and this process, where the system tells (Linux's ``/proc``); an empty
        dict elsewhere."""
        pids = {"devices": os.getpid()}
        if self.backend is not None and self.backend.process is not None:
            pids["backend"] = self.backend.process.pid
            for child in child_pids(self.backend.process.pid):  # Settings.consumers_apart
                pids[f"consumers@{child}"] = child  # a restarted child is another process
        if self.nats.pid is not None:
            pids["nats-server"] = self.nats.pid
        spent = {}
        for name, pid in pids.items():
            seconds = process_cpu_seconds(pid)
            if seconds is not None:
                spent[name] = seconds
        return spent

    async def wait_projected(self, timeout_s: float = 300) -> None:
        """Until the projector has applied everything on the stream (the views are whole);
        BenchError after ``timeout_s``."""
        await self.wait_quiet(timeout_s, projector_only=True)

    async def wait_quiet(self, timeout_s: float = 600, *, projector_only: bool = False) -> None:
        """Until the projector and every other consumer have taken in everything on the
        stream, so that every scenario (and each of the peer's rounds) starts on a backend
        with no backlog sharing the machine with it. At the start this waits for the
        consumers' process to report (2 to 3 s); in the runs of 2026-11-30 nothing was left
        behind after a scenario (ingest's baselines give the consumers time), but a slower
        machine could leave some. Progress is shown while it lasts. ``projector_only``:
        the projector alone (the views are whole), and BenchError after ``timeout_s``."""
        began = last_shown = time.monotonic()
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as http:

            async def behind() -> dict[str, int | None]:
                health = msgspec.json.decode((await http.get("/v1/health")).content)
                lags: dict[str, int | None] = {"projector": int(health["projector_lag"])}
                for name, report in (health.get("consumers") or {}).items():
                    if projector_only or report.get("standby"):
                        continue  # not asked for, or another process consumes for it
                    lags[name] = report.get("lag_events")
                return {name: lag for name, lag in lags.items() if lag != 0}

            while waiting := await behind():
                now = time.monotonic()
                unknown = all(lag is None for lag in waiting.values())
                if now - began > (UNKNOWN_LAG_WAIT_S if unknown else timeout_s):
                    if projector_only:  # a scenario on views that are not whole means nothing
                        raise BenchError(f"the projector is still behind after {timeout_s:.0f}s")
                    progress(f"the consumers are still behind ({waiting}): going on regardless")
                    return
                if now - last_shown >= 5:
                    last_shown = now
                    said = ", ".join(
                        f"{name} {'?' if lag is None else f'{lag:,}'}"
                        for name, lag in waiting.items()
                    )
                    progress(f"waiting for the consumers to catch up (events behind: {said})")
                await asyncio.sleep(0.05 if projector_only else 0.2)
        if time.monotonic() - began >= 1:
            progress(f"the consumers caught up in {time.monotonic() - began:.1f} s")

    async def close(self) -> None:
        for client in self._clients:
            with contextlib.suppress(Exception):
                await client.aclose()
        for device in self._devices:
            with contextlib.suppress(Exception):
                device.close()
        for child in self._children:
            if child.poll() is None:
                child.kill()
                with contextlib.suppress(Exception):
                    child.wait(5)
        if self.backend is not None:
            with contextlib.suppress(LaunchError):
                await asyncio.to_thread(self.backend.stop)
        with contextlib.suppress(Exception):
            await self.nats.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far, from ``/proc/<pid>/stat``; None where
    there is no such file (not Linux, or the process is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds each process spent between two ``Workspace.cpu_seconds`` readings (a
    child process counts only if it is the same one in both: ``consumers@<pid>``)."""
    spent: dict[str, float] = {}
    for process, seconds in before.items():
        if process in after:
            name = process.partition("@")[0]
            spent[name] = spent.get(name, 0.0) + after[process] - seconds
    return spent


class Timer:
    """Seconds since it was made, by the monotonic high-resolution clock."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started
