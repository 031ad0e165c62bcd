"""The auth routes of SPEC section 6: sign-up, sign-in, refresh, password change, log-out.
Each calls one service."""

from __future__ import annotations

from litestar import Controller, post
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from backend.bff.auth.guards import flat_json_object
from backend.bff.auth.middleware import PASSWORD_TOKEN, PUBLIC
from backend.bff.auth.schemas import (
    Credentials,
    LoginCredentials,
    PasswordChange,
    PasswordChangeRequired,
    RefreshRequest,
    Session,
)
from backend.bff.auth.services import AuthService
from backend.bff.auth.tokens import Principal
from backend.bff.limits.guards import LIMIT, SIGNIN, SIGNUP
from backend.bff.openapi import BEARER, ErrorBody, errors

__all__ = ["AuthController"]


def _error(code: int, description: str) -> dict[int, ResponseSpec]:
    return {
        code: ResponseSpec(
            data_container=ErrorBody, description=description, generate_examples=False
        )
    }


_CHANGE_REQUIRED = _error(
    403,
    "The password is a one-time one (`outpost users reset-password`): no session is opened; "
    '`extra` is `{"password_token", "expires_in"}`, a bearer token good only for '
    "`POST /v1/auth/password` (with the one-time password as `password`) for that many "
    "seconds.",
)
_NEW_PASSWORD = _error(422, "The new password is not 8..128 characters.")


class AuthController(Controller):
    path = "/v1/auth"
    tags = ("auth",)
    guards = (flat_json_object,)

    @post(
        "/signup",
        status_code=HTTP_201_CREATED,
        opt={LIMIT: SIGNUP, PUBLIC: True},
        responses=errors(400, 409, 413, 429, 503),
    )
    async def signup(
        self, data: JSONBody[Credentials], auth: NamedDependency[AuthService]
    ) -> Session:
        return await auth.signup(data)

    @post(
        "/token",
        status_code=HTTP_200_OK,
        opt={LIMIT: SIGNIN, PUBLIC: True},
        responses={**errors(400, 401, 413, 429, 503), **_CHANGE_REQUIRED},
    )
    async def token(
        self, data: JSONBody[LoginCredentials], auth: NamedDependency[AuthService]
    ) -> Session:
        outcome = await auth.login(data)
        if isinstance(outcome, PasswordChangeRequired):
            extra = {"password_token": outcome.password_token, "expires_in": outcome.expires_in}
            raise HTTPException(status_code=403, detail=outcome.detail, extra=extra)
        return outcome

    @post(
        "/refresh",
        status_code=HTTP_200_OK,
        opt={PUBLIC: True},
        responses=errors(400, 401, 413, 503),
    )
    async def refresh(
        self, data: JSONBody[RefreshRequest], auth: NamedDependency[AuthService]
    ) -> Session:
        return await auth.refresh(data.refresh_token)

    @post(
        "/password",
        status_code=HTTP_204_NO_CONTENT,
        opt={PASSWORD_TOKEN: True},
        security=BEARER,
        responses={**errors(400, 401, 413, 429, 503), **_NEW_PASSWORD},
    )
    async def password(
        self,
        principal: NamedDependency[Principal],
        data: JSONBody[PasswordChange],
        auth: NamedDependency[AuthService],
    ) -> None:
        """Change the password: every session of the user ends (this one too); sign in
        again with the new password."""
        await auth.change_password(principal, data)

    @post(
        "/logout",
        status_code=HTTP_204_NO_CONTENT,
        security=BEARER,
        responses=errors(400, 401, 413, 429, 503),
    )
    async def logout(
        self,
        principal: NamedDependency[Principal],
        data: JSONBody[RefreshRequest],
        auth: NamedDependency[AuthService],
    ) -> None:
        """End the session of ``refresh_token`` (one of the caller's): its refresh token
        and its access tokens stop working."""
        await auth.logout(principal, data.refresh_token)
