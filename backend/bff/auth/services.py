"""Sign-up, sign-in and refresh: slow salted password hashes, rotating refresh tokens."""

from __future__ import annotations

import hashlib
import secrets
import time

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.bff.auth.schemas import Credentials, LoginCredentials, Session
from backend.bff.auth.tokens import Principal, TokenSigner
from backend.bff.models import RefreshToken, User
from backend.db import Database
from backend.errors import Conflict, Unauthorized
from protocol import new_id

_BAD_LOGIN = "wrong username or password"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AuthService:
    def __init__(
        self,
        db: Database,
        signer: TokenSigner,
        *,
        refresh_ttl_s: int,
        password_time_cost: int = 3,
    ) -> None:
        self._db = db
        self._signer = signer
        self._refresh_ttl_s = refresh_ttl_s
        self._hasher = PasswordHasher(time_cost=password_time_cost)
        # Verifying against this keeps an unknown username as slow as a wrong password.
        self._dummy_hash = self._hasher.hash(secrets.token_hex(8))

    async def signup(self, credentials: Credentials) -> Session:
        password_hash = await anyio.to_thread.run_sync(self._hasher.hash, credentials.password)
        user = Principal(user_id=new_id(), username=credentials.username)
        try:
            async with self._db.write() as conn:
                await conn.execute(
                    insert(User).values(
                        id=user.user_id,
                        username=user.username,
                        password_hash=password_hash,
                        created_at=int(time.time() * 1000),
                    )
                )
                return await self._open_session(conn, user)
        except IntegrityError as exc:
            raise Conflict(f"username {credentials.username!r} is taken") from exc

    async def login(self, credentials: LoginCredentials) -> Session:
        async with self._db.read() as conn:
            row = (
                await conn.execute(select(User).where(User.username == credentials.username))
            ).first()
        stored = row.password_hash if row else self._dummy_hash
        if (
            not await anyio.to_thread.run_sync(self._verify, stored, credentials.password)
            or not row
        ):
            raise Unauthorized(_BAD_LOGIN)
        async with self._db.write() as conn:
            return await self._open_session(conn, Principal(row.id, row.username))

    async def refresh(self, refresh_token: str) -> Session:
        """Trade a refresh token for a new session; the old refresh token stops working."""
        now = int(time.time())
        async with self._db.write() as conn:
            row = (
                await conn.execute(
                    delete(RefreshToken)
                    .where(RefreshToken.token_hash == _digest(refresh_token))
                    .returning(RefreshToken.user_id, RefreshToken.expires_at)
                )
            ).first()
            if row is None or row.expires_at < now:
                raise Unauthorized("refresh token unknown, used or expired: sign in again")
            user = (await conn.execute(select(User).where(User.id == row.user_id))).one()
            return await self._open_session(conn, Principal(user.id, user.username))

    def authenticate(self, token: str) -> Principal:
        return self._signer.verify(token)

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    async def _open_session(self, conn: AsyncConnection, user: Principal) -> Session:
        refresh_token = secrets.token_urlsafe(32)
        await conn.execute(
            insert(RefreshToken).values(
                token_hash=_digest(refresh_token),
                user_id=user.user_id,
                expires_at=int(time.time()) + self._refresh_ttl_s,
            )
        )
        return Session(
            user_id=user.user_id,
            username=user.username,
            token=self._signer.issue(user),
            expires_in=self._signer.ttl_s,
            refresh_token=refresh_token,
        )
