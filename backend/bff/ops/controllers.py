"""Health, Prometheus metrics and the AsyncAPI document. Each calls one service."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from litestar import Controller, MediaType, Response, get
from litestar.di import NamedDependency
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from backend import asyncapi
from backend.bff.auth.middleware import PUBLIC
from backend.bff.health import HealthProbe
from backend.bff.metrics import Metrics

__all__ = ["OpsController"]


class OpsController(Controller):
    tags = ("operations",)
    opt = MappingProxyType({PUBLIC: True})

    @get("/v1/health")
    async def health(self, health_probe: NamedDependency[HealthProbe]) -> Response[dict[str, Any]]:
        report = await health_probe.report()
        return Response(report, status_code=200 if report["status"] == "ok" else 503)

    @get("/v1/asyncapi.json", media_type=MediaType.JSON)
    async def asyncapi_document(self) -> bytes:
        """The AsyncAPI 3.0 document: what each backend component publishes and consumes."""
        return asyncapi.render()

    @get("/metrics", media_type=CONTENT_TYPE_LATEST)
    async def metrics(
        self, health_probe: NamedDependency[HealthProbe], metrics: NamedDependency[Metrics]
    ) -> bytes:
        report = await health_probe.report()
        metrics.observe_health(report)
        return generate_latest(metrics.registry)
