"""A component whose database a newer Outpost migrated refuses to start, and says why."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from backend.db import Database
from tests.support.backend import ControlledNats


@pytest.mark.integration
def test_a_component_refuses_to_start_on_a_database_from_a_newer_outpost(
    tmp_path: Path, controlled_nats: ControlledNats
) -> None:
    data = tmp_path / "data"
    data.mkdir()

    async def migrated_by_a_newer_outpost() -> None:
        db = Database.for_component("workload", data_dir=data, url=None)
        try:
            await db.migrate()
            async with db.write() as conn:
                await conn.execute(
                    text("UPDATE alembic_version SET version_num = 'workload_0042_x'")
                )
        finally:
            await db.dispose()

    asyncio.run(migrated_by_a_newer_outpost())
    command = [
        sys.executable, "-m", "outpost", "backend", "consume", "--components", "workload",
        "--data-dir", str(data), "--nats-url", controlled_nats.url,
    ]  # fmt: skip
    refused = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 1, refused.stderr
    assert (
        "outpost backend: the workload database is at revision 'workload_0042_x', which this "
        "Outpost does not know"
    ) in refused.stderr
    assert "Traceback" not in refused.stderr
