"""The sync routes of SPEC section 6: info, push, pull and live. Each calls one service.

The bearer middleware has authenticated the caller (``principal``) and the per-user rate
limit has let the request through before a handler runs; the body limit (413) is the app's.
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Annotated, Any

from litestar import Controller, MediaType, Request, Response, get, post
from litestar.datastructures import CacheControlHeader
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import QueryParameter
from litestar.response import ServerSentEvent

from backend.bff.auth.middleware import PUBLIC
from backend.bff.auth.tokens import Principal
from backend.bff.metrics import Metrics
from backend.bff.openapi import BEARER, PushOperation, errors
from backend.bff.sync.intake import decode_push_body
from backend.bff.sync.live import ChangeFeed, ChangeHub
from backend.bff.sync.pull import Page, PullService, page_body
from backend.bff.sync.push import PushService, system_ms
from backend.bff.sync.schemas import PullResponse, PushResponse, SyncInfo
from backend.config import Settings
from backend.errors import UnsupportedProtocol
from protocol import PROTOCOL_VERSIONS

__all__ = ["SyncController"]


def _check_protocol(version: int) -> None:
    low, high = PROTOCOL_VERSIONS
    if not low <= version <= high:
        raise UnsupportedProtocol(
            f"protocol {version} is not supported: this server speaks {low}..{high}; update the app"
        )


class SyncController(Controller):
    path = "/v1/sync"
    tags = ("sync",)

    @get("/info", opt={PUBLIC: True}, responses=errors(503))
    async def info(
        self, settings: NamedDependency[Settings], pull_service: NamedDependency[PullService]
    ) -> SyncInfo:
        _, generation = await pull_service.status()
        return SyncInfo(
            protocols=list(PROTOCOL_VERSIONS),
            max_batch_events=settings.max_batch_events,
            max_batch_bytes=settings.max_batch_bytes,
            generation=generation,
        )

    @post(
        "/push",
        status_code=200,
        security=BEARER,
        operation_class=PushOperation,
        responses=errors(400, 401, 413, 422, 426, 429, 503),
    )
    async def push(
        self,
        request: Request[Principal, Any, Any],
        principal: NamedDependency[Principal],
        push_service: NamedDependency[PushService],
        pull_service: NamedDependency[PullService],
        metrics: NamedDependency[Metrics],
    ) -> PushResponse:
        """Push a batch of events: one result per event, in order (SPEC section 6)."""
        started = time.perf_counter()
        body = decode_push_body(await request.body())
        _check_protocol(body.protocol)
        results = await push_service.push(principal, body)
        watermark, generation = await pull_service.status_or_last()
        metrics.observe_push(results, time.perf_counter() - started)
        return PushResponse(results, system_ms(), watermark, generation)

    @get(
        "/pull",
        cache_control=CacheControlHeader(private=True, no_store=True),
        security=BEARER,
        responses={
            200: ResponseSpec(
                PullResponse, description="A page of changes", generate_examples=False
            ),
            **errors(400, 401, 426, 429, 503),
        },
    )
    async def pull(
        self,
        principal: NamedDependency[Principal],
        pull_service: NamedDependency[PullService],
        metrics: NamedDependency[Metrics],
        cursor: Annotated[str | None, QueryParameter()] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 500,
        protocol: Annotated[int, QueryParameter()] = 1,
    ) -> Response[bytes]:
        """The changes the user can see after ``cursor`` (none: everything, a bootstrap)."""
        _check_protocol(protocol)
        started = time.perf_counter()
        page: Page = await pull_service.pull(principal, cursor, limit)
        metrics.observe_pull(len(page.changes), time.perf_counter() - started)
        return Response(page_body(page, system_ms()), media_type=MediaType.JSON)

    @get(
        "/live",
        security=BEARER,
        responses={
            200: ResponseSpec(
                None,
                media_type="text/event-stream",
                description='Server-Sent Events: `poke` with `{"watermark"}`, or, with '
                "`since`, `changes` whose data is a pull page; a comment line at least "
                "every 15 s",
            ),
            **errors(400, 401, 429),
        },
    )
    async def live(
        self,
        principal: NamedDependency[Principal],
        hub: NamedDependency[ChangeHub],
        pull_service: NamedDependency[PullService],
        settings: NamedDependency[Settings],
        stopping: NamedDependency[asyncio.Event],
        since: Annotated[
            str | None,
            QueryParameter(
                description="A pull cursor: the stream then carries `event: changes`, each a "
                "pull page from this cursor on (same shape, cursor and authorization); it "
                "says `poke` instead when a page would be a reset, more than one page, or "
                "too big, and the device pulls."
            ),
        ] = None,
    ) -> ServerSentEvent:
        """Server-Sent Events: ``poke`` with the watermark when something the user sees
        changed, or with ``since`` the changes themselves, as pull pages."""
        feed = None
        if since is not None:
            pull_service.check_cursor(since)  # 400 for a cursor this server never made
            feed = ChangeFeed(
                read=hub.page_reader(
                    principal.username,
                    functools.partial(pull_service.pull, principal),
                    pull_service.read_shared,
                ),
                cursor=since,
                limit=settings.live_page_limit,
                max_bytes=settings.live_page_max_bytes,
                render=hub.render,
            )
        stream = hub.stream(principal.username, settings.live_keepalive_s, stopping, feed)
        return ServerSentEvent(stream)
