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
