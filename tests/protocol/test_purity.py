"""protocol/ is pure: importing it loads no I/O, network, database or framework module."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

FORBIDDEN = {
    "asyncio",
    "socket",
    "ssl",
    "select",
    "selectors",
    "subprocess",
    "threading",
    "multiprocessing",
    "concurrent",
    "sqlite3",
    "http",
    "urllib.request",
    "email",
    "logging",
    "litestar",
    "nats",
    "sqlalchemy",
    "aiosqlite",
    "asyncpg",
    "httpx",
    "kivy",
    "uvicorn",
    "client",
    "backend",
}


@pytest.mark.integration
def test_importing_protocol_loads_no_io_or_framework_module() -> None:
    script = (
        "import json, sys, protocol, protocol.jsonschema; print(json.dumps(sorted(sys.modules)))"
    )
    # -I: isolated, so no site customisation or PYTHONSTARTUP loads anything on our behalf.
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-I", "-c", script],
            check=True,
            capture_output=True,
            text=True,
            cwd=str(__import__("pathlib").Path(__file__).parents[2]),
        ).stdout
    )
    found = {m for m in loaded if m in FORBIDDEN or m.split(".")[0] in FORBIDDEN}
    assert not found, f"protocol imports {sorted(found)}"
