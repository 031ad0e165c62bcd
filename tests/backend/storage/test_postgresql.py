"""The storage suite on PostgreSQL: a schema per component, in a fresh database per test."""

from __future__ import annotations

import pytest

from tests.backend.storage.suite import StorageSuite


@pytest.mark.integration
class TestPostgreSQL(StorageSuite):
    @pytest.fixture
    def db_url(self, pg_url: str) -> str | None:
        return pg_url
