"""Bodies of the operations routes, as documented."""

from __future__ import annotations

from typing import Any, Literal

import msgspec


class HealthReport(msgspec.Struct, omit_defaults=True):
    """``status`` for everyone; the rest for loopback callers and the admin token."""

    status: Literal["ok", "degraded"]
    nats: Literal["connected", "disconnected"] | None = None
    database: Literal["ok", "unavailable"] | None = None
    projector_lag: int | None = None
    consumers: dict[str, dict[str, Any]] | None = None
    """Per stream consumer: breaker, standby, lag_events, lag_ms, last_error, faults,
    position, fetch."""
