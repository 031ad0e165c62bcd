"""The child process in which ``outpost backend`` runs the consumers set apart.

The BFF and the projector share one event loop: the projector's commits are what devices
wait for, and its views are what the pull reads. The other consumers (the saga's workload,
the lake, the gateway, the orchestrator) read every event too; on that loop they took
most of its time in a drain (about 70% of the backend's CPU, 2026-11-29), and the
projector waited its turn. ``ApartConsumers`` runs them as
``outpost backend consume`` in a process of its own, so that they work on another core:

- it gets the parent's settings as ``OUTPOST_*`` variables, the embedded nats-server's
  URL, and a NATS subject on which it answers with its consumers' health
  (``backend/bff/health.py`` asks there for ``/v1/health``);
- its output is the parent's (the same terminal or ``backend.log``);
- it ends with the parent: stopped in order on a stop (each consumer commits its batch),
  and on Linux sent SIGTERM by the kernel if the parent dies without one;
- if it exits on its own, it is started again, after a pause that doubles up to 30 s.
  Its consumers hold leases (``backend/consumers/lease.py``): a new child that starts
  while an old one is still stopping waits on standby instead of consuming twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
import uuid
from asyncio.subprocess import Process
from typing import Any

from backend.config import Settings
from backend.processes import die_with_parent, own_process_group

__all__ = ["ApartConsumers"]

log = logging.getLogger("outpost.backend")

_RESTART_FIRST_S = 1.0
_RESTART_MAX_S = 30.0
_STOP_TIMEOUT_S = 15.0
START_GRACE_S = 30.0
"""How long after a (re)start the child may stay silent on its health subject before
``/v1/health`` calls it ``unknown`` (and the backend ``degraded``) instead of ``starting``."""
REPORT_KEPT_S = 10.0
"""How long the child's last answer on its health subject stands in for one that comes
late. The child runs in the idle class (``Settings.consumers_idle``): on a machine whose
cores are all busy it may not get the CPU within the question's timeout, and a second of
that is no outage. Past this, or once that child has exited, it is ``unknown``."""


HEALTH_SUBJECT_PREFIX = "outpost.health.consumers"
"""``<prefix>.<random id>``: where ``/v1/health`` asks the consumers' process how its
consumers are (core NATS request and reply)."""


class ApartConsumers:
    """Runs, watches and stops ``outpost backend consume`` for ``settings.apart_names``."""

    def __init__(self, settings: Settings, nats_url: str) -> None:
        self.names = settings.apart_names
        self._idle = settings.consumers_idle
        self.health_subject = f"{HEALTH_SUBJECT_PREFIX}.{uuid.uuid4().hex}"
        self._env = {
            **os.environ,
            **settings.to_env(),
            "OUTPOST_NATS_URL": nats_url,
            "OUTPOST_COMPONENTS": ",".join(self.names),
            "OUTPOST_HEALTH_SUBJECT": self.health_subject,
        }
        self._process: Process | None = None
        self._watch: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._started_at: float | None = None
        self._answered = False
        self._exited: str | None = None
        """How the last child ended, until the next one starts."""
        self._last: tuple[float, dict[str, Any]] | None = None
        """When the running child last answered on its health subject, and its answer."""

    def answered(self, reports: dict[str, Any]) -> None:
        """The child answered on its health subject with ``reports``: it runs."""
        self._answered = True
        self._last = (time.monotonic(), reports)

    def last_reports(self) -> dict[str, Any]:
        """The running child's last answer, if it is under ``REPORT_KEPT_S`` old: what
        ``/v1/health`` says while a busy machine keeps the child from answering at once."""
        if self._last is None or time.monotonic() - self._last[0] > REPORT_KEPT_S:
            return {}
        return self._last[1]

    def silence(self) -> tuple[str, str | None]:
        """What ``/v1/health`` says of the child's consumers when it does not answer: the
        breaker ``starting`` while a child started a moment ago runs and has not answered
        yet, else ``unknown``, with why (``degraded``)."""
        process = self._process
        alive = process is not None and process.returncode is None
        started_at = self._started_at
        recent = started_at is not None and time.monotonic() - started_at < START_GRACE_S
        if alive and recent and not self._answered:
            return "starting", None
        if self._exited is not None:
            return "unknown", f"the consumers' process {self._exited}"
        return "unknown", "the consumers' process does not answer"

    async def start(self) -> None:
        if self.names:
            self._watch = asyncio.create_task(self._keep_running())

    async def _spawn(self) -> Process:
        command = [sys.executable, "-m", "outpost", "backend", "consume"]
        # A Ctrl-C reaches the backend, which stops the child in order: the child has a
        # process group of its own. In the idle class it stays in the backend's session,
        # whose scheduling group it must share for the BFF to take the CPU from it at once
        # (``Settings.consumers_idle``); otherwise it leads a session, and so a group, of
        # its own, whose nice it lowers.
        dies = die_with_parent(signal.SIGTERM)
        process = await asyncio.create_subprocess_exec(
            *command,
            env=self._env,
            stdin=asyncio.subprocess.DEVNULL,
            preexec_fn=own_process_group(dies) if self._idle else dies,
            start_new_session=not self._idle,
        )
        self._started_at, self._answered, self._exited = time.monotonic(), False, None
        self._last = None
        return process

    async def _keep_running(self) -> None:
        """Start the child, and again whenever it ends, until a stop; a stop ends it here."""
        pause = _RESTART_FIRST_S
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            started = loop.time()
            try:
                self._process = await self._spawn()
            except OSError as exc:
                code: int | str = f"could not start: {exc}"
            else:
                code = await self._until_exit_or_stop(self._process)
            self._last = None  # that child's answers say nothing of the next one
            if self._stopping.is_set():
                return
            self._exited = f"exited with {code}" if isinstance(code, int) else code
            if loop.time() - started > _RESTART_MAX_S:
                pause = _RESTART_FIRST_S  # it ran a while: this is a new failure
            log.error(
                "the consumers' process (%s) %s; starting it again in %.0f s",
                ", ".join(self.names),
                self._exited,
                pause,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), pause)
            pause = min(pause * 2, _RESTART_MAX_S)

    async def _until_exit_or_stop(self, process: Process) -> int:
        """The child's exit status: when it exits by itself, or after a stop, when SIGTERM
        has ended it (each consumer commits its batch), or SIGKILL after 15 s."""
        exited = asyncio.ensure_future(process.wait())
        stopping = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not exited.done():
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(exited), _STOP_TIMEOUT_S)
            except TimeoutError:
                log.error("the consumers' process did not stop in %.0f s: killed", _STOP_TIMEOUT_S)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
        return await exited

    async def stop(self) -> None:
        """End the child in order (``_until_exit_or_stop``) and stop starting it again."""
        self._stopping.set()
        if self._watch is not None:
            await self._watch
