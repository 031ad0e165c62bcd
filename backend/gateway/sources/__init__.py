"""Inbound sources: one mapping module per outside system (the anti-corruption layer).

Each source turns one verified delivery into domain events, as pure functions (no I/O):
``generic`` (Standard Webhooks signed JSON, tasks by an external key) and ``github``
(issue webhooks). ``SOURCES`` names them for the route ``/v1/inbound/{source}/{board}``.
"""

from __future__ import annotations

from backend.gateway.sources import generic, github
from backend.gateway.sources.common import Delivery, Mapped, Source

__all__ = ["SOURCES", "Delivery", "Mapped", "Source"]

SOURCES: dict[str, Source] = {
    "generic": Source("generic", generic.verify, generic.kind_of, generic.translate),
    "github": Source("github", github.verify, github.kind_of, github.translate),
}
