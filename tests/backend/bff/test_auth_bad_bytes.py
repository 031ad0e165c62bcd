"""Bad bytes in a sign-up, sign-in or refresh body are 400 with a clear detail, never 500."""

from __future__ import annotations

import httpx
import pytest

from tests.support.backend import BackendProcess

pytestmark = pytest.mark.integration

BODIES = {
    "invalid-utf8-value": b'{"username": "\xff\xfe", "password": "abcdefghij"}',
    "invalid-utf8-key": b'{"user\xffname": "abc", "password": "abcdefghij"}',
    "array-1000-deep": b"[" * 1000 + b"]" * 1000,
    "value-1000-deep": b'{"username": ' + b"[" * 1000 + b"]" * 1000 + b"}",
    "number-out-of-range": b'{"username": 1e309, "password": "abcdefghij"}',
    "not-json": b"\x00\x01garbage",
    "empty": b"",
}


@pytest.mark.parametrize("path", ["/v1/auth/signup", "/v1/auth/token", "/v1/auth/refresh"])
@pytest.mark.parametrize("body", list(BODIES.values()), ids=list(BODIES))
def test_bad_bytes_in_an_auth_body_are_400(
    module_backend: BackendProcess, path: str, body: bytes
) -> None:
    response = httpx.post(
        f"{module_backend.url}{path}", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["status_code"] == 400
    assert response.json()["detail"]
