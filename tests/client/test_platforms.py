"""Windows and macOS: nothing on the app's or the client's path imports a POSIX-only module.

In a fresh interpreter, a meta-path finder makes ``fcntl``, ``termios`` and ``resource``
unavailable (as on Windows), then every module of ``client/**`` and ``protocol/**`` is
imported (the app's screens and Kivy with them), the ``outpost`` command line is built, and
``outpost client`` runs a command on a real profile. Kivy's own Linux-only input providers
fail to import there and say so: they are Kivy's, guarded by Kivy, never used off Linux.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPOSITORY = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import importlib, importlib.abc, json, pkgutil, sys

BLOCKED = {"fcntl", "termios", "resource"}

class NotOnWindows(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

for name in BLOCKED:
    sys.modules.pop(name, None)
sys.meta_path.insert(0, NotOnWindows())

failed, imported = [], []
for top in ("protocol", "client"):
    package = importlib.import_module(top)
    names = [top] + [m.name for m in pkgutil.walk_packages(package.__path__, top + ".")]
    for name in names:
        try:
            importlib.import_module(name)
            imported.append(name)
        except Exception as exc:
            failed.append(f"{name}: {type(exc).__name__}: {exc}")

import outpost.cli
outpost.cli.build_parser()
code = outpost.cli.main(["client", "--data-dir", sys.argv[1], "board", "create", "Trip"])
loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
print(json.dumps({"failed": failed, "imported": imported, "code": code, "loaded": loaded}))
"""


def test_the_app_and_the_client_import_without_posix_only_modules(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    env |= {"KIVY_NO_ARGS": "1", "KIVY_LOG_MODE": "PYTHON", "KIVY_HOME": str(tmp_path / "kivy")}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "profile")],
        capture_output=True,
        text=True,
        cwd=REPOSITORY,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["failed"] == []
    assert report["loaded"] == [], "a POSIX-only module got in anyway"
    assert {"client.app.main", "client.app.screens.board", "client.sync.engine"} <= set(
        report["imported"]
    )
    assert report["code"] == 0, "outpost client works without them"
