"""Markers that tell the truth, checked on every run.

A test marked ``integration`` must start or reach a real service while it runs (its fixtures
included, even one set up earlier for another test): start a process, or connect a socket.
A test that does either must be marked, so ``pytest -m "not integration"`` runs only tests
that need nothing but this interpreter and its files. The check watches ``subprocess``
(which asyncio's subprocesses use too) and ``socket.socket.connect``; a wrong marker fails
the test and says which way it is wrong.
"""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Generator
from typing import Any

import pytest

_seen: list[str] = []
_count = 0
_lock = threading.Lock()
_service_fixtures: set[tuple[str, str]] = set()
"""Fixtures (by where they are defined, and their name) whose setup started or reached a
service: a test that uses one uses it too, even when the fixture (module- or
session-scoped) was set up for an earlier test. Keyed by definition, not by name alone: a
test module may define a fixture of the same name as another's that reaches nothing."""


def _note(what: str) -> None:
    global _count
    with _lock:
        _count += 1
        if len(_seen) < 5:
            _seen.append(what)


def _install() -> None:
    connect = socket.socket.connect
    connect_ex = socket.socket.connect_ex
    execute_child = subprocess.Popen._execute_child  # type: ignore[attr-defined]

    def recording_connect(self: socket.socket, address: Any) -> None:
        _note(f"connects to {address!r}")
        connect(self, address)

    def recording_connect_ex(self: socket.socket, address: Any) -> int:
        _note(f"connects to {address!r}")
        return connect_ex(self, address)

    def recording_execute_child(self: subprocess.Popen[Any], args: Any, *rest: Any) -> Any:
        _note(f"starts {str(args)[:100]}")
        return execute_child(self, args, *rest)

    socket.socket.connect = recording_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = recording_connect_ex  # type: ignore[method-assign]
    subprocess.Popen._execute_child = recording_execute_child  # type: ignore[attr-defined]


def pytest_configure(config: pytest.Config) -> None:
    _install()


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[None, Any, Any]:
    before = _count
    result = yield
    if _count > before:
        _service_fixtures.add(_key(fixturedef))
    return result


def _key(fixturedef: pytest.FixtureDef[Any]) -> tuple[str, str]:
    return (fixturedef.baseid, fixturedef.argname)


def _used_fixtures(item: pytest.Item) -> list[tuple[str, tuple[str, str]]]:
    """(name, definition) of every fixture the test uses: the definition closest to it."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return []
    return [
        (name, _key(definitions[-1]))
        for name, definitions in info.name2fixturedefs.items()
        if definitions
    ]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    with _lock:
        _seen.clear()
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    result = yield
    with _lock:
        seen = list(_seen)
    used = sorted(name for name, key in _used_fixtures(item) if key in _service_fixtures)
    seen += [f"uses the fixture {name!r}, which does" for name in used]
    marked = item.get_closest_marker("integration") is not None
    if marked and not seen:
        pytest.fail(
            "marked integration, but neither starts nor reaches a service: drop the marker",
            pytrace=False,
        )
    if seen and not marked:
        pytest.fail(
            f"reaches a service ({'; '.join(seen)}): mark it @pytest.mark.integration",
            pytrace=False,
        )
    return result
