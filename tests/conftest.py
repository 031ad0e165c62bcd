"""Shared test configuration: hypothesis runs at least 200 examples per property; the
desktop bundle's tests run only when asked (``--bundle``)."""

from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

pytest_plugins = [
    "tests.support.markers",
    "tests.support.nats",
    "tests.support.postgres",
    "tests.support.backend",
    "tests.support.phone",
]

settings.register_profile(
    "outpost",
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("outpost")

PACKAGING = Path(__file__).parent / "packaging"
"""The desktop bundle's tests: run by `make bundle-test` (``pytest --bundle``) on a built
bundle, never by `make test` or a plain ``pytest`` (the bundle takes a minute or two to build
and is not there otherwise)."""

LONGEST_FIRST = (
    "test_conflicts.py",
    "test_conflicts_oracle.py",
    "client/sync/test_convergence.py",
    "client/app/test_app_board_actions.py",
    "backend/lake/test_lake_process.py",
    "backend/bff/test_durability.py",
    "client/app/test_app_e2e.py",
    "backend/bff/test_signin_throttle.py",
    "test_cluster.py",
    "test_conflicts_cluster.py",
    "test_bench.py",
    "backend/bff/test_openapi_fuzz.py",
)
"""The files that take longest (a minute or more of a worker's time in ``make test``), run
first: ``make test``'s workers take a file at a time in the order collected, and one of these
started last would leave the other workers idle while it runs."""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--bundle",
        action="store_true",
        help="run only the desktop bundle's tests (tests/packaging; `make bundle-test`)",
    )


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    inside = collection_path == PACKAGING or PACKAGING in collection_path.parents
    if config.getoption("--bundle"):
        # only the bundle's tests (and the folders above them)
        return not (inside or collection_path in PACKAGING.parents)
    return True if inside else None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    rank = {here / name: index for index, name in enumerate(LONGEST_FIRST)}
    gone = [name for name in rank if not name.exists()]
    if gone:
        raise pytest.UsageError(f"LONGEST_FIRST in tests/conftest.py names no file: {gone}")
    items.sort(key=lambda item: rank.get(item.path, len(rank)))  # stable: the rest in order


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--bundle"):
        return
    for argument in config.args:
        path = Path(argument.split("::")[0]).resolve()
        if path == PACKAGING or PACKAGING in path.parents:
            raise pytest.UsageError(
                "tests/packaging checks the built desktop bundle: run `make bundle-test` "
                "(or pytest --bundle tests/packaging after `make bundle`)"
            )
