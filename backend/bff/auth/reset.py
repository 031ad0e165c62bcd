"""``outpost users reset-password USERNAME``: on the backend's host, give a user who lost
their password a one-time one.

It is printed once and stored only as a hash. Every session of the user ends (the BFF
processes see it within ``OUTPOST_REVOCATION_REFRESH_S``), and signing in with the one-time
password opens no session: it answers 403 with a token good only for changing it.
"""

from __future__ import annotations

import secrets

from sqlalchemy import update

from backend.bff.auth.hashing import PasswordHashing
from backend.bff.auth.services import end_sessions
from backend.bff.models import User
from backend.config import Settings
from backend.db import Database
from backend.errors import BackendError

__all__ = ["UnknownUser", "reset_password"]


class UnknownUser(BackendError):
    """No account has that username (a command's error, never an HTTP answer)."""


async def reset_password(settings: Settings, username: str) -> tuple[str, int]:
    """A new one-time password for ``username``, and how many sessions ended."""
    password = secrets.token_urlsafe(12)
    password_hash = PasswordHashing(time_cost=settings.password_time_cost).hash_now(password)
    db = Database.for_component("bff", data_dir=settings.data_dir, url=settings.db_url_for("bff"))
    try:
        await db.migrate()
        async with db.write() as conn:
            user = (
                await conn.execute(
                    update(User)
                    .where(User.username == username)
                    .values(password_hash=password_hash, password_reset=True)
                    .returning(User.id)
                )
            ).first()
            if user is None:
                raise UnknownUser(f"no user {username!r} in this backend's database")
            ended = await end_sessions(conn, user.id)
    finally:
        await db.dispose()
    return password, len(ended)
