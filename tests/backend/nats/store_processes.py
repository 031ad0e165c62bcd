"""What runs on a NATS store, seen from outside: the test's own oracle, independent of
``backend.nats.ownership``."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

CONFIG = "nats-server.conf"


def nats_servers_on(store: Path) -> list[int]:
    """Pids of the live nats-server processes started with ``store``'s config file."""
    config = str((store / CONFIG).resolve())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        named = os.path.basename(argv[0]).startswith(b"nats-server")
        if named and config.encode() in argv:
            found.append(int(entry.name))
    return sorted(found)


def wait_for_servers(store: Path, count: int, *, timeout_s: float = 20) -> list[int]:
    """Poll until exactly ``count`` servers run on ``store``; AssertionError naming them if not."""
    deadline = time.monotonic() + timeout_s
    while len(pids := nats_servers_on(store)) != count:
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{len(pids)} nats-server(s) on {store} after {timeout_s:.0f}s, "
                f"not {count}: pids {pids}"
            )
        time.sleep(0.05)
    return pids


def starts_logged(store: Path) -> int:
    """How many nats-servers were ever started on ``store`` (each logs this line once)."""
    log = store / "nats-server.log"
    return log.read_text(errors="replace").count("Starting nats-server") if log.exists() else 0


def configured_url(store: Path) -> str:
    """The client URL in the store's config, as the last server started there listened."""
    match = re.search(r'^listen:\s*"([^"]+)"', (store / CONFIG).read_text(), re.MULTILINE)
    assert match, f"no listen line in {store / CONFIG}"
    return f"nats://{match.group(1)}"
