"""Bad bytes in a sign-up, sign-in or refresh body are 400 with a clear detail, never 500."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.support.backend import BackendProcess, ControlledNats

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


# Strings JSON can carry but a database cannot store or a log should not show: a NUL
# (PostgreSQL's text refuses it), other control characters, a lone surrogate.
UNSTORABLE = {"nul": "bo\u0000b", "control": "bo\u0007b", "surrogate": "bo\ud800b"}


def post_escaped(url: str, body: dict[str, str]) -> httpx.Response:
    """JSON with every non-ASCII character escaped, as a lone surrogate can only travel."""
    content = json.dumps(body).encode()
    return httpx.post(url, content=content, headers={"Content-Type": "application/json"})


def test_auth_bodies_with_unstorable_characters_are_refused_never_500(
    tmp_path: Path, module_nats: ControlledNats, pg_url: str
) -> None:
    """On PostgreSQL, where a NUL in a lookup or a throttle key would fail the query."""
    backend = BackendProcess(tmp_path / "b", nats_url=module_nats.url, db_url=pg_url).start()
    try:
        for name, value in UNSTORABLE.items():
            for field in ("username", "password"):
                body = {"username": "bob_the_builder", "password": "abcdefghij", field: value}
                for path in ("/v1/auth/token", "/v1/auth/signup"):
                    response = post_escaped(f"{backend.url}{path}", body)
                    seen = (name, field, path, response.status_code, response.text)
                    assert response.status_code in (400, 401, 422), seen
                    assert response.json()["detail"], seen
            refresh = post_escaped(f"{backend.url}/v1/auth/refresh", {"refresh_token": value})
            assert refresh.status_code in (400, 401), (name, refresh.text)
    finally:
        backend.stop()
