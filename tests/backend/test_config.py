"""Settings: flags first, then OUTPOST_* variables, then defaults."""

from __future__ import annotations

from pathlib import Path

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


def test_settings_reach_the_child_unchanged() -> None:
    settings = Settings.from_env(
        {"OUTPOST_TOKEN_TTL_S": "60", "OUTPOST_WEBHOOK_ALLOW": "*.example.com"},
        data_dir=Path("/srv/outpost"),
        nats_url="nats://a:4222,nats://b:4222",
    )
    assert Settings.from_env(settings.to_env()) == settings
    assert settings.apart_names == ("workload", "lake", "gateway", "orchestrator")
    assert settings.beside_names == ("projector",)
    only = Settings.from_env({"OUTPOST_COMPONENTS": "projector,lake"})
    assert (only.beside_names, only.apart_names) == (("projector",), ("lake",))
