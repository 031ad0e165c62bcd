"""The auth routes of SPEC section 6: sign-up, sign-in, refresh. Each calls one service."""

from __future__ import annotations

from types import MappingProxyType

from litestar import Controller, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from backend.bff.auth.guards import flat_json_object
from backend.bff.auth.middleware import PUBLIC
from backend.bff.auth.schemas import Credentials, LoginCredentials, RefreshRequest, Session
from backend.bff.auth.services import AuthService
from backend.bff.limits.guards import LIMIT, SIGNIN, SIGNUP
from backend.bff.openapi import errors

__all__ = ["AuthController"]


class AuthController(Controller):
    path = "/v1/auth"
    tags = ("auth",)
    opt = MappingProxyType({PUBLIC: True})
    guards = (flat_json_object,)

    @post(
        "/signup",
        status_code=HTTP_201_CREATED,
        opt={LIMIT: SIGNUP},
        responses=errors(400, 409, 413, 429, 503),
    )
    async def signup(
        self, data: JSONBody[Credentials], auth: NamedDependency[AuthService]
    ) -> Session:
        return await auth.signup(data)

    @post(
        "/token",
        status_code=HTTP_200_OK,
        opt={LIMIT: SIGNIN},
        responses=errors(400, 401, 413, 429, 503),
    )
    async def token(
        self, data: JSONBody[LoginCredentials], auth: NamedDependency[AuthService]
    ) -> Session:
        return await auth.login(data)

    @post("/refresh", status_code=HTTP_200_OK, responses=errors(400, 401, 413, 503))
    async def refresh(
        self, data: JSONBody[RefreshRequest], auth: NamedDependency[AuthService]
    ) -> Session:
        return await auth.refresh(data.refresh_token)
