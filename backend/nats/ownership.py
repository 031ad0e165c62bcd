"""One nats-server per JetStream store: the lock, the record of who runs it, and leftovers.

Two servers on one store damage it: each keeps its own picture of the streams and writes it
back, so stopping one writes stale state over the other's. Hence:

- **The lock.** Whoever starts a server takes an exclusive ``flock`` on ``nats-server.lock``
  in the store, and the server inherits that lock (the same open file): it is held while
  either of them lives, so a server whose starter was SIGKILLed still keeps a second one out.
- **The record.** With the lock taken, before it forks the server, the starter writes
  ``nats-server.json``: the server's URL, the starter's pid and command line, and once
  forked the server's pid. Commands that need the NATS of a data folder connect to that URL
  instead of starting a server of their own.
- **Leftovers.** A nats-server running on the store whose parent is not the recorded
  starter (its starter is gone, or it was started by an older Outpost without a record) is
  a leftover: a start stops it first, after checking in ``/proc`` that the process really is
  a nats-server run with this store's config. Without ``/proc`` nothing is stopped and the
  start is refused instead.

Linux gives the most (``/proc``, and ``PR_SET_PDEATHSIG`` in ``embedded.py``, so there are
seldom leftovers at all); elsewhere the lock still keeps a second server out.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shlex
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from backend.nats.errors import StoreInUseError

if sys.platform != "win32":
    import fcntl

__all__ = [
    "CONFIG_NAME",
    "RECORD_NAME",
    "RunningServer",
    "ServerRecord",
    "StoreInUseError",
    "StoreLock",
    "find_running",
    "is_server_on",
    "read_record",
    "servers_on",
    "stop_leftover",
    "write_record",
]

CONFIG_NAME = "nats-server.conf"
LOCK_NAME = "nats-server.lock"
RECORD_NAME = "nats-server.json"
_POLL_S = 0.02
# A prober (find_running) holds the lock for a moment: a starter that finds it taken tries
# again for this long before it looks for who holds it.
_PROBE_GRACE_S = 0.3


@dataclass(frozen=True)
class ServerRecord:
    """What a starter writes about its server (``nats-server.json``); ``pid`` is None until
    the server is forked."""

    pid: int | None
    url: str
    owner_pid: int
    owner: str

    def to_json(self) -> str:
        return json.dumps(
            {"pid": self.pid, "url": self.url, "owner_pid": self.owner_pid, "owner": self.owner}
        )


@dataclass(frozen=True)
class RunningServer:
    """A nats-server found running on a store, or a store locked by a live process.

    ``pid`` is None when the store is locked but no server runs at this moment (its owner is
    restarting it). ``leftover``: its starter is gone, so the next start stops it.
    """

    pid: int | None
    url: str | None
    owner_pid: int | None
    owner: str | None
    leftover: bool

    def describe(self) -> str:
        if self.pid is None:
            holder = f"pid {self.owner_pid}" if self.owner_pid else "an unknown process"
            command = f" ({self.owner})" if self.owner else ""
            return f"{holder}{command} holds it; its nats-server is not running at this moment"
        text = f"nats-server pid {self.pid}"
        if self.url:
            text += f" at {self.url}"
        if self.leftover:
            return text + ", left running by a process that is gone"
        if self.owner_pid is not None:
            text += f", run by pid {self.owner_pid}"
            if self.owner:
                text += f" ({self.owner})"
        return text


class StoreLock:
    """The exclusive ``flock`` on a store's lock file, for as long as this object keeps it.

    ``fd`` is what a server child inherits so that the lock outlives this process.
    """

    def __init__(self, store_dir: Path) -> None:
        self.path = Path(store_dir) / LOCK_NAME
        self._fd: int | None = None

    @property
    def fd(self) -> int:
        if self._fd is None:
            raise RuntimeError(f"{self.path} is not locked by this process")
        return self._fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if it is free now; True if this object holds it."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _flock(fd):
            os.close(fd)
            return False
        self._fd = fd
        return True

    async def acquire(self, timeout_s: float) -> bool:
        """Take the lock, waiting up to ``timeout_s`` for it to be released."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not self.try_acquire():
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(_POLL_S)
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # the last close of the open file drops the flock

    def is_taken(self) -> bool:
        """Whether some process holds the lock now (probed by taking it for a moment)."""
        if self._fd is not None:
            return True
        if not self.path.exists():
            return False
        if self.try_acquire():
            self.release()
            return False
        return True


def _flock(fd: int) -> bool:
    if sys.platform == "win32":  # no flock: the backend's embedded server is for POSIX
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


# -- the record ---------------------------------------------------------------------------------


def read_record(store_dir: Path) -> ServerRecord | None:
    try:
        raw = json.loads((Path(store_dir) / RECORD_NAME).read_text(encoding="utf-8"))
        return ServerRecord(
            pid=None if raw["pid"] is None else int(raw["pid"]),
            url=str(raw["url"]),
            owner_pid=int(raw["owner_pid"]),
            owner=str(raw.get("owner", "")),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_record(store_dir: Path, pid: int | None, url: str) -> ServerRecord:
    """Record the server this process runs (or is about to fork) on ``store_dir``, whose
    lock it holds (atomically: readers never see half a file)."""
    record = ServerRecord(pid=pid, url=url, owner_pid=os.getpid(), owner=_this_command())
    path = Path(store_dir) / RECORD_NAME
    scratch = path.with_suffix(".json.tmp")
    scratch.write_text(record.to_json(), encoding="utf-8")
    os.replace(scratch, path)
    return record


def _this_command() -> str:
    argv = list(sys.argv)
    if argv and argv[0].endswith(("__main__.py", "/outpost")):
        argv[0] = "outpost"
    return shlex.join(argv)[:200]


# -- processes ----------------------------------------------------------------------------------


def servers_on(store_dir: Path) -> list[int]:
    """The pids of every nats-server process run with this store's config (from ``/proc``;
    empty where there is no ``/proc``)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    found = []
    for entry in proc.iterdir():
        if entry.name.isdigit() and is_server_on(int(entry.name), store_dir):
            found.append(int(entry.name))
    return sorted(found)


def is_server_on(pid: int, store_dir: Path) -> bool:
    """Whether ``pid`` is a live nats-server run with ``store_dir``'s config file."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    argv = [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]
    if not argv or not Path(argv[0]).name.startswith("nats-server"):
        return False  # also a zombie: its command line is empty
    config = str((Path(store_dir) / CONFIG_NAME).resolve())
    for flag, value in itertools.pairwise(argv):
        if flag in ("-c", "--config", "-config"):
            if not os.path.isabs(value):  # an older Outpost passed the path as given
                with contextlib.suppress(OSError):
                    value = os.path.join(os.readlink(f"/proc/{pid}/cwd"), value)
            if os.path.normpath(value) == config:
                return True
    return False


def parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses; split after the last ")".
    fields = stat.rsplit(")", 1)[-1].split()
    return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_running(store_dir: Path) -> RunningServer | None:
    """The nats-server running on ``store_dir``, or the live process that holds its lock;
    None if neither."""
    store_dir = Path(store_dir)
    record = read_record(store_dir)
    pids = servers_on(store_dir)
    if not pids and not Path("/proc").is_dir():
        # No way to look at processes: trust the record for a store that is locked.
        if record is not None and StoreLock(store_dir).is_taken():
            return RunningServer(record.pid, record.url, record.owner_pid, record.owner, False)
        return None
    if pids:
        # Owned: its parent is the recorded starter (the record is written before the fork,
        # so a server being started is never taken for a leftover).
        owned = [pid for pid in pids if record is not None and parent_of(pid) == record.owner_pid]
        if owned and record is not None:
            return RunningServer(owned[0], record.url, record.owner_pid, record.owner, False)
        return RunningServer(pids[0], None, None, None, True)
    if not StoreLock(store_dir).is_taken():
        return None
    if record is not None and _alive(record.owner_pid):
        return RunningServer(None, None, record.owner_pid, record.owner, False)
    return RunningServer(None, None, None, None, False)


async def stop_leftover(pid: int, store_dir: Path, *, timeout_s: float) -> None:
    """SIGTERM a leftover nats-server of ``store_dir`` (SIGKILL if it lingers) and wait until
    it is gone. The process is checked to be that server before every signal."""
    loop = asyncio.get_running_loop()
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
        if not is_server_on(pid, store_dir):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = loop.time() + wait_s
        while is_server_on(pid, store_dir) and loop.time() < deadline:
            await asyncio.sleep(_POLL_S)
    if is_server_on(pid, store_dir):
        raise StoreInUseError(store_dir, RunningServer(pid, None, None, None, True).describe())


def _describe(running: RunningServer | None) -> str:
    return running.describe() if running else "another process holds the store's lock"


async def take_store(store_dir: Path, lock: StoreLock, *, stop_timeout_s: float) -> None:
    """Lock ``store_dir`` for a server this process is about to start: stop leftovers on it
    first; StoreInUseError if a live process runs a server there."""
    loop = asyncio.get_running_loop()
    grace = loop.time() + _PROBE_GRACE_S
    while not lock.try_acquire():
        running = find_running(store_dir)
        if running is not None and running.leftover and running.pid is not None:
            await stop_leftover(running.pid, store_dir, timeout_s=stop_timeout_s)
            # The leftover held the lock (its starter passed it down): it is free now.
            if not await lock.acquire(timeout_s=5.0):
                raise StoreInUseError(store_dir, _describe(find_running(store_dir)))
            break
        if running is not None and running.pid is not None:
            raise StoreInUseError(store_dir, running.describe(), running)
        if loop.time() >= grace:  # not a prober's moment: a live process holds it
            raise StoreInUseError(store_dir, _describe(running), running)
        await asyncio.sleep(_POLL_S)
    # Ours now. A server still running here never took the lock (an older Outpost's,
    # whose backend is gone): it is a leftover too.
    try:
        for pid in servers_on(store_dir):
            await stop_leftover(pid, store_dir, timeout_s=stop_timeout_s)
    except BaseException:
        lock.release()
        raise
