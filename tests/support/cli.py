"""Running an ``outpost`` command as a child process, as CI and the make targets do."""

from __future__ import annotations

import subprocess
import sys


def outpost(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``python -m outpost ARGS``: its exit code and its output, never raising on failure."""
    return subprocess.run(
        [sys.executable, "-m", "outpost", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def conflicts_tool(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return outpost("conflicts", *args, timeout=timeout)
