"""Child processes that end with the process that started them, and finding them.

``die_with_parent`` is the ``preexec_fn`` every long-lived child of ours gets (the embedded
nats-server, the consumers' process of ``outpost backend``, the parts of ``outpost
cluster``): on Linux the kernel sends the child a signal when the thread that forked it
ends (``PR_SET_PDEATHSIG``), so a backend killed with SIGKILL leaves nothing running.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "child_pids",
    "die_with_parent",
    "exit_unless_stopped",
    "lower_priority",
    "own_process_group",
]

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(sig: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel send ``sig`` to the child when the thread that
    forked it ends (Linux); None elsewhere. ``prctl`` is looked up here, before the fork, so
    the child only calls it; a parent that died before the ``prctl`` ends the child at once
    (nobody would signal it)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, ctypes.c_ulong(sig), 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return arm


def exit_unless_stopped(seconds: float, what: str) -> None:
    """End this process (exit status 1) if it still runs ``seconds`` from now: a stop that
    hangs must not leave it behind. Once its parent has died, nobody else would end it: a
    consumers' process whose backend was SIGKILLed together with its nats-server was seen
    to wait forever for a task that never finished once cancelled."""

    def expire() -> None:
        print(f"{what}: did not stop within {seconds:g} s; exiting", file=sys.stderr, flush=True)
        os._exit(1)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()


def child_pids(pid: int) -> list[int]:
    """The child processes of ``pid``, from Linux's ``/proc`` (none where it is missing)."""
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError, ValueError):
            children += [int(word) for word in task.read_text().split()]
    return sorted(children)


def lower_priority(nice: int, *, idle: bool = False) -> None:
    """Lower this process's CPU priority: by ``nice`` (0 or less: leave it), and with
    ``idle`` into Linux's idle scheduling class (``SCHED_IDLE``), where it runs only on CPU
    time no other process of its group wants and gives the CPU up the moment one wakes.

    Linux schedules each session as a group first (autogroup). A process that leads a
    session of its own is its own group, whose nice is lowered as well: otherwise the
    process's would only weigh against its own threads. One that shares its session (a
    shell's, or its parent's) leaves the group's nice alone, since that is every other
    process of the session too. Call it before starting threads, which take it on."""
    if nice > 0:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, max(os.getpriority(os.PRIO_PROCESS, 0), nice))
        if os.getsid(0) == os.getpid():
            with contextlib.suppress(OSError):
                Path("/proc/self/autogroup").write_text(str(nice))
    if idle and hasattr(os, "SCHED_IDLE"):
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def own_process_group(then: Callable[[], None] | None) -> Callable[[], None]:
    """A ``preexec_fn`` that puts the child in a process group of its own (a Ctrl-C at
    the terminal reaches only the parent, which stops it in order) while it stays in the
    parent's session, and so in its scheduling group; then runs ``then``."""

    def preexec() -> None:
        os.setpgid(0, 0)
        if then is not None:
            then()

    return preexec
