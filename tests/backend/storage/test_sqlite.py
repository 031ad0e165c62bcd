"""The storage suite on SQLite: a file per component under the data folder."""

from __future__ import annotations

import pytest

from tests.backend.storage.suite import StorageSuite


class TestSQLite(StorageSuite):
    @pytest.fixture
    def db_url(self) -> str | None:
        return None
