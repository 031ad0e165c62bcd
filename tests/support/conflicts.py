"""Running ``outpost conflicts`` as a child process, as CI and ``make conflicts`` do."""

from __future__ import annotations

import subprocess
import sys


def conflicts_tool(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "outpost", "conflicts", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
