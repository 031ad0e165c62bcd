"""The member check: does an account of this name exist? Asked before a share is queued,
so a typo is caught at once instead of coming back later as a refused change.

Signed-in users only, and few checks each (``UserCheckLimit``: ``OUTPOST_USER_CHECK_LIMIT``
at once, then one per ``OUTPOST_USER_CHECK_WINDOW_S / OUTPOST_USER_CHECK_LIMIT``), so it
cannot be used to list the usernames; the answer carries no body at all.
"""

from __future__ import annotations

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.status_codes import HTTP_204_NO_CONTENT

from backend.bff.auth.services import AuthService
from backend.bff.limits.guards import LIMIT, USER_CHECK
from backend.bff.openapi import BEARER, errors
from backend.errors import BadRequest, NoSuchUser
from protocol import patterns

__all__ = ["UsersController"]

_USERNAME = patterns.compile_whole(patterns.USERNAME)


class UsersController(Controller):
    path = "/v1/users"
    tags = ("users",)

    @get(
        "/{username:str}",
        status_code=HTTP_204_NO_CONTENT,
        opt={LIMIT: USER_CHECK},
        security=BEARER,
        responses=errors(400, 401, 404, 429, 503),
    )
    async def check(self, username: FromPath[str], auth: NamedDependency[AuthService]) -> None:
        """204 when an account named ``username`` exists, 404 when none does (400: not a
        username at all). Few checks per user (429 with Retry-After beyond them)."""
        if not _USERNAME.fullmatch(username):
            raise BadRequest(f"{username!r} is not a username (3..32 of a-z, 0-9, _ . -)")
        if not await auth.user_exists(username):
            raise NoSuchUser(f"no user named {username!r}")
