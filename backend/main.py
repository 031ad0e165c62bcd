"""``outpost backend``: the whole backend, in two processes by default.

It starts (or connects to) NATS, makes sure the streams exist, opens each component's
database, runs the stream consumers it is asked for each through the consumer runner (the
projector here, the others in a child process of its own: ``consumers/child.py``,
``Settings.consumers_apart``), and serves the BFF with uvicorn, with header and body read
timeouts (``http_timeouts.py``). Ctrl-C or SIGTERM stops it in order: no new requests, live
streams closed, each consumer's current batch committed (the child's too), NATS drained,
the embedded nats-server stopped. That server is the only one on its store
(``backend/nats/ownership.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import functools
import logging
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import msgspec
import nats
import nats.errors
import uvicorn
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from sqlalchemy import select

from backend import runtime
from backend.bff.app import Services, create_app
from backend.bff.auth.hashing import PasswordHashing
from backend.bff.auth.services import AuthService
from backend.bff.auth.tokens import RefreshTokens, TokenSigner, load_secret
from backend.bff.health import HealthProbe, consumer_reports, stream_last_seq
from backend.bff.limits.store import LimitStore
from backend.bff.sync.live import ChangeHub
from backend.bff.sync.pull import CursorSigner, PullService
from backend.bff.sync.push import SEQS_LATER_S, PushService
from backend.components import ComponentContext, build, open_database
from backend.config import Settings
from backend.consumers.child import ApartConsumers
from backend.consumers.component import BackgroundWork
from backend.consumers.feed import SharedFetch
from backend.consumers.passed import Passed
from backend.consumers.runner import ConsumerRunner
from backend.db import Database
from backend.errors import ComponentBusy
from backend.gateway.allow import AllowList
from backend.gateway.services import GatewayService
from backend.http_timeouts import timed_h11_protocol
from backend.nats import EmbeddedNats, find_running
from backend.nats.access import StoreAccess, use_store
from backend.nats.client import connect as connect_nats
from backend.nats.publisher import JetStreamPublisher
from backend.nats.streams import ensure_streams
from backend.orchestrator.component import Orchestrator
from backend.orchestrator.services import ReminderService
from backend.orchestrator.timers import Timers
from backend.processes import exit_unless_stopped, lower_priority
from backend.projector.models import Applied
from backend.projector.projector import ensure_generation, start_over
from backend.writer import BackendWriter

log = logging.getLogger("outpost.backend")


@dataclass
class Backend:
    settings: Settings
    nc: NatsClient
    bff_db: Database
    views_db: Database
    nats_access: StoreAccess | None
    """How the embedded store is reached (None with ``--nats-url``)."""
    nats_url: str
    """The server (or the cluster's, comma-separated) the backend is connected to."""

    @property
    def embedded(self) -> EmbeddedNats | None:
        return None if self.nats_access is None else self.nats_access.embedded

    def nats_description(self) -> str:
        if self.nats_access is None:
            return f"nats {self.settings.nats_url}"
        return f"nats: {self.nats_access.describe()}"


@asynccontextmanager
async def open_backend(settings: Settings, *, share_nats: bool = False) -> AsyncIterator[Backend]:
    """NATS (embedded unless a URL is given), the streams, and both databases.

    The embedded store has one server: with ``share_nats`` a server that another process
    runs there is used, otherwise StoreInUseError names it (a leftover is stopped first).
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    async with contextlib.AsyncExitStack() as stack:
        access = None
        url = settings.nats_url
        if url is None:
            access = await stack.enter_async_context(
                use_store(settings.data_dir / "nats", share=share_nats, supervise=True)
            )
            url = access.url
        yield await stack.enter_async_context(_connected(settings, url, access))


@asynccontextmanager
async def _connected(
    settings: Settings, url: str, access: StoreAccess | None
) -> AsyncIterator[Backend]:
    nc = await connect_nats(
        nats_servers(url),
        name="outpost-backend",
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        connect_timeout=5,
        error_cb=_nats_error,
        disconnected_cb=_nats_disconnected,
        reconnected_cb=_nats_reconnected,
    )
    try:
        await ensure_streams(
            nc.jsm(),
            duplicate_window_s=settings.duplicate_window_s,
            replicas=settings.stream_replicas,
        )
        bff_db = open_database("bff", settings)
        views_db = open_database("projector", settings)
        await bff_db.migrate()
        await views_db.migrate()
        await ensure_generation(views_db)
        try:
            yield Backend(settings, nc, bff_db, views_db, access, url)
        finally:
            await bff_db.dispose()
            await views_db.dispose()
    finally:
        log.info("stopping: draining NATS")
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.drain(), timeout=5)


def nats_servers(url: str) -> list[str]:
    """The servers of ``--nats-url``: one URL, or a cluster's, comma-separated (the client
    tries them in turn, so a start finds the cluster while one node is down)."""
    return [part.strip() for part in url.split(",") if part.strip()]


def who_runs(settings: Settings) -> str:
    """Words for the process that runs the backend of ``settings``' data folder, as far as
    its embedded nats-server tells (for a command that refuses to run beside it)."""
    if settings.nats_url is None:
        running = find_running(settings.data_dir / "nats")
        if running is not None and not running.leftover and running.owner_pid is not None:
            server = f"nats-server pid {running.pid} at {running.url}" if running.pid else ""
            return f"pid {running.owner_pid} ({running.owner}; {server or 'its nats-server'})"
    return "another process (the backend?)"


async def _nats_error(exc: Exception) -> None:
    log.warning("NATS: %s", exc or type(exc).__name__)  # one line; it keeps reconnecting


async def _nats_disconnected() -> None:
    log.warning("NATS: disconnected; reconnecting")


async def _nats_reconnected() -> None:
    log.warning("NATS: reconnected")


class _Server(uvicorn.Server):
    """Ends live streams as soon as a stop is asked, so that shutdown is prompt."""

    def __init__(self, config: uvicorn.Config, stopping: asyncio.Event) -> None:
        super().__init__(config)
        self._stopping = stopping

    def handle_exit(self, sig: int, frame: Any) -> None:
        # Unlike uvicorn's own, this does not raise the signal again once the server has
        # stopped: the rest of the backend (projector, NATS, nats-server) still has to stop.
        self._stopping.set()
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl-C: stop waiting for open connections
        self.should_exit = True


class Consumers:
    """The stream consumers this process runs, each through its own ``ConsumerRunner``."""

    def __init__(self, backend: Backend, names: tuple[str, ...]) -> None:
        publisher = JetStreamPublisher(backend.nc)
        writer = BackendWriter(
            backend.bff_db, publisher, publish_timeout_s=backend.settings.publish_timeout_s
        )
        context = ComponentContext(
            backend.settings, backend.nc.jetstream(), publisher, writer, backend.nc
        )
        self.runners: dict[str, ConsumerRunner] = {}
        self._databases: list[Database] = []
        components = []
        for name in names:
            if name == "projector":
                db = backend.views_db  # pull reads it: one engine for both
            else:
                db = open_database(name, backend.settings)
                self._databases.append(db)
            components.append(build(name, db, context))
        # One fetch of the stream for the runners of this process, where there are several;
        # never for a component a pull reads, whose commits devices wait for: the fetch goes
        # at the pace of the slowest, and the others linger (``consumer_linger_s``).
        sharing = [c for c in components if not c.serves_pull]
        self.feed: SharedFetch | None = None
        if len(sharing) > 1 and backend.settings.consumer_shared_fetch:
            self.feed = SharedFetch(backend.nc)
        for component in components:
            self.runners[component.name] = ConsumerRunner(
                backend.nc,
                component,
                publisher=publisher,
                linger_s=backend.settings.consumer_linger_s,
                feed=None if component.serves_pull else self.feed,
            )
        self._tasks: list[asyncio.Task[None]] = []
        self._beside_stop = asyncio.Event()
        self._timers: list[Timers] = []

    async def start(self) -> None:
        for runner in self.runners.values():
            await runner.component.prepare()
        if self.feed is not None:
            self.feed.start()
        self._tasks = [asyncio.create_task(r.run()) for r in self.runners.values()]
        self._tasks += [
            asyncio.create_task(r.component.run_beside(self._beside_stop))
            for r in self.runners.values()
            if isinstance(r.component, BackgroundWork)
        ]
        for runner in self.runners.values():
            component = runner.component
            if isinstance(component, Orchestrator):  # its timers beside its stream consumer
                self._timers.append(component.timers)
                self._tasks.append(asyncio.create_task(component.timers.run(component.fired)))

    async def stop(self) -> None:
        """Each runner commits its current batch, then stops (with its work beside)."""
        for runner in self.runners.values():
            runner.stop()
        self._beside_stop.set()
        for timers in self._timers:
            timers.stop()
        try:
            await asyncio.gather(*self._tasks)
        finally:
            if self.feed is not None:
                await self.feed.stop()
            for db in self._databases:
                await db.dispose()


async def consume(settings: Settings) -> None:
    """``outpost backend consume``: only the stream consumers, no HTTP (one of them can
    then be run, stopped and scaled on its own). Without ``--nats-url`` it uses the
    nats-server that runs on the data folder's store (the backend's), or starts its own."""
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    # In a process group of its own on its parent's terminal (``own_process_group``), its
    # log lines would stop it under ``stty tostop``: they go out regardless.
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    serves_pull = "projector" in settings.component_names  # devices wait for its commits
    lower_priority(settings.consumers_nice, idle=settings.consumers_idle and not serves_pull)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    async with open_backend(settings, share_nats=True) as backend:
        consumers = Consumers(backend, settings.component_names)
        await consumers.start()
        if settings.health_subject:  # the parent's /v1/health asks here
            await backend.nc.subscribe(
                settings.health_subject, cb=functools.partial(_answer_health, backend, consumers)
            )
        runtime.settle()
        print(
            f"outpost consumers running: {', '.join(consumers.runners) or 'none'} "
            f"(data {settings.data_dir}; {backend.nats_description()})",
            file=sys.stderr,
            flush=True,
        )
        try:
            await stopping.wait()
        finally:
            exit_unless_stopped(settings.stop_deadline_s, "outpost backend consume")
            await consumers.stop()


async def _answer_health(backend: Backend, consumers: Consumers, msg: Msg) -> None:
    """The parent's ``/v1/health`` asks (with the stream's last seq, when it knows it)."""
    asked = msg.data.decode(errors="replace")
    stream_last = int(asked) if asked.isdigit() else await stream_last_seq(backend.nc)
    reports = await consumer_reports(consumers.runners, backend.nc.is_connected, stream_last)
    with contextlib.suppress(nats.errors.Error):
        await msg.respond(msgspec.json.encode(reports))


async def serve(settings: Settings) -> None:
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1` shows every stack
    async with (
        open_backend(settings) as backend,
        _limits(settings) as limits,
        _component_db(settings, "gateway") as gateway_db,
        _component_db(settings, "orchestrator") as orchestrator_db,
    ):
        consumers = Consumers(backend, settings.beside_names)
        apart = ApartConsumers(settings, backend.nats_url)
        gateway = GatewayService(
            gateway_db,
            backend.bff_db,
            AllowList.parse(settings.webhook_allow),
            BackendWriter(
                backend.bff_db,
                JetStreamPublisher(backend.nc),
                publish_timeout_s=settings.publish_timeout_s,
            ),
            nc=backend.nc,
        )
        secret = load_secret(settings.secret, settings.data_dir)
        signer = TokenSigner(secret, settings.token_ttl_s)
        pull = PullService(backend.views_db, CursorSigner(secret))
        hub = ChangeHub(
            backend.nc,
            backend.views_db,
            settings.live_poke_interval_s,
            max_per_user=settings.live_max_per_user,
        )
        services = Services(
            settings=settings,
            auth=AuthService(
                backend.bff_db,
                signer,
                RefreshTokens(secret),
                refresh_ttl_s=settings.refresh_ttl_s,
                hashing=PasswordHashing(
                    time_cost=settings.password_time_cost,
                    concurrency=settings.password_hash_concurrency,
                    queue=settings.password_hash_queue,
                ),
                revocation_refresh_s=settings.revocation_refresh_s,
            ),
            push=PushService(
                backend.bff_db,
                JetStreamPublisher(backend.nc),
                max_batch_events=settings.max_batch_events,
                max_clock_skew_ms=settings.max_clock_skew_ms,
                publish_timeout_s=settings.publish_timeout_s,
                seqs_later_s=SEQS_LATER_S,
                hand_over=bool(settings.beside_names),
                shown=_projector_passed(consumers.runners),
            ),
            pull=pull,
            hub=hub,
            health=HealthProbe(
                backend.nc,
                pull,
                consumers.runners,
                gateway.queue,
                apart=apart,
            ),
            limits=limits,
            gateway=gateway,
            reminders=ReminderService(
                orchestrator_db,
                backend.bff_db,
                Timers(backend.nc),
                default_s=settings.reminder_lead_s,
            ),
        )
        for runner in consumers.runners.values():
            if runner.component.serves_pull:
                runner.notify_here(hub.origin, hub.offer_notice)
        await hub.start()
        await consumers.start()
        await apart.start()
        config = uvicorn.Config(
            create_app(services),
            host=settings.host,
            port=settings.port,
            http=timed_h11_protocol(
                header_timeout_s=settings.header_timeout_s,
                body_timeout_s=settings.body_timeout_s,
                body_min_rate=settings.body_min_rate,
            ),
            log_level="warning",
            timeout_graceful_shutdown=3,
            lifespan="on",
        )
        server = _Server(config, services.stopping)
        runtime.settle()
        print(
            f"outpost backend ready on http://{settings.host}:{settings.port} "
            f"({backend.nats_description()}, "
            f"data {settings.data_dir}, {runtime.loop_name()} loop)",
            file=sys.stderr,
            flush=True,
        )
        try:
            await server.serve()
        finally:
            log.info("stopping: the HTTP server is closed")
            services.stopping.set()
            await services.push.close()  # the seqs still waiting to be written
            await asyncio.gather(consumers.stop(), apart.stop())
            log.info("stopping: the consumers have committed their last batches")
            await hub.stop()


def _projector_passed(runners: Mapping[str, ConsumerRunner]) -> Passed | None:
    """How far the projector beside the BFF has passed, if one runs in this process."""
    for runner in runners.values():
        if runner.component.serves_pull:
            return runner.passed
    return None


@asynccontextmanager
async def _component_db(settings: Settings, name: str) -> AsyncIterator[Database]:
    """A component's database that the BFF's routes write (whether or not this process runs
    the component's consumer): the gateway's registrations, the orchestrator's boards'
    reminder lead times."""
    db = open_database(name, settings)
    try:
        await db.migrate()
        yield db
    finally:
        await db.dispose()


@asynccontextmanager
async def _limits(settings: Settings) -> AsyncIterator[LimitStore]:
    """The abuse limits' counters, in the ``limits`` database every BFF process shares."""
    db = open_database("limits", settings)
    try:
        yield await LimitStore.open(db)
    finally:
        await db.dispose()


async def ledger(settings: Settings) -> list[tuple[str, int, int]]:
    """(event id, stream seq, times applied) for every event the projector applied."""
    views = open_database("projector", settings)
    try:
        await views.migrate()
        async with views.read() as conn:
            rows = await conn.execute(
                select(Applied.event_id, Applied.seq, Applied.times).order_by(Applied.seq)
            )
            return [(r.event_id, r.seq, r.times) for r in rows]
    finally:
        await views.dispose()


async def rebuild(settings: Settings) -> str:
    """Empty the views into a new generation: the projector replays the stream from the
    start when the backend next runs, and devices get ``reset`` on their next pull."""
    views = open_database("projector", settings)
    try:
        lease = await views.try_lease("projector")
        if lease is None:
            raise ComponentBusy(f"{who_runs(settings)} runs the projector: stop it first")
        try:
            await views.migrate()
            async with views.write() as conn:
                return await start_over(conn)
        finally:
            await lease.release()
    finally:
        await views.dispose()
