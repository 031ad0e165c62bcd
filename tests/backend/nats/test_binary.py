"""The embedded nats-server's binary and address, before anything starts."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from backend.nats import EmbeddedNats
from backend.nats.embedded import find_binary


def test_find_binary_prefers_the_one_beside_the_interpreter() -> None:
    assert find_binary() == str(Path(sys.executable).parent / "nats-server")


def test_a_host_that_is_not_loopback_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="loopback"):
        EmbeddedNats(tmp_path / "nats", host="0.0.0.0")
