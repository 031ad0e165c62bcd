"""The BFF: the Litestar application, assembled from its controllers and its edge concerns.

Routes live in one controller per bounded context (``auth/``, ``sync/``, ``ops/``), each
handler one call to a service it is given (``dependencies.py``). Handlers declare what they
are in their ``opt`` (public, which throttle, operators only) and the edge concerns are
applied here once: bearer auth (middleware; routes are private unless public), the sign-in
throttle (middleware), the per-user rate limit, the sign-up limit and the admin gate
(guards), all answering 429 with Retry-After or 401/403; the 1 MiB body limit (413),
compression of large responses, and errors as ``{"status_code", "detail"}`` with no stack
trace.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from litestar import Litestar, Request, Response
from litestar.config.compression import CompressionConfig
from litestar.exceptions import HTTPException
from litestar.middleware import DefineMiddleware
from sqlalchemy.exc import DBAPIError

from backend.bff.auth.controllers import AuthController
from backend.bff.auth.middleware import BearerAuthMiddleware
from backend.bff.auth.services import AuthService
from backend.bff.auth.tokens import Principal
from backend.bff.dependencies import dependencies
from backend.bff.health import HealthProbe
from backend.bff.limits.address import ClientAddresses
from backend.bff.limits.guards import PerUserRateLimit, SignUpLimit, UserCheckLimit
from backend.bff.limits.signin import SignInThrottle
from backend.bff.limits.store import LimitStore
from backend.bff.metrics import Metrics
from backend.bff.openapi import complete as complete_openapi
from backend.bff.openapi import config as openapi_config
from backend.bff.ops.controllers import OpsController
from backend.bff.ops.guards import AdminGate
from backend.bff.sync.controllers import SyncController
from backend.bff.sync.live import ChangeHub
from backend.bff.sync.pull import PullService
from backend.bff.sync.push import PushService
from backend.bff.users import UsersController
from backend.config import Settings
from backend.errors import BackendError
from backend.gateway.controllers import InboundController, RegistrationController
from backend.gateway.services import GatewayService
from backend.orchestrator.controllers import ReminderController
from backend.orchestrator.services import ReminderService

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    auth: AuthService
    push: PushService
    pull: PullService
    hub: ChangeHub
    health: HealthProbe
    limits: LimitStore
    gateway: GatewayService | None = None
    """The gateway's registration and inbound routes (None: answered 503)."""
    reminders: ReminderService | None = None
    """The boards' reminder lead times, the orchestrator's (None: answered 503)."""
    metrics: Metrics = field(default_factory=Metrics)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


def _error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    headers: dict[str, str] = {}
    if isinstance(exc, BackendError):
        status, detail = exc.status_code, exc.detail
        if exc.retry_after is not None:
            headers["Retry-After"] = str(exc.retry_after)
    elif isinstance(exc, (DBAPIError, OSError)):
        log.warning("database unavailable on %s: %s", request.url.path, exc)
        status, detail = 503, "the database is unavailable: try again shortly"
        headers["Retry-After"] = "5"
    elif isinstance(exc, HTTPException):
        status, detail = exc.status_code, exc.detail
        headers.update(exc.headers or {})
        body: dict[str, Any] = {"status_code": status, "detail": detail}
        if exc.extra:
            body["extra"] = exc.extra
        return Response(body, status_code=status, headers=headers)
    else:
        log.exception("unhandled error on %s", request.url.path)
        status, detail = 500, "internal error: it was logged; try again later"
    return Response({"status_code": status, "detail": detail}, status_code=status, headers=headers)


def create_app(services: Services) -> Litestar:
    settings = services.settings
    addresses = ClientAddresses(settings.trusted_proxies)
    gate = AdminGate(addresses, settings.admin_token)

    async def authenticate(token: str) -> Principal:
        return await services.auth.authenticate(token)

    def limits() -> LimitStore:
        return services.limits

    app = Litestar(
        route_handlers=[
            AuthController,
            SyncController,
            OpsController,
            RegistrationController,
            InboundController,
            UsersController,
            ReminderController,
        ],
        dependencies=dependencies(services, gate),
        middleware=[
            DefineMiddleware(BearerAuthMiddleware, authenticate=authenticate),
            SignInThrottle(limits, addresses, settings),
        ],
        guards=[
            PerUserRateLimit(limits, settings),
            SignUpLimit(limits, addresses, settings),
            UserCheckLimit(limits, settings),
            gate.guard,
        ],
        exception_handlers={Exception: _error},
        request_max_body_size=settings.max_batch_bytes,
        # Level 1: a pull page of 1,000 tasks compresses in a fifth of level 6's time,
        # to within a fifth of its size (on the bench's pages: 58 KB against 49 KB).
        compression_config=CompressionConfig(
            backend="gzip", minimum_size=4096, gzip_compress_level=1, exclude="/v1/sync/live"
        ),
        openapi_config=openapi_config(),
        on_shutdown=[lambda: services.stopping.set()],
    )
    complete_openapi(app.openapi_schema)
    return app
