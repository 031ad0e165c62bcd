"""Access tokens on their own: expiry and a foreign signing secret."""

from __future__ import annotations

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
