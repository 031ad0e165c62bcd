"""A virtual X display for tests that open windows: ``Xvfb`` on a display no one uses.

A display number is free when it has neither a lock file (``/tmp/.X<n>-lock``) nor a
socket (``/tmp/.X11-unix/X<n>``). Two test runs can still pick the same number at the same
moment; Xvfb's own lock settles that (the second server exits at once) and the next free
number is tried. ``-displayfd`` tells when the server accepts connections. The display
is given to child processes through ``env``; the test's own environment is left alone.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

FIRST_DISPLAY = 90
LAST_DISPLAY = 400
SOCKETS = Path("/tmp/.X11-unix")


def display_in_use(number: int) -> bool:
    return Path(f"/tmp/.X{number}-lock").exists() or (SOCKETS / f"X{number}").exists()


class Xvfb:
    def __init__(self, width: int = 1280, height: int = 800, log: Path | None = None) -> None:
        self.size = (width, height)
        self.log = log
        self.number: int | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def display(self) -> str:
        assert self.number is not None, "Xvfb is not running"
        return f":{self.number}"

    @property
    def env(self) -> dict[str, str]:
        """What a child process needs to draw on this display."""
        return {"DISPLAY": self.display}

    def start(self, timeout: float = 20) -> Xvfb:
        binary = shutil.which("Xvfb")
        if binary is None:
            pytest.fail("Xvfb is not installed: `make test` installs it (apt-get install xvfb)")
        for number in range(FIRST_DISPLAY, LAST_DISPLAY):
            if not display_in_use(number) and self._try(binary, number, timeout):
                return self
        pytest.fail(f"no free X display between :{FIRST_DISPLAY} and :{LAST_DISPLAY}")

    def _try(self, binary: str, number: int, timeout: float) -> bool:
        width, height = self.size
        ready, announce = os.pipe()
        command = [binary, f":{number}", "-screen", "0", f"{width}x{height}x24"]
        command += ["-nolisten", "tcp", "-displayfd", str(announce)]
        try:
            with (self.log or Path(os.devnull)).open("ab") as log:
                process = subprocess.Popen(
                    command, pass_fds=(announce,), stdout=log, stderr=log, start_new_session=True
                )
        finally:
            os.close(announce)  # Xvfb has its own copy
        try:
            answer = _read_line(ready, timeout)
        finally:
            os.close(ready)
        if answer == str(number):
            self.number, self.process = number, process
            return True
        _end(process)
        if answer is None:
            pytest.fail(f"Xvfb on :{number} was not ready within {timeout}s (see {self.log})")
        return False  # it exited: another server took the number first; try the next

    def stop(self) -> None:
        if self.process is not None:
            _end(self.process)
            self.process = None


def _read_line(fd: int, timeout: float) -> str | None:
    """What Xvfb writes to ``-displayfd`` once ready; "" if it exited, None on timeout."""
    deadline = time.monotonic() + timeout
    data = b""
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        chunk = os.read(fd, 64)
        if not chunk:
            break
        data += chunk
    return data.decode().strip()


def _end(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@contextmanager
def running_xvfb(log: Path | None = None) -> Iterator[Xvfb]:
    server = Xvfb(log=log).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def xvfb(tmp_path: Path) -> Iterator[Xvfb]:
    """A virtual display for the test; its ``env`` goes to the processes that draw."""
    with running_xvfb(tmp_path / "xvfb.log") as server:
        yield server
