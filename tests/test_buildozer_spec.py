"""buildozer.spec (Android, issue 16) against what the app imports: not built here (no
Android SDK), so what can be checked is checked here.

- Every library the client and protocol packages import, and every library those need in
  turn (as their installed metadata says, for the Python python-for-android puts on the
  device), is a requirement; Kivy's own needs are its recipe's.
- The standard modules that exist on Android only when their recipe is listed are (sqlite3,
  ssl: the sqlite3 and openssl recipes).
- No requirement is stale: each is needed, or is one of those recipes, or python3.
- The APK's source leaves the backend and the tests out, its version is pyproject's, and its
  entry (main.py) is ``outpost app``.
"""

from __future__ import annotations

import ast
import configparser
import functools
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPOSITORY = Path(__file__).resolve().parents[1]
SHIPPED = ("client", "protocol")
LOCAL = {"client", "protocol", "outpost"}
DEVICE_PYTHON = "3.14"
"""The Python of python-for-android v2026.05.09 (buildozer.spec's p4a.branch)."""
STANDARD_BY_RECIPE = {"sqlite3": "sqlite3", "ssl": "openssl"}
"""Standard modules that python-for-android builds only when their recipe is listed."""
BRINGS_ITS_OWN = {"kivy"}
"""Libraries whose recipe brings what they need."""


def spec() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(REPOSITORY / "buildozer.spec", encoding="utf-8")
    return parser


def requirements() -> set[str]:
    listed = spec()["app"]["requirements"].split(",")
    return {canonicalize_name(Requirement(item.strip()).name) for item in listed}


@functools.cache
def imported_modules() -> frozenset[str]:
    """The top-level names the shipped packages import."""
    names: set[str] = set()
    for package in SHIPPED:
        for path in (REPOSITORY / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names.add(node.module.split(".")[0])
    return frozenset(names)


@functools.cache
def needed_distributions() -> frozenset[str]:
    """The distributions the imports come from, and what they require, transitively."""
    by_module = importlib.metadata.packages_distributions()
    third_party = imported_modules() - LOCAL - set(sys.stdlib_module_names)
    pending = [by_module[name][0] for name in sorted(third_party)]
    environment = {"python_version": DEVICE_PYTHON, "python_full_version": f"{DEVICE_PYTHON}.0"}
    needed: set[str] = set()
    while pending:
        name = canonicalize_name(pending.pop())
        if name in needed:
            continue
        needed.add(name)
        if name in BRINGS_ITS_OWN:
            continue
        for line in importlib.metadata.requires(name) or []:
            requirement = Requirement(line)
            marker = requirement.marker
            if marker is None or marker.evaluate({**environment, "extra": ""}):
                pending.append(requirement.name)
    return frozenset(needed)


def test_every_library_the_app_imports_and_what_it_needs_is_a_requirement() -> None:
    needed = needed_distributions()
    assert {"kivy", "httpx", "msgspec", "platformdirs", "anyio", "h11"} <= needed
    assert needed - requirements() == set()


def test_standard_modules_built_by_a_recipe_have_it_listed() -> None:
    imported = imported_modules() | {"ssl"}  # ssl: httpx's, for https to the server
    for module, recipe in STANDARD_BY_RECIPE.items():
        assert module in imported
        assert recipe in requirements(), f"{module} needs the {recipe} recipe"


def test_no_requirement_is_stale() -> None:
    known = needed_distributions() | set(STANDARD_BY_RECIPE.values()) | {"python3"}
    assert requirements() - known == set()


def test_the_apk_leaves_the_backend_and_the_tests_out_and_opens_the_app() -> None:
    app = spec()["app"]
    excluded = {item.strip() for item in app["source.exclude_dirs"].split(",")}
    assert {"backend", "tests", "outpost/bench", "outpost/conflicts"} <= excluded
    assert app["source.dir"] == "."
    entry = (REPOSITORY / "main.py").read_text(encoding="utf-8")
    assert "from outpost.cli import app_main" in entry
    assert "sys.exit(app_main([]))" in entry


def test_the_version_is_the_one_in_pyproject() -> None:
    app = spec()["app"]
    pyproject = (REPOSITORY / "pyproject.toml").read_text(encoding="utf-8")
    found = re.search(app["version.regex"], pyproject, re.MULTILINE)
    assert found is not None
    assert found.group(1) == tomllib.loads(pyproject)["project"]["version"]
