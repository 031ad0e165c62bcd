"""The BFF: the Litestar application, its routes and its edge concerns.

Routes are thin: each calls one service. The edge concerns live here once: bearer auth,
per-user rate limits (429 with Retry-After), the 1 MiB body limit (413), the protocol range
(426), compression of large pull responses, ``Cache-Control: private, no-store`` on pulls,
errors as ``{"status_code", "detail"}`` with no stack trace, health and metrics.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
from litestar import Litestar, MediaType, Request, Response, get, post
from litestar.config.compression import CompressionConfig
from litestar.datastructures import CacheControlHeader
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.params import Parameter
from litestar.response import ServerSentEvent
from litestar.status_codes import HTTP_201_CREATED
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import DBAPIError

from backend import asyncapi
from backend.bff.auth.schemas import Credentials, LoginCredentials, RefreshRequest, Session
from backend.bff.auth.services import AuthService
from backend.bff.auth.tokens import Principal
from backend.bff.health import HealthProbe
from backend.bff.metrics import Metrics
from backend.bff.rate_limit import RateLimiter
from backend.bff.sync.intake import MAX_JSON_DEPTH, decode_push_body
from backend.bff.sync.live import ChangeHub
from backend.bff.sync.pull import Page, PullService
from backend.bff.sync.push import PushService, system_ms
from backend.bff.sync.schemas import PushResponse, SyncInfo
from backend.config import Settings
from backend.errors import BackendError, Unauthorized, UnsupportedProtocol
from protocol import PROTOCOL_VERSIONS

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    auth: AuthService
    push: PushService
    pull: PullService
    hub: ChangeHub
    health: HealthProbe
    metrics: Metrics = field(default_factory=Metrics)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.rate_limiter = RateLimiter(
            self.settings.rate_limit_per_s, self.settings.rate_limit_burst
        )


def _services(request: Request[Any, Any, Any]) -> Services:
    services: Services = request.app.state.services
    return services


def _principal(request: Request[Any, Any, Any]) -> Principal:
    """The user of a bearer token, after the per-user rate limit."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("missing bearer token: sign in first")
    services = _services(request)
    principal = services.auth.authenticate(token.strip())
    services.rate_limiter.check(principal.user_id)
    return principal


def _check_protocol(version: int) -> None:
    low, high = PROTOCOL_VERSIONS
    if not low <= version <= high:
        raise UnsupportedProtocol(
            f"protocol {version} is not supported: this server speaks {low}..{high}; update the app"
        )


@get("/v1/sync/info")
async def sync_info(request: Request[Any, Any, Any]) -> SyncInfo:
    services = _services(request)
    _, generation = await services.pull.status()
    settings = services.settings
    return SyncInfo(
        protocols=list(PROTOCOL_VERSIONS),
        max_batch_events=settings.max_batch_events,
        max_batch_bytes=settings.max_batch_bytes,
        generation=generation,
    )


@post("/v1/auth/signup", status_code=HTTP_201_CREATED)
async def signup(request: Request[Any, Any, Any], data: Credentials) -> Session:
    return await _services(request).auth.signup(data)


@post("/v1/auth/token", status_code=200)
async def token(request: Request[Any, Any, Any], data: LoginCredentials) -> Session:
    return await _services(request).auth.login(data)


@post("/v1/auth/refresh", status_code=200)
async def refresh(request: Request[Any, Any, Any], data: RefreshRequest) -> Session:
    return await _services(request).auth.refresh(data.refresh_token)


@post("/v1/sync/push", status_code=200)
async def push(request: Request[Any, Any, Any]) -> PushResponse:
    """Push a batch of events: one result per event, in order (SPEC section 6)."""
    principal = _principal(request)
    services = _services(request)
    started = time.perf_counter()
    body = decode_push_body(await request.body())
    _check_protocol(body.protocol)
    results = await services.push.push(principal, body)
    watermark, generation = await services.pull.status_or_last()
    services.metrics.observe_push(results, time.perf_counter() - started)
    return PushResponse(results, system_ms(), watermark, generation)


@get(
    "/v1/sync/pull",
    cache_control=CacheControlHeader(private=True, no_store=True),
)
async def pull(
    request: Request[Any, Any, Any],
    cursor: str | None = None,
    limit: int = Parameter(default=500, ge=1, le=1000),
    protocol: int = Parameter(default=1),
) -> Response[bytes]:
    """The changes the user can see after ``cursor`` (none: everything, a bootstrap)."""
    principal = _principal(request)
    _check_protocol(protocol)
    services = _services(request)
    started = time.perf_counter()
    page: Page = await services.pull.pull(principal, cursor, limit)
    services.metrics.observe_pull(len(page.changes), time.perf_counter() - started)
    body = {
        "changes": page.changes,
        "cursor": page.cursor,
        "has_more": page.has_more,
        "watermark": page.watermark,
        "server_time": system_ms(),
        "generation": page.generation,
        "reset": page.reset,
    }
    return Response(msgspec.json.encode(body), media_type=MediaType.JSON)


@get("/v1/sync/live")
async def live(request: Request[Any, Any, Any]) -> ServerSentEvent:
    """Server-Sent Events: ``poke`` with the watermark when something the user sees changed."""
    principal = _principal(request)
    services = _services(request)
    stream = services.hub.stream(
        principal.username, services.settings.live_keepalive_s, services.stopping
    )
    return ServerSentEvent(stream)


@get("/v1/health")
async def health(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    report = await _services(request).health.report()
    return Response(report, status_code=200 if report["status"] == "ok" else 503)


@get("/v1/asyncapi.json", media_type=MediaType.JSON)
async def asyncapi_document() -> bytes:
    """The AsyncAPI 3.0 document: what each backend component publishes and consumes."""
    return asyncapi.render()


@get("/metrics", media_type=CONTENT_TYPE_LATEST)
async def metrics(request: Request[Any, Any, Any]) -> bytes:
    services = _services(request)
    report = await services.health.report()
    services.metrics.observe_health(report)
    return generate_latest(services.metrics.registry)


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
    elif isinstance(exc, UnicodeDecodeError) or _nested_too_deep(exc):
        # Litestar decodes a `data` body with msgspec and turns only its DecodeError into
        # a 400: bytes that are not UTF-8, or JSON nested a thousand deep, come here as is.
        status, detail = 400, f"the request body cannot be read: {_unreadable_body(exc)}"
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


def _nested_too_deep(exc: Exception) -> bool:
    """msgspec's RecursionError: JSON nested deeper than the interpreter's stack allows."""
    return isinstance(exc, RecursionError) and "deserializing" in str(exc)


def _unreadable_body(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 ({exc.reason})"
    return f"JSON nested too deep (at most {MAX_JSON_DEPTH} levels)"


def create_app(services: Services) -> Litestar:
    settings = services.settings
    app = Litestar(
        route_handlers=[
            sync_info,
            signup,
            token,
            refresh,
            push,
            pull,
            live,
            health,
            asyncapi_document,
            metrics,
        ],
        exception_handlers={Exception: _error},
        request_max_body_size=settings.max_batch_bytes,
        compression_config=CompressionConfig(
            backend="gzip", minimum_size=4096, gzip_compress_level=6, exclude="/v1/sync/live"
        ),
        openapi_config=OpenAPIConfig(
            title="Outpost BFF",
            version="1.0.0",
            description="The sync contract v1 of SPEC section 6.",
        ),
        on_shutdown=[lambda: services.stopping.set()],
    )
    app.state.services = services
    return app
