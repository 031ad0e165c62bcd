"""What the breaker calls an outage (it pauses) and what a message failure (it retries)."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError, OperationalError

from backend.consumers.breaker import outage_kind


def test_outage_or_message_failure() -> None:
    assert outage_kind(OperationalError("x", {}, Exception("down"))) == "database"
    assert outage_kind(ConnectionRefusedError()) == "database"
    assert outage_kind(IntegrityError("x", {}, Exception("dup"))) is None
    assert outage_kind(ValueError("bug")) is None
