"""A sign-in whose password check overlaps a password change opens no session: the change
ends every session, so one opened with the old password after it would outlive it. Of two
changes at once, over the same old password, one wins.

The service runs on a real SQLite database; the hashing is the real one, held at the
moment the sign-in's check finishes until the change has committed, so the interleaving
is certain rather than a matter of timing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from backend.bff.auth.hashing import PasswordHashing
from backend.bff.auth.schemas import Credentials, LoginCredentials, PasswordChange
from backend.bff.auth.services import AuthService
from backend.bff.auth.tokens import RefreshTokens, TokenSigner
from backend.db import Database
from backend.errors import Unauthorized

OLD, NEW = "the old password", "the new password"


class HeldHashing(PasswordHashing):
    """Real hashes; a held verification finishes only once ``release`` is set."""

    def __init__(self) -> None:
        super().__init__(time_cost=1)
        self.hold = False
        self.checked = asyncio.Event()
        self.release = asyncio.Event()

    async def verify(self, stored: str, password: str) -> bool:
        right = await super().verify(stored, password)
        if self.hold:
            self.hold = False
            self.checked.set()
            await self.release.wait()
        return right


@contextlib.asynccontextmanager
async def held_auth(folder: Path) -> AsyncIterator[tuple[AuthService, HeldHashing]]:
    """The auth service on a real, migrated SQLite database, with hashing that can be held."""
    db = Database.for_component("bff", data_dir=folder, url=None)
    await db.migrate()
    hashing = HeldHashing()
    secret = "s" * 48
    auth = AuthService(
        db, TokenSigner(secret, 900), RefreshTokens(secret), refresh_ttl_s=3600, hashing=hashing
    )
    try:
        yield auth, hashing
    finally:
        await db.dispose()


def test_a_sign_in_overlapping_a_password_change_opens_no_session(tmp_path: Path) -> None:
    async def body() -> None:
        async with held_auth(tmp_path) as (auth, hashing):
            session = await auth.signup(Credentials(username="alice", password=OLD))
            user = await auth.authenticate(session.token)
            hashing.hold = True
            sign_in = asyncio.create_task(auth.login(LoginCredentials("alice", OLD)))
            await hashing.checked.wait()  # the old password checked out right
            await auth.change_password(user, PasswordChange(password=OLD, new_password=NEW))
            hashing.release.set()
            with pytest.raises(Unauthorized, match="wrong username or password"):
                await sign_in
            assert await auth.login(LoginCredentials("alice", NEW))

    asyncio.run(body())


def test_of_two_password_changes_at_once_only_one_takes_effect(tmp_path: Path) -> None:
    async def body() -> None:
        async with held_auth(tmp_path) as (auth, hashing):
            session = await auth.signup(Credentials(username="bob", password=OLD))
            user = await auth.authenticate(session.token)
            hashing.hold = True
            slow = asyncio.create_task(
                auth.change_password(user, PasswordChange(password=OLD, new_password="slow one"))
            )
            await hashing.checked.wait()  # the slow change has checked the old password
            await auth.change_password(user, PasswordChange(password=OLD, new_password=NEW))
            hashing.release.set()
            with pytest.raises(Unauthorized, match="changed elsewhere"):
                await slow
            assert await auth.login(LoginCredentials("bob", NEW))
            with pytest.raises(Unauthorized):
                await auth.login(LoginCredentials("bob", "slow one"))

    asyncio.run(body())
