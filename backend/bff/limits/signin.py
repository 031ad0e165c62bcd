"""Failed sign-ins throttled per (username, client address), with a higher ceiling per
username, as a middleware: it reads the username before the password is checked and the
outcome after.

A blocked pair gets 429 with ``Retry-After`` and no hash is computed; the block doubles
with each further failure. Past the username's ceiling every address that fails on it is
blocked at its first failure, but an address that has not failed is never refused: the
owner signs in from their own address while guessers elsewhere wait. Refresh is never
throttled (it carries no password).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import msgspec
from litestar import Request
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from sqlalchemy.exc import DBAPIError

from backend.bff.auth.hashing import check_order
from backend.bff.auth.schemas import LoginCredentials
from backend.bff.limits.address import ClientAddresses
from backend.bff.limits.guards import LIMIT, SIGNIN
from backend.bff.limits.store import LimitStore, SignInPolicy
from backend.config import Settings
from backend.errors import RateLimited

log = logging.getLogger(__name__)

__all__ = ["SignInThrottle"]

_credentials = msgspec.json.Decoder(LoginCredentials)


def policy(settings: Settings) -> SignInPolicy:
    return SignInPolicy(
        per_address=settings.signin_failures_per_address,
        per_username=settings.signin_failures_per_username,
        block_s=settings.signin_block_s,
        block_max_s=settings.signin_block_max_s,
        window_s=settings.signin_window_s,
    )


class SignInThrottle(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    def __init__(
        self, store: Callable[[], LimitStore], addresses: ClientAddresses, settings: Settings
    ) -> None:
        self._store = store
        self._addresses = addresses
        self._policy = policy(settings)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        handler: Any = scope.get("route_handler")
        if handler is None or handler.opt.get(LIMIT) != SIGNIN:
            await next_app(scope, receive, send)
            return
        body = await Request[Any, Any, Any](scope, receive).body()  # kept for the handler
        try:
            username = _credentials.decode(body).username
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            await next_app(scope, receive, send)  # the handler refuses it: 400, no hash
            return
        address = self._addresses.of(scope)
        store = self._store()
        start = await store.signin_begin(username, address)
        if (wait := start.wait_s) is not None:
            raise RateLimited(
                f"too many failed sign-ins for this account from this address: retry in {wait} s",
                retry_after=wait,
            )
        # The owner, from an address they signed in from before, has the password checked
        # ahead of every guesser's; then the fewest failures first.
        check_order.set(start.order)
        counted = False

        async def count(status: int | None) -> None:
            nonlocal counted
            if counted:
                return
            counted = True
            outcome = {200: False, 401: True}.get(status) if status is not None else None
            try:
                await store.signin_end(username, address, self._policy, failed=outcome)
            except (DBAPIError, OSError) as exc:  # the check's lease ends when it expires
                log.warning("sign-in outcome not counted: the limits database is away: %s", exc)

        async def watch(message: Message) -> None:
            # Counted before the answer leaves: a client that tries again the moment it
            # reads a 401 (through another process, say) finds this check over and its
            # failure counted, never still in flight.
            if message["type"] == "http.response.start":
                await count(message["status"])
            await send(message)

        try:
            await next_app(scope, receive, watch)
        finally:
            await count(None)  # no answer started: the check is over, nothing to count
