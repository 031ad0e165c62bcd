"""What the BFF's route handlers are given: its services and the caller, by ``Provide``.

Handlers name what they need (``auth: NamedDependency[AuthService]``) and Litestar hands it
over; nothing looks services up on the request. The principal is the user that the bearer
middleware (``backend.bff.auth.middleware``) authenticated for this request.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from litestar import Request
from litestar.di import Provide

from backend.bff.auth.services import AuthService
from backend.bff.auth.tokens import Principal
from backend.bff.health import HealthProbe
from backend.bff.metrics import Metrics
from backend.bff.ops.guards import AdminGate
from backend.bff.sync.live import ChangeHub
from backend.bff.sync.pull import PullService
from backend.bff.sync.push import PushService
from backend.config import Settings
from backend.errors import StreamUnavailable
from backend.gateway.services import GatewayService
from backend.orchestrator.services import ReminderService

if TYPE_CHECKING:
    from backend.bff.app import Services

__all__ = ["dependencies", "provide_principal"]


def provide_principal(request: Request[Principal, Any, Any]) -> Principal:
    """The user of the bearer token, as the bearer middleware authenticated it."""
    return request.user


def dependencies(services: Services, gate: AdminGate) -> dict[str, Provide]:
    """One provider per service. Each reads ``services`` when a request needs it, so an app
    built only to render its OpenAPI document needs nothing but the settings."""

    def caller_is_admin(request: Request[Any, Any, Any]) -> bool:
        """Does the caller pass the admin gate (loopback, or the admin token)?"""
        return gate.allows(request)

    def settings() -> Settings:
        return services.settings

    def auth() -> AuthService:
        return services.auth

    def push_service() -> PushService:
        return services.push

    def pull_service() -> PullService:
        return services.pull

    def hub() -> ChangeHub:
        return services.hub

    def health_probe() -> HealthProbe:
        return services.health

    def metrics() -> Metrics:
        return services.metrics

    def stopping() -> asyncio.Event:
        return services.stopping

    def gateway() -> GatewayService:
        if services.gateway is None:
            raise StreamUnavailable("the gateway is not available in this process", retry_after=5)
        return services.gateway

    def reminders() -> ReminderService:
        if services.reminders is None:
            raise StreamUnavailable(
                "the reminder settings are not available in this process", retry_after=5
            )
        return services.reminders

    providers = [
        settings,
        auth,
        push_service,
        pull_service,
        hub,
        health_probe,
        metrics,
        stopping,
        gateway,
        reminders,
    ]
    named: dict[str, Provide] = {fn.__name__: Provide(fn, sync_to_thread=False) for fn in providers}
    named["caller_is_admin"] = Provide(caller_is_admin, sync_to_thread=False)
    return {**named, "principal": Provide(provide_principal, sync_to_thread=False)}
