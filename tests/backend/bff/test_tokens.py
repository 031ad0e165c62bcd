"""Access tokens on their own: expiry and a foreign signing secret."""

from __future__ import annotations

import time

import jwt
import pytest

from backend.bff.auth.tokens import Principal, TokenSigner
from backend.errors import Unauthorized


def test_an_expired_or_foreign_token_is_refused() -> None:
    signer = TokenSigner("s" * 32, ttl_s=-5)
    expired = signer.issue(Principal("u1", "alice"))
    with pytest.raises(Unauthorized, match="expired"):
        TokenSigner("s" * 32, ttl_s=60).verify(expired)
    foreign = TokenSigner("t" * 32, ttl_s=60).issue(Principal("u1", "alice"))
    with pytest.raises(Unauthorized, match="invalid token"):
        TokenSigner("s" * 32, ttl_s=60).verify(foreign)


def test_an_access_token_from_before_the_type_claim_still_works_and_a_strange_type_does_not() -> (
    None
):
    """During a rolling upgrade a BFF of the release before issues tokens without ``typ``:
    they are access tokens. A token of a type we do not know is refused."""
    secret = "s" * 32
    now = int(time.time())
    claims = {"sub": "u1", "usr": "alice", "iat": now, "exp": now + 60, "fam": "f1"}
    old = jwt.encode(claims, secret, algorithm="HS256")
    principal = TokenSigner(secret, ttl_s=60).verify(old)
    assert (principal.user_id, principal.family, principal.password_only) == ("u1", "f1", False)
    strange = jwt.encode({**claims, "typ": "admin"}, secret, algorithm="HS256")
    with pytest.raises(Unauthorized, match="invalid token"):
        TokenSigner(secret, ttl_s=60).verify(strange)


def test_a_token_issued_late_in_a_second_lives_its_whole_ttl(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``exp`` is whole seconds: rounding the issue time down would give a token issued at
    x.99 one hundredth of its one-second life (a CI run refreshed a session and was refused
    125 ms later)."""
    signer = TokenSigner("s" * 32, ttl_s=1)
    monkeypatch.setattr(time, "time", lambda: 1_800_000_000.99)
    token = signer.issue(Principal("u1", "alice"))
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - 1_800_000_000.99 >= 1
    assert claims["iat"] <= 1_800_000_000.99
