"""Signed short-lived access tokens (JWT, HS256) and the signing secret."""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import jwt

from backend.errors import Unauthorized

_ALGORITHM = "HS256"


@dataclass(frozen=True)
class Principal:
    """Who a request acts for, from its bearer token."""

    user_id: str
    username: str


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
        now = int(time.time())
        claims = {
            "sub": principal.user_id,
            "usr": principal.username,
            "iat": now,
            "exp": now + self.ttl_s,
            "typ": "access",
        }
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
        if claims.get("typ") != "access" or not isinstance(claims.get("usr"), str):
            raise Unauthorized("invalid token: sign in again")
        return Principal(user_id=str(claims["sub"]), username=claims["usr"])
