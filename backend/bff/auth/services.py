"""Sign-up, sign-in and refresh: slow salted password hashes, rotating refresh tokens.

Each sign-in (or sign-up) opens a session family; each refresh rotates its token within
the family. A refresh token used twice (a replay after rotation, or a stolen copy) ends the
whole family: its refresh token and every access token issued to it stop working.
"""

from __future__ import annotations

import hashlib
import secrets
import time

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.bff.auth.hashing import PasswordHashing
from backend.bff.auth.revocations import RevokedFamilies
from backend.bff.auth.schemas import Credentials, LoginCredentials, Session
from backend.bff.auth.tokens import Principal, RefreshTokens, TokenSigner
from backend.bff.models import RefreshFamily, RefreshToken, User
from backend.db import Database
from backend.errors import Conflict, Unauthorized
from protocol import new_id

_BAD_LOGIN = "wrong username or password"
_UNKNOWN_REFRESH = "refresh token unknown, used or expired: sign in again"
_REUSED_REFRESH = "refresh token used twice: every session of this sign-in has ended; sign in again"
_ENDED = "this session has ended: sign in again"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AuthService:
    def __init__(
        self,
        db: Database,
        signer: TokenSigner,
        refresh_tokens: RefreshTokens,
        *,
        refresh_ttl_s: int,
        hashing: PasswordHashing | None = None,
        revocation_refresh_s: float = 1.0,
    ) -> None:
        self._db = db
        self._signer = signer
        self._refresh_tokens = refresh_tokens
        self._refresh_ttl_s = refresh_ttl_s
        self.hashing = hashing or PasswordHashing()
        self._revoked = RevokedFamilies(db, horizon_s=signer.ttl_s, refresh_s=revocation_refresh_s)
        # Verifying against this keeps an unknown username as slow as a wrong password.
        self._dummy_hash = self.hashing.hash_now(secrets.token_hex(8))

    async def signup(self, credentials: Credentials) -> Session:
        password_hash = await self.hashing.hash(credentials.password)
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
        if not await self.hashing.verify(stored, credentials.password) or not row:
            raise Unauthorized(_BAD_LOGIN)
        async with self._db.write() as conn:
            return await self._open_session(conn, Principal(row.id, row.username))

    async def refresh(self, refresh_token: str) -> Session:
        """Trade a refresh token for a new session of its family; the old token stops
        working, and using it again ends the family."""
        genuine = self._refresh_tokens.read(refresh_token)
        if genuine is None:
            return await self._refresh_legacy(refresh_token)
        family, generation = genuine
        async with self._db.write() as conn:
            row = (
                await conn.execute(
                    select(RefreshFamily).where(RefreshFamily.id == family).with_for_update()
                )
            ).first()
            if row is None or row.revoked_at is not None or row.expires_at < int(time.time()):
                raise Unauthorized(_UNKNOWN_REFRESH)
            if generation == row.generation:
                await conn.execute(
                    update(RefreshFamily)
                    .where(RefreshFamily.id == family)
                    .values(
                        generation=generation + 1,
                        expires_at=int(time.time()) + self._refresh_ttl_s,
                    )
                )
                user = (await conn.execute(select(User).where(User.id == row.user_id))).one()
                return self._session(user.id, user.username, family, generation + 1)
            await conn.execute(
                update(RefreshFamily)
                .where(RefreshFamily.id == family)
                .values(revoked_at=time.time_ns() // 1_000_000)
            )
        self._revoked.add(family)  # committed: at once in this process
        raise Unauthorized(_REUSED_REFRESH)

    async def authenticate(self, token: str) -> Principal:
        """The user of an access token, unless its session family has ended."""
        principal = self._signer.verify(token)
        if principal.family is not None and await self._revoked.contains(principal.family):
            raise Unauthorized(_ENDED)
        return principal

    async def _refresh_legacy(self, refresh_token: str) -> Session:
        """A refresh token from before families: used once, it opens a family."""
        async with self._db.write() as conn:
            row = (
                await conn.execute(
                    delete(RefreshToken)
                    .where(RefreshToken.token_hash == _digest(refresh_token))
                    .returning(RefreshToken.user_id, RefreshToken.expires_at)
                )
            ).first()
            if row is None or row.expires_at < int(time.time()):
                raise Unauthorized(_UNKNOWN_REFRESH)
            user = (await conn.execute(select(User).where(User.id == row.user_id))).one()
            return await self._open_session(conn, Principal(user.id, user.username))

    async def _open_session(self, conn: AsyncConnection, user: Principal) -> Session:
        """A new session family (a sign-up or a sign-in) and its first tokens."""
        family = new_id()
        await conn.execute(
            insert(RefreshFamily).values(
                id=family,
                user_id=user.user_id,
                generation=1,
                expires_at=int(time.time()) + self._refresh_ttl_s,
                revoked_at=None,
            )
        )
        return self._session(user.user_id, user.username, family, 1)

    def _session(self, user_id: str, username: str, family: str, generation: int) -> Session:
        return Session(
            user_id=user_id,
            username=username,
            token=self._signer.issue(Principal(user_id, username, family)),
            expires_in=self._signer.ttl_s,
            refresh_token=self._refresh_tokens.issue(family, generation),
        )
