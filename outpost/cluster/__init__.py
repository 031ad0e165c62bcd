"""``outpost cluster up|down|status``: a real, local topology for development and tests.

``up`` starts a supervisor process (``outpost.cluster.supervisor``) in the background and
waits until every part answers: a JetStream cluster of ``--nats`` nodes (streams at replicas
``min(3, N)``), PostgreSQL (embedded, or ``--db-url``), each stream consumer in its own
process with ``--standbys`` waiting beside it, ``--bffs`` BFF processes and a round-robin
front. The state file ``<dir>/cluster.json`` names every pid, port and URL, so ``status``
and ``down`` work from any shell. See the README, "Run at scale locally".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from outpost.cluster.state import (
    SPEC_NAME,
    STATE_NAME,
    SUPERVISOR_LOG,
    ClusterError,
    Spec,
    State,
    alive,
    read_state,
)

__all__ = ["ClusterError", "Spec", "State", "add_arguments", "down", "read_state", "run", "up"]

DEFAULT_DIR = Path("outpost-cluster")


def up(folder: Path, spec: Spec, *, timeout_s: float = 180.0, tied: bool = False) -> State:
    """Start the supervisor of ``folder`` in the background and wait until the cluster is
    ready; ClusterError (with the supervisor's log) if it fails or takes too long.

    ``tied``: the cluster lives no longer than the calling thread (the kernel sends the
    supervisor SIGTERM when it ends, even by SIGKILL), for tools and tests that own it;
    call it from the thread that lives as long as the cluster should (the main thread)."""
    spec.check()
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    running: State | None = None
    with contextlib.suppress(ClusterError):
        running = read_state(folder)
    if running is not None and alive(running.supervisor_pid):
        # Whatever its phase: its state file, the only record of its pids, must stay.
        raise ClusterError(
            f"a cluster already runs in {folder} (supervisor pid {running.supervisor_pid}): "
            f"`outpost cluster down --dir {folder}` first"
        )
    (folder / STATE_NAME).unlink(missing_ok=True)
    (folder / SPEC_NAME).write_text(json.dumps(spec.to_json(), indent=2) + "\n")
    with (folder / SUPERVISOR_LOG).open("ab") as out:
        from backend.processes import die_with_parent

        process = subprocess.Popen(
            [sys.executable, "-m", "outpost.cluster.supervisor", str(folder)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not stopped by the Ctrl-C of the shell that started it
            preexec_fn=die_with_parent(signal.SIGTERM) if tied else None,
        )
    deadline = time.monotonic() + timeout_s
    while True:
        state: State | None = None
        with contextlib.suppress(ClusterError):
            state = read_state(folder)
        if state is not None and state.phase == "ready":
            return state
        if process.poll() is not None or (state is not None and state.phase == "failed"):
            process.wait()
            raise ClusterError(
                f"the cluster did not start: {state.error if state else 'no state written'}\n"
                + _tail(folder / SUPERVISOR_LOG)
            )
        if time.monotonic() > deadline:
            process.terminate()
            process.wait(60)
            raise ClusterError(
                f"the cluster was not ready in {timeout_s:.0f}s\n" + _tail(folder / SUPERVISOR_LOG)
            )
        time.sleep(0.2)


def down(folder: Path, *, timeout_s: float = 90.0) -> State:
    """Stop the supervisor (which stops every part in order) and wait until it is gone; any
    part that outlived it is killed."""
    folder = folder.resolve()
    state = read_state(folder)
    pid = state.supervisor_pid
    if alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    state = read_state(folder)
    for part in state.parts:
        if part.pid is not None and alive(part.pid) and _ours(part.pid, folder):
            with contextlib.suppress(ProcessLookupError):
                os.kill(part.pid, signal.SIGKILL)
    return state


def _ours(pid: int, folder: Path) -> bool:
    """Whether ``pid`` still runs a command of this cluster (not a recycled pid)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return str(folder) in command or "postgres" in command


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return f"(no log at {path})"
    return f"last lines of {path}:\n" + "\n".join(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument(
        "--dir", default=str(DEFAULT_DIR), help=f"the cluster's folder (default: {DEFAULT_DIR})"
    )
    parser.add_argument("--bffs", type=int, default=2, help="BFF processes (default 2)")
    parser.add_argument("--nats", type=int, default=3, help="nats-server nodes (default 3)")
    parser.add_argument(
        "--standbys", type=int, default=1, help="standby processes per consumer (default 1)"
    )
    parser.add_argument(
        "--db-url", help="postgresql+asyncpg://... instead of an embedded PostgreSQL"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="OUTPOST_NAME=VALUE",
        help="a setting for every BFF and consumer (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="status: print JSON")


def run(args: argparse.Namespace) -> int:
    from outpost.cluster.status import rows, table

    folder = Path(args.dir)
    try:
        if args.action == "up":
            env = {}
            for item in args.set:
                name, sep, value = item.partition("=")
                if not sep or not name.startswith("OUTPOST_"):
                    print(
                        f"outpost cluster: --set takes OUTPOST_NAME=VALUE, not {item!r}",
                        file=sys.stderr,
                    )
                    return 2
                env[name] = value
            spec = Spec(
                bffs=args.bffs, nats=args.nats, standbys=args.standbys, db_url=args.db_url, env=env
            )
            state = up(folder, spec)
            print(table(rows(state)))
            print(f"\nfront: {state.front_url}   BFFs: {' '.join(state.bff_urls)}")
            print(f"nats: {state.nats_url}\ndatabase: {state.db_url}")
            return 0
        if args.action == "down":
            state = down(folder)
            print(f"outpost cluster in {state.dir}: down")
            return 0
        state = read_state(folder)
        found = rows(state)
        if args.json:
            print(json.dumps({"phase": state.phase, "front": state.front_url, "parts": found}))
        else:
            supervisor = "alive" if alive(state.supervisor_pid) else "gone"
            print(
                f"phase: {state.phase}  front: {state.front_url}  "
                f"supervisor pid {state.supervisor_pid} ({supervisor})"
            )
            print(table(found))
        return 0
    except ClusterError as exc:
        print(f"outpost cluster {args.action}: {exc}", file=sys.stderr)
        return 1
