"""Runs a scenario on real parts: a backend (with its own nats-server) and device processes.

``Backend`` starts ``outpost backend`` on the embedded defaults in a folder: the backend
starts and supervises its own nats-server, as ``make run`` does. A backend restart is a
SIGKILL, which must take that nats-server along (FAULTS 26: never two servers on one
store); a nats-server restart SIGKILLs the server alone, and the backend's supervision
brings it back on the same store. Or it uses the backend at ``--backend-url`` (then
neither restart is injected, and the ledger cannot be read). ``DeviceHandle`` is one
device process (``outpost.conflicts.device``). ``execute`` runs the steps, ``heal`` brings
everything back, syncs to quiescence and waits for the reminders due by then, and
``collect`` gathers what the oracle needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from backend.launcher import BackendLauncher
from backend.nats.ownership import read_record, servers_on
from outpost.conflicts.broken import BREAK_ENV
from outpost.conflicts.device import landed
from outpost.conflicts.reminders import REMINDER_LEAD_S, missing
from outpost.conflicts.scenario import CLUSTER_STEP_KINDS, Scenario, Step

PASSWORD = "conflicts-password"
RAISED_LIMITS = {
    "OUTPOST_RATE_LIMIT_PER_S": "1000000",  # every device is one user's burst of requests
    "OUTPOST_RATE_LIMIT_BURST": "1000000",
    "OUTPOST_SIGNUP_LIMIT": "1000000",  # every user signs up from 127.0.0.1
}
"""The abuse limits the tool raises on its own backend (printed when it starts)."""
BACKEND_ENV = {
    "OUTPOST_PASSWORD_TIME_COST": "1",  # sign-ups are not what is tested
    "OUTPOST_REMINDER_LEAD_S": str(REMINDER_LEAD_S),  # the oracle computes fire times with it
    **RAISED_LIMITS,
}
COMMAND_TIMEOUT_S = 90.0
REMINDER_WAIT_S = 30.0
"""How long the heal waits for the reminders that must exist to be pulled."""
EVENT_WRITERS = frozenset({"workload", "orchestrator", "gateway"})
"""The consumers that write events after they consume: the heal waits for them too."""


class ConflictToolError(RuntimeError):
    """A part could not be started or stopped responding: the run cannot go on."""


class _Launcher(BackendLauncher):
    def __init__(self, data_dir: Path, *, broken: str | None, **options: Any) -> None:
        super().__init__(data_dir, **options)
        self.broken = broken
        if broken:  # every consumer in the one process the break is applied to
            self.env["OUTPOST_CONSUMERS_APART"] = ""

    def command(self) -> list[str]:
        command = super().command()
        if self.broken:  # python -m outpost ... -> python -m outpost.conflicts.broken RULE ...
            return [command[0], "-m", "outpost.conflicts.broken", self.broken, *command[3:]]
        return command


class Backend:
    def __init__(self, root: Path, url: str | None = None, broken: str | None = None) -> None:
        self.root = root
        self.own = url is None
        self._url = url
        self.broken = broken
        self.launcher: _Launcher | None = None
        self.nats_store = root / "backend" / "nats"

    @property
    def reminder_lead_s(self) -> float | None:
        """The lead of this backend's reminders, if the tool knows it (its own backend)."""
        return REMINDER_LEAD_S if self.own else None

    @property
    def url(self) -> str:
        if self._url is not None:
            return self._url
        assert self.launcher is not None
        return self.launcher.url

    async def start(self) -> None:
        if not self.own:
            return
        self.launcher = _Launcher(self.root / "backend", broken=self.broken, env=BACKEND_ENV)
        await asyncio.to_thread(self.launcher.start)

    def nats_pid(self) -> int:
        record = read_record(self.nats_store)
        if record is None or record.pid is None:
            raise ConflictToolError(f"no nats-server recorded in {self.nats_store}")
        return record.pid

    async def restart_backend(self) -> bool:
        """SIGKILL the backend (between publish and answer, if a push was out) and start it
        again. True if its nats-server died with it, and one server runs on the store now."""
        assert self.launcher is not None
        old_nats = self.nats_pid()
        self.launcher.kill()
        deadline = time.monotonic() + 30
        while old_nats in servers_on(self.nats_store) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        died_with_it = old_nats not in servers_on(self.nats_store)
        await asyncio.to_thread(self.launcher.start)
        return died_with_it and servers_on(self.nats_store) == [self.nats_pid()]

    async def restart_nats(self) -> None:
        """SIGKILL the backend's nats-server; its supervision brings it back on the store."""
        old = self.nats_pid()
        with contextlib.suppress(ProcessLookupError):
            os.kill(old, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while True:
            running = servers_on(self.nats_store)
            if running and old not in running and read_record(self.nats_store) is not None:
                return
            if time.monotonic() > deadline:
                raise ConflictToolError("the nats-server did not come back within 60 s")
            await asyncio.sleep(0.05)

    async def ledger(self) -> list[tuple[str, int, int]] | None:
        """(event id, seq, times applied) from ``outpost backend ledger --json``."""
        if not self.own:
            return None
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "outpost",
            "backend",
            "ledger",
            "--json",
            "--data-dir",
            str(self.root / "backend"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **BACKEND_ENV},
        )
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise ConflictToolError(f"outpost backend ledger failed: {err.decode()[-2000:]}")
        return [(r["id"], int(r["seq"]), int(r["times"])) for r in json.loads(out)]

    async def backlog(self) -> int | None:
        """Events that may still bring more, from health: the projector's lag (it answers a
        ``WipLimitExceeded`` with the compensation) plus that of every consumer that writes
        events after it consumes (the saga's workload check, the orchestrator, the gateway).
        None while unknown (health unreachable, a consumer starting after a restart): not 0."""
        try:
            async with httpx.AsyncClient(base_url=self.url, timeout=10) as http:
                reply = await http.get("/v1/health")
            body = reply.json()
            backlog = int(body["projector_lag"])
            for name, report in body.get("consumers", {}).items():
                if name in EVENT_WRITERS:
                    if report.get("lag_events") is None:
                        return None
                    backlog += int(report["lag_events"])
            return backlog
        except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError):
            return None

    async def stop(self) -> None:
        if self.launcher is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.launcher.stop)


class DeviceHandle:
    """One device process; ``call`` sends a command and waits for its one-line answer."""

    def __init__(self, index: int, folder: Path, server: str, clock_error_ms: int) -> None:
        self.index = index
        self.folder = folder
        self.server = server
        self.clock_error_ms = clock_error_ms
        self.proc: asyncio.subprocess.Process | None = None
        self.device_id = ""
        self.online = True
        self.dup = "off"
        self.starts = 0

    async def start(self, broken: str | None) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.pop(BREAK_ENV, None)
        if broken:
            env[BREAK_ENV] = broken
        with (self.folder / "device.log").open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "outpost.conflicts.device",
                "--folder",
                str(self.folder),
                "--server",
                self.server,
                "--clock-error-ms",
                str(self.clock_error_ms),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                env=env,
            )
        ready = await self.read(60)
        if ready is None or not ready.get("ready"):
            raise ConflictToolError(f"device {self.index} did not start: see {self.folder}")
        self.device_id = str(ready["device"])
        self.starts += 1
        if not self.online:
            await self.call({"cmd": "net", "online": False})
        if self.dup != "off":
            await self.call({"cmd": "dup", "mode": self.dup})

    def write(self, command: dict[str, Any]) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(command) + "\n").encode())

    async def read(self, timeout: float = COMMAND_TIMEOUT_S) -> dict[str, Any] | None:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        except TimeoutError:
            raise ConflictToolError(
                f"device {self.index} did not answer in {timeout:.0f}s (see {self.folder})"
            ) from None
        if not line:
            return None
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def call(
        self, command: dict[str, Any], timeout: float = COMMAND_TIMEOUT_S
    ) -> dict[str, Any]:
        self.write(command)
        answer = await self.read(timeout)
        if answer is None:
            raise ConflictToolError(f"device {self.index} exited (see {self.folder}/device.log)")
        return answer

    def commands_started(self) -> int:
        trace = self.folder / "trace.log"
        if not trace.exists():
            return 0
        return sum(1 for line in trace.read_text().splitlines() if line.startswith("cmd "))

    async def wait_started(self, count: int, timeout_s: float = 10) -> None:
        """Until the device has begun its ``count``-th command since the trace began."""
        deadline = time.monotonic() + timeout_s
        while self.commands_started() < count and time.monotonic() < deadline:
            await asyncio.sleep(0.0005)

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        try:
            self.write({"cmd": "quit"})
            await asyncio.wait_for(self.proc.wait(), 30)
        except (TimeoutError, ConnectionError, ConflictToolError):
            await self.kill()


@dataclass
class Returned:
    step: int
    device: int
    name: str
    ids: list[str]
    watermark: int


@dataclass
class Execution:
    usernames: list[str]
    devices: list[DeviceHandle]
    returned: list[Returned] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    invariants: list[str] = field(default_factory=list)
    """Breaks seen while running (not in the final state): reported with the oracle's."""
    healed: bool = False
    heal_problem: str = ""
    reminder_cutoff_ms: int | None = None
    """When the run had healed: the reminders due by then must exist (None: not checked)."""
    reminder_lead_s: float | None = None
    seconds: float = 0.0


class Unresolved(Exception):
    pass


def resolve(value: Any, symbols: dict[str, str]) -> Any:
    if isinstance(value, str) and value.startswith("@"):
        if value[1:] not in symbols:
            raise Unresolved(value)
        return symbols[value[1:]]
    if isinstance(value, dict):
        return {k: resolve(v, symbols) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, symbols) for v in value]
    return value


class Runner:
    """Runs one scenario's steps on a backend, with device processes in ``folder``."""

    def __init__(
        self,
        backend: Any,
        scenario: Scenario,
        folder: Path,
        prefix: str,
        *,
        broken: str | None = None,
        log: Any = None,
    ) -> None:
        self.backend = backend
        self.scenario = scenario
        self.folder = folder
        self.broken = broken
        usernames = [f"{prefix}u{j}" for j in range(scenario.users)]
        self.symbols: dict[str, str] = {f"U{j}": name for j, name in enumerate(usernames)}
        devices = [
            DeviceHandle(i, folder / f"device{i}", backend.url, scenario.clock_errors_ms[i])
            for i in range(scenario.clients)
        ]
        self.run = Execution(usernames, devices)
        self._log = log

    def say(self, message: str) -> None:
        if self._log is not None:
            self._log(message)

    async def start(self) -> None:
        await asyncio.gather(*(d.start(self.broken) for d in self.run.devices))

    async def stop(self) -> None:
        await asyncio.gather(*(d.stop() for d in self.run.devices))

    # steps

    async def execute(self) -> None:
        for step in self.scenario.steps:
            await self.step(step)

    def _act_command(self, step: Step) -> dict[str, Any]:
        args = {k: v for k, v in step.args.items() if k not in ("name", "bind", "delay_ms")}
        return {"cmd": "act", "name": step.args["name"], "args": resolve(args, self.symbols)}

    def _returned(self, step: Step, device: int, answer: dict[str, Any]) -> None:
        if not answer.get("ok"):
            error = str(answer.get("error", ""))
            self.run.skipped[error.split(":", 1)[0] or "error"] += 1
            if error.startswith("crash"):
                self.run.notes.append(f"step {step.index}: device {device}: {error}")
            return
        bind = step.args.get("bind")
        if bind and isinstance(answer.get("result"), str):
            self.symbols[bind] = answer["result"]
        self.run.returned.append(
            Returned(step.index, device, step.args["name"], answer["ids"], answer["watermark"])
        )

    async def step(self, step: Step) -> None:
        devices = self.run.devices
        device = devices[step.device] if step.device is not None else None
        kind = step.kind
        if kind in ("signup", "login"):
            assert device is not None
            username = resolve(step.args["user"], self.symbols)
            answer = await device.call({"cmd": kind, "username": username, "password": PASSWORD})
            if not answer.get("ok"):
                raise ConflictToolError(f"{kind} of {username} failed: {answer.get('error')}")
        elif kind == "act":
            assert device is not None and step.device is not None
            try:
                command = self._act_command(step)
            except Unresolved:
                self.run.skipped["unresolved"] += 1
                return
            self._returned(step, step.device, await device.call(command))
        elif kind == "sync":
            assert device is not None
            await device.call({"cmd": "sync"})
        elif kind == "net":
            assert device is not None
            device.online = bool(step.args["online"])
            await device.call({"cmd": "net", "online": device.online})
        elif kind == "live":
            assert device is not None
            await device.call({"cmd": "live", "on": bool(step.args["on"])})
        elif kind == "dup":
            assert device is not None
            device.dup = str(step.args["mode"])
            await device.call({"cmd": "dup", "mode": device.dup})
        elif kind in ("kill_act", "kill_sync"):
            assert device is not None and step.device is not None
            await self.kill_during(step, device)
        elif kind in ("backend_restart", "nats_restart", *CLUSTER_STEP_KINDS):
            await self.restart_during(step)
        elif kind == "hostile":
            assert device is not None
            await self.hostile(step, device)
        else:
            raise ConflictToolError(f"unknown step kind {kind!r}")

    async def kill_during(self, step: Step, device: DeviceHandle) -> None:
        if step.kind == "kill_act":
            try:
                command = self._act_command(step)
            except Unresolved:
                self.run.skipped["unresolved"] += 1
                command = {"cmd": "sync"}
        else:
            command = {"cmd": "sync"}
        started = device.commands_started()
        device.write(command)
        await device.wait_started(started + 1)  # then the delay: the kill lands inside
        await asyncio.sleep(float(step.args.get("delay_ms", 0)) / 1000)
        await device.kill()
        answer = await device.read(10)  # an answer written before the kill still counts
        syncing = command["cmd"] == "sync"
        # A fault counts only where it aimed: inside the action, or with a request out.
        if answer is None and landed(device.folder / "trace.log", "http" if syncing else "command"):
            self.run.faults["device_kill_sync" if syncing else "device_kill_action"] += 1
        elif answer is None:
            self.run.notes.append(f"step {step.index}: the kill landed outside its aim")
        elif command["cmd"] == "act":
            assert step.device is not None
            self._returned(step, step.device, answer)
        await device.start(self.broken)
        state = await device.call({"cmd": "state"})
        if state.get("integrity") != "ok":
            self.run.notes.append(
                f"step {step.index}: device {device.index} store: {state.get('integrity')}"
            )

    async def hostile(self, step: Step, device: DeviceHandle) -> None:
        """The adversary's push: the other user's device id and an event of theirs to
        replay come from this run (its devices and their journals)."""
        try:
            args = resolve(step.args, self.symbols)
        except Unresolved:
            self.run.skipped["unresolved"] += 1
            return
        user = self.scenario.user_of(device.index)
        others = [d for d in self.run.devices if self.scenario.user_of(d.index) != user]
        args["other_device"] = others[0].device_id
        args["replay"] = _last_accepted(others)
        if args["hostile"] == "replay" and args["replay"] is None:
            self.run.skipped["hostile replay: nothing accepted yet"] += 1
            return
        if args["hostile"] == "outsider_write" and args["outsider_board"] is None:
            self.run.skipped["hostile outsider_write: no board of another user"] += 1
            return
        answer = await device.call({"cmd": "hostile", "kind": args.pop("hostile"), "args": args})
        if not answer.get("ok"):
            self.run.skipped[f"hostile: {str(answer.get('error'))[:60]}"] += 1

    async def restart_during(self, step: Step) -> None:
        if not self.backend.own:
            self.run.skipped[f"{step.kind} (not with --backend-url)"] += 1
            return
        pushing = [d for d in self.run.devices if d.online]
        for d in pushing:
            d.write({"cmd": "sync"})
        replies = [asyncio.create_task(d.read()) for d in pushing]

        def pushes_out() -> int:
            return sum(1 for d in pushing if landed(d.folder / "trace.log", "push"))

        # Aim at a push in flight: wait for one to go out (or every sync to end), then the
        # scenario's small delay, so the kill lands between publish and answer.
        deadline = time.monotonic() + 5
        while not pushes_out() and not all(r.done() for r in replies):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.0005)
        await asyncio.sleep(float(step.args.get("delay_ms", 0)) / 4000)
        in_flight = pushes_out()
        if step.kind in CLUSTER_STEP_KINDS:
            problem, done = await self.backend.inject(step.kind)
            if problem:
                self.run.invariants.append(f"step {step.index}: {step.kind}: {problem}")
                in_flight = 0
            else:
                self.run.notes.append(f"step {step.index}: {done}")
        elif step.kind == "backend_restart":
            if not await self.backend.restart_backend():
                self.run.invariants.append(
                    f"step {step.index}: the SIGKILLed backend's nats-server outlived it, or "
                    "two servers ran on its store"
                )
        else:
            await self.backend.restart_nats()
        await asyncio.gather(*replies)
        if in_flight:
            self.run.faults[step.kind] += 1
        else:
            self.run.notes.append(f"step {step.index}: {step.kind} with no push in flight")

    # the end

    async def heal(self, timeout_s: float = 180) -> None:
        """Everything online and up, then sync every device until nothing moves."""
        for device in self.run.devices:
            device.online, device.dup = True, "off"
            await device.call({"cmd": "live", "on": False})
            await device.call({"cmd": "net", "online": True})
            await device.call({"cmd": "dup", "mode": "off"})
        deadline = time.monotonic() + timeout_s
        quiet = 0
        last = ""
        while quiet < 2:
            if time.monotonic() > deadline:
                self.run.heal_problem = f"no quiescence within {timeout_s:.0f}s: {last}"
                return
            pulled = pending = 0
            errors: list[str] = []
            for device in self.run.devices:
                answer = await device.call({"cmd": "sync"})
                if not answer.get("ok"):
                    errors.append(f"device {device.index}: {answer.get('error')}")
                pulled += int(answer.get("pulled", 0))
            for device in self.run.devices:
                pending += int((await device.call({"cmd": "state"}))["pending"])
            backlog = await self.backend.backlog()
            last = f"pulled {pulled}, pending {pending}, backlog {backlog}, errors {errors}"
            if not errors and pulled == 0 and pending == 0 and backlog == 0:
                quiet += 1
                await asyncio.sleep(0.5)  # let a saga answer that is on its way land
            else:
                quiet = 0
                await asyncio.sleep(0.2 if not errors else 1.0)
        self.run.healed = True
        await self.await_reminders()

    async def await_reminders(self, timeout_s: float = REMINDER_WAIT_S) -> None:
        """Pull again until every reminder due by now has reached its assignee (its
        schedule fires on its own time, after the consumers caught up), or ``timeout_s``
        passed: the oracle then reports the ones missing. Only on a backend whose lead is
        known and that runs the orchestrator."""
        lead_s = getattr(self.backend, "reminder_lead_s", None)
        if lead_s is None:
            return
        self.run.reminder_cutoff_ms = int(time.time() * 1000)
        self.run.reminder_lead_s = lead_s
        usernames = self.run.usernames
        started = time.monotonic()
        while True:
            pulls = [await pull_everything(self.backend.url, u) for u in usernames]
            left = missing(pulls, usernames, self.run.reminder_cutoff_ms, lead_s)
            waited = time.monotonic() - started
            if not left or waited > timeout_s:
                self.run.notes.append(
                    f"reminders due by the end: {len(left)} not pulled after {waited:.1f}s"
                    if left
                    else f"reminders due by the end: all pulled after {waited:.1f}s"
                )
                return
            await asyncio.sleep(0.3)

    async def collect(self) -> dict[str, Any]:
        states = []
        for device in self.run.devices:
            states.append(await device.call({"cmd": "state", "snapshot": True}))
        journals = []
        for device in self.run.devices:
            path = device.folder / "journal.jsonl"
            lines = path.read_text().splitlines() if path.exists() else []
            journals.append([json.loads(line) for line in lines if line.strip()])
        pulls = [await pull_everything(self.backend.url, u) for u in self.run.usernames]
        return {
            "states": states,
            "journals": journals,
            "pulls": pulls,
            "ledger": await self.backend.ledger(),
            "device_ids": {d.device_id: d.index for d in self.run.devices},
        }


def _last_accepted(devices: list[DeviceHandle]) -> dict[str, Any] | None:
    """The newest event another device had accepted, as it sent it (for a replay)."""
    for device in devices:
        path = device.folder / "journal.jsonl"
        if not path.exists():
            continue
        for line in reversed(path.read_text().splitlines()):
            record = json.loads(line) if line.strip() else {}
            if record.get("status") == "accepted" and "hostile" not in record:
                event: dict[str, Any] = record["event"]
                return event
    return None


async def pull_everything(url: str, username: str) -> list[dict[str, Any]]:
    """A user's bootstrap pull, every page: what the backend shows that user."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        reply = await http.post("/v1/auth/token", json={"username": username, "password": PASSWORD})
        if reply.status_code != 200:
            raise ConflictToolError(f"sign-in of {username}: HTTP {reply.status_code}")
        headers = {"Authorization": f"Bearer {reply.json()['token']}"}
        changes: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 1000}
            if cursor:
                params["cursor"] = cursor
            page = await http.get("/v1/sync/pull", params=params, headers=headers)
            if page.status_code != 200:
                raise ConflictToolError(f"pull of {username}: HTTP {page.status_code}")
            body = page.json()
            changes.extend(body["changes"])
            cursor = body["cursor"]
            if not body["has_more"]:
                return changes
