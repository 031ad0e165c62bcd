"""Settings: flags first, then OUTPOST_* variables, then defaults."""

from __future__ import annotations

import pytest

from backend.config import Settings


def test_settings_come_from_flags_then_environment() -> None:
    settings = Settings.from_env(
        {"OUTPOST_PORT": "9000", "OUTPOST_TOKEN_TTL_S": "60", "OUTPOST_RATE_LIMIT_PER_S": "2.5"},
        port=9100,
    )
    assert (settings.port, settings.token_ttl_s, settings.rate_limit_per_s) == (9100, 60, 2.5)
    with pytest.raises(ValueError, match="OUTPOST_PORT='x' is not a valid int"):
        Settings.from_env({"OUTPOST_PORT": "x"})
