"""``outpost backend`` as a child process: start it, wait until it answers, stop it.

One launcher for everything that runs a backend beside itself: ``make run``, the
benchmarks and the tests. The child's output goes to ``<data dir>/backend.log``.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from backend.errors import LaunchError
from backend.ports import free_port

__all__ = ["BackendLauncher", "LaunchError", "answers"]


def answers(url: str) -> bool:
    """Does a backend answer ``GET /v1/sync/info`` at ``url``? Not if something else
    listens there (a nats-server says ``INFO {...}``, no HTTP status line)."""
    try:
        with urllib.request.urlopen(f"{url}/v1/sync/info", timeout=1) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError, http.client.HTTPException):
        return False


class BackendLauncher:
    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        nats_url: str | None = None,
        db_url: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.nats_url = nats_url
        self.db_url = db_url
        self.env = {**os.environ, **(env or {})}
        self.log = data_dir / "backend.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        command = [sys.executable, "-m", "outpost", "backend", "--data-dir", str(self.data_dir)]
        command += ["--port", str(self.port)]
        if self.nats_url:
            command += ["--nats-url", self.nats_url]
        if self.db_url:
            command += ["--db-url", self.db_url]
        return command

    def start(self, timeout_s: float = 60) -> None:
        """Start the child and wait until it answers; LaunchError if it does not."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=self.env
            )
        deadline = time.monotonic() + timeout_s
        while not answers(self.url):
            if self.process.poll() is not None:
                raise LaunchError(
                    f"the backend exited with {self.process.returncode}:\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise LaunchError(f"the backend did not answer in {timeout_s:.0f}s:\n{self.tail()}")
            time.sleep(0.1)

    def stop(self, timeout_s: float = 20) -> int | None:
        """SIGTERM, and wait; a backend that does not stop dumps its stacks to its log
        (SIGUSR1) and is killed. Returns its exit status (None if it never ran)."""
        process = self.process
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGUSR1)
            time.sleep(1)
            process.kill()
            process.wait(5)
            raise LaunchError(f"the backend did not stop on SIGTERM:\n{self.tail()}") from None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)

    def tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
