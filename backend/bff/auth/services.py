"""Sign-up, sign-in, refresh, log-out and password changes: slow salted password hashes,
rotating refresh tokens.

Each sign-in (or sign-up) opens a session family; each refresh rotates its token within
the family. A refresh token used twice (a replay after rotation, or a stolen copy) ends the
whole family: its refresh token and every access token issued to it stop working. Logging
out ends one family; changing (or resetting) the password ends every family of the user.
A one-time password (``outpost users reset-password``) signs in to nothing but a token to
change it.
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
from backend.bff.auth.schemas import (
    Credentials,
    LoginCredentials,
    PasswordChange,
    PasswordChangeRequired,
    Session,
)
from backend.bff.auth.tokens import PASSWORD_TOKEN_TTL_S, Principal, RefreshTokens, TokenSigner
from backend.bff.models import RefreshFamily, RefreshToken, User
from backend.db import Database
from backend.errors import BackendError, Conflict, Unauthorized
from protocol import new_id

__all__ = ["AuthService", "PasswordRefused", "end_sessions"]

_BAD_LOGIN = "wrong username or password"
_UNKNOWN_REFRESH = "refresh token unknown, used or expired: sign in again"
_REUSED_REFRESH = "refresh token used twice: every session of this sign-in has ended; sign in again"
_ENDED = "this session has ended: sign in again"
_CHANGE_REQUIRED = "a new password is required: POST /v1/auth/password"
_WRONG_PASSWORD = "wrong password: give your current password"
_RESET_DONE = "the one-time password has been changed already: sign in with the new one"
_CHANGED_MEANWHILE = "the password has just been changed elsewhere: sign in again"
_NOT_YOUR_SESSION = "refresh token unknown: it names no session of yours"


class PasswordRefused(BackendError):
    """A new password outside 8..128 characters (SPEC section 6: 422)."""

    status_code = 422


async def end_sessions(conn: AsyncConnection, user_id: str) -> list[str]:
    """Revoke every live session family of ``user_id`` (and its refresh tokens from before
    families); the families revoked. A family whose refresh token has expired has no access
    token left either: it is left as it is."""
    revoked = await conn.execute(
        update(RefreshFamily)
        .where(
            RefreshFamily.user_id == user_id,
            RefreshFamily.revoked_at.is_(None),
            RefreshFamily.expires_at >= int(time.time()),
        )
        .values(revoked_at=time.time_ns() // 1_000_000)
        .returning(RefreshFamily.id)
    )
    families = list(revoked.scalars())
    await conn.execute(delete(RefreshToken).where(RefreshToken.user_id == user_id))
    return families


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

    async def login(self, credentials: LoginCredentials) -> Session | PasswordChangeRequired:
        """A new session; for a one-time password, only a token to change it."""
        async with self._db.read() as conn:
            row = (
                await conn.execute(select(User).where(User.username == credentials.username))
            ).first()
        stored = row.password_hash if row else self._dummy_hash
        if not await self.hashing.verify(stored, credentials.password) or not row:
            raise Unauthorized(_BAD_LOGIN)
        if row.password_reset:
            only = Principal(row.id, row.username, password_only=True)
            return PasswordChangeRequired(
                detail=_CHANGE_REQUIRED,
                password_token=self._signer.issue(only),
                expires_in=PASSWORD_TOKEN_TTL_S,
            )
        async with self._db.write() as conn:
            # The password may have changed (or been reset) while its hash was checked:
            # a session opened now would outlive the change that ended every session.
            current = (
                await conn.execute(
                    select(User.password_hash).where(User.id == row.id).with_for_update()
                )
            ).scalar()
            if current != row.password_hash:
                raise Unauthorized(_BAD_LOGIN)
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

    async def change_password(self, principal: Principal, change: PasswordChange) -> None:
        """Set a new password and end every session of the user, this one too."""
        if not 8 <= len(change.new_password) <= 128:
            raise PasswordRefused("the new password must be 8..128 characters")
        async with self._db.read() as conn:
            row = (await conn.execute(select(User).where(User.id == principal.user_id))).first()
        if row is None:
            raise Unauthorized(_ENDED)
        if principal.password_only and not row.password_reset:
            raise Unauthorized(_RESET_DONE)
        if not await self.hashing.verify(row.password_hash, change.password):
            raise Unauthorized(_WRONG_PASSWORD)
        new_hash = await self.hashing.hash(change.new_password)
        async with self._db.write() as conn:
            # Only over the password just checked: of two changes at once, one wins.
            changed = await conn.execute(
                update(User)
                .where(User.id == row.id, User.password_hash == row.password_hash)
                .values(password_hash=new_hash, password_reset=False)
            )
            if changed.rowcount != 1:
                raise Unauthorized(_CHANGED_MEANWHILE)
            ended = await end_sessions(conn, row.id)
        for family in ended:  # committed: at once in this process
            self._revoked.add(family)

    async def logout(self, principal: Principal, refresh_token: str) -> None:
        """End the session family of ``refresh_token``, if it is one of the caller's; any
        other token (forged, another user's, unknown) ends nothing and is 401."""
        genuine = self._refresh_tokens.read(refresh_token)
        if genuine is None:
            await self._logout_legacy(principal, refresh_token)
            return
        family, _ = genuine
        async with self._db.write() as conn:
            row = (
                await conn.execute(
                    select(RefreshFamily)
                    .where(RefreshFamily.id == family, RefreshFamily.user_id == principal.user_id)
                    .with_for_update()
                )
            ).first()
            if row is None:
                raise Unauthorized(_NOT_YOUR_SESSION)
            if row.revoked_at is None:  # logging out twice is not an error
                await conn.execute(
                    update(RefreshFamily)
                    .where(RefreshFamily.id == family)
                    .values(revoked_at=time.time_ns() // 1_000_000)
                )
        self._revoked.add(family)

    async def _logout_legacy(self, principal: Principal, refresh_token: str) -> None:
        async with self._db.write() as conn:
            gone = (
                await conn.execute(
                    delete(RefreshToken)
                    .where(
                        RefreshToken.token_hash == _digest(refresh_token),
                        RefreshToken.user_id == principal.user_id,
                    )
                    .returning(RefreshToken.token_hash)
                )
            ).first()
        if gone is None:
            raise Unauthorized(_NOT_YOUR_SESSION)

    async def user_exists(self, username: str) -> bool:
        """Whether an account of that name exists (the member check before a share)."""
        async with self._db.read() as conn:
            found = await conn.execute(select(User.id).where(User.username == username))
            return found.first() is not None

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
