"""Request and response bodies of the auth routes (SPEC section 6)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from protocol.catalog import USERNAME_PATTERN
from protocol.patterns import SIGNIN_NAME, anchored

Username = Annotated[
    str, msgspec.Meta(pattern=USERNAME_PATTERN, description="3..32 of a-z 0-9 _ . -")
]
Password = Annotated[str, msgspec.Meta(min_length=8, max_length=128)]


class Credentials(msgspec.Struct, forbid_unknown_fields=True):
    username: Username
    password: Password


SIGNIN_USERNAME_PATTERN = anchored(SIGNIN_NAME)


class LoginCredentials(msgspec.Struct, forbid_unknown_fields=True):
    """Sign-in checks the password against the stored hash; no format rules to leak."""

    username: Annotated[str, msgspec.Meta(pattern=SIGNIN_USERNAME_PATTERN)]
    password: Annotated[str, msgspec.Meta(max_length=128)]


class RefreshRequest(msgspec.Struct, forbid_unknown_fields=True):
    refresh_token: Annotated[str, msgspec.Meta(max_length=200)]


class PasswordChange(msgspec.Struct, forbid_unknown_fields=True):
    """The current password is checked, not judged; the new one must be 8..128 characters
    (else 422, after the current one is known to be right)."""

    password: Annotated[str, msgspec.Meta(max_length=128)]
    new_password: str


class PasswordChangeRequired(msgspec.Struct):
    """What a sign-in with a one-time password gets instead of a session (a 403 whose
    ``extra`` holds the token): a token good only for ``POST /v1/auth/password``, for
    ``expires_in`` seconds."""

    detail: str
    password_token: str
    expires_in: int


class Session(msgspec.Struct):
    user_id: str
    username: str
    token: str
    expires_in: int
    refresh_token: str
