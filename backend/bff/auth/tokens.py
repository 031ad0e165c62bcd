"""Signed short-lived access tokens (JWT, HS256), refresh tokens, and the signing secret.

An access token names its session's family (``fam``): every session descended from one
sign-in by refreshes. A password token (``typ`` password, five minutes) is what a sign-in
with a one-time password gets: the bearer middleware lets it change the password, nothing
else. A refresh token is ``r1.<family>.<generation>.<mac>``: the family,
which refresh of it this is, and an HMAC of both with a key derived from the secret, so a
token can be told genuine before the database is asked, and a genuine token of an older
generation is a token used twice.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import jwt

from backend.errors import Unauthorized

_ALGORITHM = "HS256"
_TYPES = {"access": False, "password": True}
"""Token ``typ`` -> whether it is a password-change-only token."""
PASSWORD_TOKEN_TTL_S = 300


@dataclass(frozen=True)
class Principal:
    """Who a request acts for, from its bearer token."""

    user_id: str
    username: str
    family: str | None = None
    """The session family of the token (None: a token from before families)."""
    password_only: bool = False
    """A token that only changes a one-time password (sign-in with one answers 403 with
    it); the bearer middleware refuses it on every other route."""


def load_secret(configured: str | None, data_dir: Path) -> str:
    """The configured secret, or the one generated into ``data_dir/secret.key`` on first run."""
    if configured:
        return configured
    path = data_dir / "secret.key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(secret)
    return secret


class TokenSigner:
    def __init__(self, secret: str, ttl_s: int) -> None:
        self._secret = secret
        self.ttl_s = ttl_s

    def issue(self, principal: Principal) -> str:
        now = time.time()
        ttl_s = PASSWORD_TOKEN_TTL_S if principal.password_only else self.ttl_s
        claims = {
            "sub": principal.user_id,
            "usr": principal.username,
            "iat": int(now),
            "exp": math.ceil(now) + ttl_s,  # whole seconds, rounded up: it lives at least ttl_s
            "typ": "password" if principal.password_only else "access",
        }
        if principal.family is not None:
            claims["fam"] = principal.family
        return jwt.encode(claims, self._secret, algorithm=_ALGORITHM)

    def verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token, self._secret, algorithms=[_ALGORITHM], options={"require": ["exp", "sub"]}
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("token expired: refresh it or sign in again") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized("invalid token: sign in again") from exc
        family = claims.get("fam")
        kind = claims.get("typ", "access")  # tokens from before the type claim are access ones
        if (
            kind not in _TYPES
            or not isinstance(claims.get("usr"), str)
            or not isinstance(family, str | None)
        ):
            raise Unauthorized("invalid token: sign in again")
        return Principal(
            user_id=str(claims["sub"]),
            username=claims["usr"],
            family=family,
            password_only=_TYPES[kind],
        )


_REFRESH_RE = re.compile(r"r1\.([0-9a-f-]{36})\.([0-9]{1,9})\.([A-Za-z0-9_-]{43})")


class RefreshTokens:
    """``r1.<family>.<generation>.<mac>``: genuine or not, without a database."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"outpost refresh tokens\0" + secret.encode()).digest()

    def issue(self, family: str, generation: int) -> str:
        return f"r1.{family}.{generation}.{self._mac(family, generation)}"

    def read(self, token: str) -> tuple[str, int] | None:
        """(family, generation) of a genuine token; None for anything else."""
        match = _REFRESH_RE.fullmatch(token)
        if match is None:
            return None
        family, generation = match.group(1), int(match.group(2))
        if not hmac.compare_digest(match.group(3), self._mac(family, generation)):
            return None
        return family, generation

    def _mac(self, family: str, generation: int) -> str:
        digest = hmac.new(self._key, f"{family}.{generation}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
