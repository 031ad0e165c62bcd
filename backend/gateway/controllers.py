"""The gateway's routes, mounted in the BFF: registration by a board's owner (bearer), and
inbound deliveries (``/v1/inbound/{source}/{board}``: no bearer, the source's signature).
Each handler is one call to ``GatewayService``."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, HttpMethod, Request, Response, delete, get, post, put, route
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter

from backend.bff.auth.middleware import PUBLIC
from backend.bff.auth.tokens import Principal
from backend.bff.openapi import BEARER, errors
from backend.gateway.schemas import (
    DeliveryInfo,
    EndpointCreated,
    EndpointInfo,
    EndpointRequest,
    InboundResult,
    LoginInfo,
    LoginRequest,
    SourceCreated,
    SourceInfo,
)
from backend.gateway.services import GatewayService

__all__ = ["InboundController", "RegistrationController"]

_OWNER_ERRORS = errors(400, 401, 403, 404, 429, 503)


def _allow(*methods: str) -> Response[None]:
    return Response(
        None, status_code=204, headers={"Allow": ", ".join(sorted({*methods, "OPTIONS"}))}
    )


class RegistrationController(Controller):
    """What a board's owner registers: webhooks out, sources in, the login map."""

    path = "/v1/boards/{board:str}"
    tags = ("gateway",)
    security = BEARER

    # Litestar 2 answers OPTIONS on a path with two handlers with the methods of the first
    # one only (the OPTIONS handler it makes for the first route is kept when the second
    # joins it). These answer for those paths; they sort first (``_``), so they are
    # registered before the others and Litestar makes none of its own.

    @route(
        "/webhooks", http_method=[HttpMethod.OPTIONS], include_in_schema=False, opt={PUBLIC: True}
    )
    async def _allow_webhooks(self) -> Response[None]:
        return _allow("GET", "POST")

    @route(
        "/sources/{source:str}",
        http_method=[HttpMethod.OPTIONS],
        include_in_schema=False,
        opt={PUBLIC: True},
    )
    async def _allow_source(self) -> Response[None]:
        return _allow("DELETE", "PUT")

    @route(
        "/logins/{login:str}",
        http_method=[HttpMethod.OPTIONS],
        include_in_schema=False,
        opt={PUBLIC: True},
    )
    async def _allow_login(self) -> Response[None]:
        return _allow("DELETE", "PUT")

    @post("/webhooks", status_code=201, responses=errors(400, 401, 403, 404, 422, 429, 503))
    async def add_webhook(
        self,
        board: FromPath[str],
        data: JSONBody[EndpointRequest],
        principal: NamedDependency[Principal],
        gateway: NamedDependency[GatewayService],
    ) -> EndpointCreated:
        """Register a URL for the board's changes; its signing secret is shown this once."""
        return await gateway.add_endpoint(principal.username, board, data.url)

    @get("/webhooks", responses=_OWNER_ERRORS)
    async def list_webhooks(
        self,
        board: FromPath[str],
        principal: NamedDependency[Principal],
        gateway: NamedDependency[GatewayService],
    ) -> list[EndpointInfo]:
        return await gateway.list_endpoints(principal.username, board)

    @delete("/webhooks/{endpoint:str}", status_code=204, responses=_OWNER_ERRORS)
    async def remove_webhook(
        self,
        board: FromPath[str],
        endpoint: FromPath[str],
        principal: NamedDependency[Principal],
        gateway: NamedDependency[GatewayService],
    ) -> None:
        await gateway.remove_endpoint(principal.username, board, endpoint)

    @get("/webhooks/{endpoint:str}/deliveries", responses=_OWNER_ERRORS)
    async def list_deliveries(
        self,
        board: FromPath[str],
        endpoint: FromPath[str],
        principal: NamedDependency[Principal],
        gateway: NamedDependency[GatewayService],
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
    ) -> list[DeliveryInfo]:
        """The delivery log: the latest deliveries, newest first, each with its tries."""
        return await gateway.deliveries(principal.username, board, endpoint, limit)

    @post(
        "/webhooks/{endpoint:str}/deliveries/{delivery:str}/redeliver",
        status_code=202,
        responses=_OWNER_ERRORS,
    )
    async def redeliver(
        self,
        board: FromPath[str],
        endpoint: FromPath[str],
        delivery: FromPath[str],
        principal: NamedDependency[Principal],
        gateway: NamedDependency[GatewayService],
    ) -> None:
        """Send a delivery again now, with a fresh schedule."""
        await gateway.redeliver(principal.username, board, endpoint, delivery)

    @put("/sources/{source:str}", status_code=201, responses=_OWNER_ERRORS)
    async def register_source(
        self,
        board: FromPath[str],
        source: FromPath[str],
        principal: NamedDependency[Principal],
        gateway: NamedDependency[GatewayService],
    ) -> SourceCreated:
        """Let a source deliver to the board; a new secret each time (shown once)."""
        return await gateway.register_source(principal.username, board, source)

    @get("/sources", responses=_OWNER_ERRORS)
    async def list_sources(
        self,
        board: FromPath[str],
        principal: NamedDependency[Principal],
        gateway: NamedDependency[GatewayService],
    ) -> list[SourceInfo]:
        return await gateway.list_sources(principal.username, board)

    @delete("/sources/{source:str}", status_code=204, responses=_OWNER_ERRORS)
    async def remove_source(
        self,
        board: FromPath[str],
        source: FromPath[str],
        principal: NamedDependency[Principal],
        gateway: NamedDependency[GatewayService],
    ) -> None:
        await gateway.remove_source(principal.username, board, source)

    @put("/logins/{login:str}", status_code=200, responses=_OWNER_ERRORS)
    async def map_login(
        self,
        board: FromPath[str],
        login: FromPath[str],
        data: JSONBody[LoginRequest],
        principal: NamedDependency[Principal],
        gateway: NamedDependency[GatewayService],
    ) -> LoginInfo:
        """Map an outside login (GitHub's) to an Outpost username on this board."""
        return await gateway.map_login(principal.username, board, login, data.username)

    @get("/logins", responses=_OWNER_ERRORS)
    async def list_logins(
        self,
        board: FromPath[str],
        principal: NamedDependency[Principal],
        gateway: NamedDependency[GatewayService],
    ) -> list[LoginInfo]:
        return await gateway.list_logins(principal.username, board)

    @delete("/logins/{login:str}", status_code=204, responses=_OWNER_ERRORS)
    async def unmap_login(
        self,
        board: FromPath[str],
        login: FromPath[str],
        principal: NamedDependency[Principal],
        gateway: NamedDependency[GatewayService],
    ) -> None:
        await gateway.unmap_login(principal.username, board, login)


class InboundController(Controller):
    """Deliveries from outside systems, authenticated by their signature."""

    path = "/v1/inbound"
    tags = ("gateway",)

    @post(
        "/{source:str}/{board:str}",
        opt={PUBLIC: True},
        status_code=200,
        responses={
            202: ResponseSpec(
                data_container=InboundResult,
                description="An action no mapping knows: accepted and ignored.",
                generate_examples=False,
            ),
            **errors(401, 404, 413, 422, 503),
        },
    )
    async def receive(
        self,
        source: FromPath[str],
        board: FromPath[str],
        request: Request[Any, Any, Any],
        gateway: NamedDependency[GatewayService],
    ) -> Response[InboundResult]:
        """A signed delivery (Standard Webhooks for `generic`, `X-Hub-Signature-256` for
        `github`) made into events on the board; a redelivery changes nothing."""
        status, result = await gateway.receive(
            source, board, await request.body(), dict(request.headers)
        )
        return Response(result, status_code=status)
