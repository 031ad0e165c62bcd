"""Health, Prometheus metrics and the AsyncAPI document. Each calls one service."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from litestar import Controller, MediaType, Response, get
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from backend import asyncapi
from backend.bff.auth.middleware import PUBLIC
from backend.bff.auth.services import AuthService
from backend.bff.health import HealthProbe
from backend.bff.metrics import Metrics
from backend.bff.openapi import ADMIN as ADMIN_SECURITY
from backend.bff.openapi import errors
from backend.bff.ops.guards import ADMIN
from backend.bff.ops.schemas import HealthReport

__all__ = ["OpsController"]


class OpsController(Controller):
    tags = ("operations",)
    opt = MappingProxyType({PUBLIC: True})

    @get(
        "/v1/health",
        responses={
            200: ResponseSpec(HealthReport, description="ok", generate_examples=False),
            503: ResponseSpec(HealthReport, description="degraded", generate_examples=False),
        },
    )
    async def health(
        self, health_probe: NamedDependency[HealthProbe], caller_is_admin: NamedDependency[bool]
    ) -> Response[dict[str, Any]]:
        """``ok`` or ``degraded``; the details (NATS, database, each consumer's breaker and
        lag) only for a loopback caller or one with the admin token."""
        report = await health_probe.report()
        status_code = 200 if report["status"] == "ok" else 503
        if not caller_is_admin:
            report = {"status": report["status"]}
        return Response(report, status_code=status_code)

    @get(
        "/v1/asyncapi.json",
        media_type=MediaType.JSON,
        responses={
            200: ResponseSpec(
                dict[str, Any], description="The AsyncAPI 3.0 document", generate_examples=False
            )
        },
    )
    async def asyncapi_document(self) -> bytes:
        """The AsyncAPI 3.0 document: what each backend component publishes and consumes."""
        return asyncapi.render()

    @get(
        "/metrics",
        media_type=CONTENT_TYPE_LATEST,
        opt={ADMIN: True},
        security=ADMIN_SECURITY,
        responses=errors(401, 403),
    )
    async def metrics(
        self,
        health_probe: NamedDependency[HealthProbe],
        metrics: NamedDependency[Metrics],
        auth: NamedDependency[AuthService],
    ) -> bytes:
        """Prometheus metrics of this process: loopback callers or the admin token only."""
        metrics.observe_health(await health_probe.report())
        metrics.observe_hashing(auth.hashing)
        return generate_latest(metrics.registry)
