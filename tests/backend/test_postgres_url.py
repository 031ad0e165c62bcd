"""The test PostgreSQL fixture's URLs, with no server: an external one is never stopped."""

from __future__ import annotations

import pytest

from tests.support.postgres import TestPostgres, TestPostgresError


def test_an_external_server_cannot_be_stopped() -> None:
    external = TestPostgres(external_url="postgresql+asyncpg://someone@127.0.0.1:1/outpost")
    assert external.url("other") == "postgresql+asyncpg://someone@127.0.0.1:1/other"
    with pytest.raises(TestPostgresError, match="OUTPOST_TEST_PG_URL"):
        external.stop()
